"""Numbers as an LLM writes them: digits, decimals, signs, and English number words.

    find_numerals("I'd say six and a half, maybe 7.")  -> [Numeral(6.5, "six and a half"), Numeral(7.0, "7")]

Accepted forms (the tests use this list):

    "7"  "7.25"  ".5"  "-0.5"  "−0.5" (Unicode minus)  "+3"  "1,200" (thousands)
    "1.2e1" -> 12   "1e-3" -> 0.001   "3.6E2" -> 360     scientific notation, read whole
    "seven"  "twenty-one"  "one hundred and twenty"  "a hundred"  "six and a half"
    "seven point five"  "half"  "zero"
Not read as numbers:
    "1e400"                                  not finite (the mantissa alone is never read: not 1)
    "loop endlesspirate 07"  "loops 001"     zero-padded whole numbers number things in a name
    "Op. 27"  "No. 5"  "track 3"  "loop 12"  a number after a catalogue word is part of a name

No library in the project's stack reads number words (word2number and similar packages read only
whole numbers and would be one more dependency for a few lines), so this small reader is written
by hand. The word "one" is read as a number only when it is not a pronoun ("this one", "one of").
A minus sign counts only where it cannot be a range dash: "1-9" is two numbers, 1 and 9.
Numbers that are part of a name (a title, a file, a catalogue number) are left out, so that no
parser reads them as an answer: a whole number written with a leading zero ("07", "001"; "0.5"
is a decimal and is read) and a number after "No.", "Op.", "opus", "track", "loop", "vol.".
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

__all__ = ["Numeral", "find_numerals", "words_to_number"]


class Numeral(NamedTuple):
    """One number found in a text: its value, its words or digits, and their span."""

    # A NamedTuple rather than a frozen dataclass: as immutable, and made about three times faster
    # (every number of every answer eval-mir reads becomes one).
    value: float
    text: str
    start: int
    end: int
    is_word: bool = False


UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000}
_WORD = "|".join(sorted([*UNITS, *TENS, *SCALES], key=len, reverse=True))

# Digits: not glued to a letter, a dot or another number; a leading sign likewise only where the
# character before it is none of those (so "1-9" is a range, 1 and 9, not 1 and -9). The leading
# look-ahead lets the engine reject most positions with one character test before the look-behind.
DIGITS_RE = re.compile(
    r"(?=[-−+.\d])(?<![\w.])(?P<sign>[-−+](?=[.\d]))?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)|(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-−+]?\d+)?)(?![\d])"
)
ZERO_PADDED = re.compile(r"0\d+")  # "07", "001": a number in a name, not a quantity
NAME_WORDS = ("no.", "nr.", "op.", "opus", "track", "loop", "vol.", "volume")
NAME_BEFORE = re.compile(rf"\b(?:{'|'.join(re.escape(word) for word in NAME_WORDS)})\s*$", re.I)
# A run of number words ("one hundred and twenty", "six and a half", "seven point five").
WORDS_RE = re.compile(
    rf"\b(?:(?:{_WORD})\b(?:[\s-]+(?:and\s+)?(?:a\s+half|(?:{_WORD})\b|point\s+(?:(?:{_WORD})\b\s*)+))*"
    rf"|a\s+(?:hundred|thousand)\b(?:[\s-]+(?:and\s+)?(?:{_WORD})\b)*|half\b)",
    re.IGNORECASE,
)
# Every match of WORDS_RE holds one of these words; in ASCII text (where IGNORECASE is plain
# ASCII case-folding) a lower-cased text without any of them has no number word, and this one
# scan of literals is several times cheaper than WORDS_RE's scan of word boundaries.
WORD_HINT = re.compile("|".join(sorted([*UNITS, *TENS, *SCALES, "half"], key=len, reverse=True)))
PRONOUN_BEFORE_ONE = re.compile(r"\b(?:this|that|the|which|each|every|any|no|a|another|only|last|first|next)\s+$", re.I)


def words_to_number(text: str) -> float | None:
    """The value of a run of number words, or None if it does not make one number."""
    words = re.findall(r"[a-z]+", text.lower())
    if not words:
        return None
    if words == ["half"]:
        return 0.5
    total, current, seen = 0.0, 0.0, False
    i = 0
    while i < len(words):
        word = words[i]
        if word in UNITS:
            current += UNITS[word]
        elif word in TENS:
            current += TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word == "thousand":
            total += (current or 1) * 1000
            current = 0
        elif word == "and" and words[i + 1 : i + 3] == ["a", "half"]:
            current += 0.5
            i += 2
        elif word in ("and", "a"):
            pass
        elif word == "point":
            digits = [UNITS.get(w) for w in words[i + 1 :]]
            if not digits or any(d is None or d > 9 for d in digits):
                return None
            return total + current + float("0." + "".join(str(d) for d in digits))
        else:
            return None
        seen = True
        i += 1
    return total + current if seen else None


def _after_name_word(text: str, start: int) -> bool:
    """A catalogue word ("No.", "Op.", "track", ...) just before position `start` (NAME_BEFORE).
    The text before ends with one of NAME_WORDS, a test of literals, before the regex (its word
    boundary) runs: the regex alone was a tenth of the reader's time."""
    before = text[max(0, start - 16) : start]
    return before.rstrip().lower().endswith(NAME_WORDS) and NAME_BEFORE.search(before) is not None


def find_numerals(text: str) -> list[Numeral]:
    """Every number in `text`, in reading order, with its span."""
    found: list[Numeral] = []
    for match in DIGITS_RE.finditer(text):
        number = match.group("num").replace(",", "").replace("−", "-")
        value = float(number)
        if not math.isfinite(value) or ZERO_PADDED.fullmatch(number) or _after_name_word(text, match.start()):
            continue
        if match.group("sign") in ("-", "−"):
            value = -value
        found.append(Numeral(value, match.group(0), match.start(), match.end()))
    if text.isascii() and not WORD_HINT.search(text.lower()):
        return found  # no number word: the digits alone, in reading order (finditer's)
    for match in WORDS_RE.finditer(text):
        words = match.group(0)
        if words.lower() == "one" and (
            PRONOUN_BEFORE_ONE.search(text[: match.start()]) or re.match(r"\s+(?:of|another)\b", text[match.end() :], re.I)
        ):
            continue
        value = words_to_number(words)
        if value is not None:
            found.append(Numeral(value, words, match.start(), match.end(), is_word=True))
    found.sort(key=lambda n: n.start)
    return found
