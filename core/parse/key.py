"""Reading a musical key (tonic and mode) out of free text.

    find_key("The key of this song is F# minor.")  -> Found(Key("F#", "minor"), "F# minor")
    str(find_key("It sounds like A-flat major").value) == "Ab major"   # a mir_eval key string

Phrasings accepted (the tests use this list):

    "The key of this song is F# minor."          F# minor
    "It sounds like A-flat major"                Ab major
    "C major"  "c minor"  "A Minor"               case of the mode word is free
    "F#m"  "F#min"  "F# min."  "Am"  "Amin"       minor written "m" / "min"
    "Cmaj"  "C maj"  "CM"                          major written "maj" / "M"
    "Bb major"  "B♭ major"  "B flat major"  "B-flat major"
    "C# minor"  "C♯ minor"  "C sharp minor"  "C-sharp minor"
    "E# major" -> F major, "Cb major" -> B major  (spellings mir_eval does not take, enharmonically)
    "A:minor"  "A:min"  "a-minor"                  label-like spellings
    "D Dorian" -> D other; "A Aeolian" -> A minor; "C Ionian" -> C major
    "in the key of D" / "Key: D" / "D"            a tonic with no mode in a key context is major
    "The key is not C major; it is A minor."     A minor (a negated key is skipped)
    "Eb major (the relative minor is C minor)"   Eb major (the first key named)

Rules:
- A tonic is an upper-case letter A-G, or a lower-case b-g followed by a mode word ("c minor",
  "f# major"); a lower-case "a" is the article ("a minor change"), unless it is the whole answer.
- A tonic with no mode is read (as major) only where the text says it is a key: "key of D",
  "Key: D", "in E." at the end of a clause, or the whole answer "D".
- Several keys: a key named right after "key is/of/:" or "in" wins; otherwise the first one that is
  not negated ("not", "rather than", "instead of" before it).
- The value is a `Key`; `str(key)` is a mir_eval key string. The tonic keeps the answer's
  spelling (Db stays Db) when mir_eval knows it, else the enharmonic it does know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mllm.core.parse.found import Found

__all__ = ["Key", "find_key", "read_key", "PITCH_CLASS"]

PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# mir_eval's KEY_TO_SEMITONE spellings; other spellings are written as these.
MIR_EVAL_TONICS = {"C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B"}
SPELLING_OF_PITCH_CLASS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]

MODES = {
    "major": "major", "maj": "major", "ionian": "major", "M": "major",
    "minor": "minor", "min": "minor", "m": "minor", "aeolian": "minor",
    "dorian": "other", "phrygian": "other", "lydian": "other", "mixolydian": "other", "locrian": "other",
}


@dataclass(frozen=True)
class Key:
    tonic: str  # a mir_eval tonic spelling: "C", "F#", "Eb", ...
    mode: str  # "major", "minor" or "other"

    @property
    def pitch_class(self) -> int:
        return (PITCH_CLASS[self.tonic[0]] + {"#": 1, "b": -1}.get(self.tonic[1:], 0)) % 12

    def __str__(self) -> str:
        return f"{self.tonic} {self.mode}"


_SHARP = r"(?:\#|♯|-?\s?sharp\b)"
_FLAT = r"(?:b(?![a-ln-z])|♭|-?\s?flat\b)"
_MODE_WORDS = r"major|minor|maj|min|ionian|aeolian|dorian|phrygian|lydian|mixolydian|locrian"
KEY_RE = re.compile(
    rf"""
    (?<![A-Za-z0-9#♯♭])
    (?:
        (?P<upper>[A-G])                               # an upper-case tonic ...
      | (?P<lower>[b-g])(?=\s?(?:{_SHARP}|{_FLAT})?[\s:-]?(?i:{_MODE_WORDS})\b)   # ... or a lower-case one with a mode word
    )
    (?P<accidental>{_SHARP}|{_FLAT})?
    (?:
        [\s:\-]?(?P<mode>(?i:{_MODE_WORDS}))\b\.?       # "F# minor", "A:min", "a-minor", "Cmaj"
      | (?P<short>m|M)(?![A-Za-z0-9])                  # "F#m", "CM"
    )?
    (?![A-Za-z0-9#♯♭/])
    """,
    re.VERBOSE,
)
KEY_CONTEXT = re.compile(r"(?:\bkey\b(?:\s+(?:is|of|was|would\s+be|seems\s+to\s+be|sounds\s+like|signature\s+is))?|\bin|\btonic\s+(?:is|of))\s*[:=]?\s*(?:the\s+key\s+of\s+)?(?:probably\s+|likely\s+)?$", re.I)
NEGATION = re.compile(r"(?:\bnot|\bn't|\brather\s+than|\binstead\s+of|\bnor)\s+(?:in\s+)?(?:the\s+key\s+of\s+)?(?:a\s+)?$", re.I)
SHORT_LOWER_A = re.compile(rf"\s*a\s?(?:{_SHARP}|{_FLAT})?[\s:-]?(?:major|minor|maj|min)\.?\s*", re.I)
WHOLE_ANSWER = re.compile(r"^\s*(?:key\s*[:=]\s*)?$", re.I)


def _tonic(letter: str, accidental: str | None) -> str:
    letter = letter.upper()
    shift = 0
    if accidental:
        shift = 1 if re.fullmatch(_SHARP, accidental) else -1
    spelled = letter + {1: "#", -1: "b", 0: ""}[shift]
    if spelled in MIR_EVAL_TONICS:
        return spelled
    return SPELLING_OF_PITCH_CLASS[(PITCH_CLASS[letter] + shift) % 12]  # E#, B#, Cb, Fb


def _candidates(text: str):
    for match in KEY_RE.finditer(text):
        letter = match.group("upper") or match.group("lower")
        mode_word = match.group("mode")
        if mode_word:
            mode = MODES[mode_word.lower()]
        elif match.group("short"):
            mode = MODES[match.group("short")]
        else:
            mode = None
        before = text[: match.start()]
        in_context = bool(KEY_CONTEXT.search(before))
        if mode is None:
            # A bare tonic is a key only where the text says it is one ("key of D", "Key: D", "D").
            after = text[match.end() :]
            whole = WHOLE_ANSWER.match(before) and re.fullmatch(r"[\s.!]*", after)
            said_in = before.rstrip().lower().endswith("in")
            if not (whole or in_context and (not said_in or re.match(r"\s*(?:[.,;!)]|$)", after))):
                continue
            mode = "major"
        # "A major influence" reads as A major only when nothing better is named (see find_key).
        negated = bool(NEGATION.search(before))
        key = Key(_tonic(letter, match.group("accidental")), mode)
        yield key, match, in_context, negated


def find_key(text: str) -> Found[Key] | None:
    """The key the text names (see the module docstring for the rules), or None."""
    if SHORT_LOWER_A.fullmatch(text):
        at = text.index(text.strip()[0])
        text = text[:at] + "A" + text[at + 1 :]  # the whole answer is "a minor": not an article
    first = None
    for key, match, in_context, negated in _candidates(text):
        if negated:
            continue
        found = Found(key, match.group(0).strip(), match.start(), match.end())
        if in_context:
            return found
        first = first or found
    return first


def read_key(text: str) -> str | None:
    """The key as a mir_eval key string ("F# minor"), or None."""
    found = find_key(text)
    return str(found.value) if found else None
