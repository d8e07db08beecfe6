"""Reading a number on a declared scale out of free text (arousal, valence, any rating).

    find_number("I would assign a 3.6 on the 1-9 scale", (1, 9))  -> Found(3.6, "3.6")

Phrasings accepted, on the scale 1-9 unless said (the tests use this list):

    "I would assign a 3.6 on the 1-9 scale"                      3.6
    "Score: 7/9"   "7 out of 9"   "7 / 9"                         7 (the number before /N or "out of N")
    "On a scale from 1 to 9, I'd rate the arousal as 6.5."      6.5
    "On a scale of 1-9: 4"                                       4
    "The estimated arousal score is 8 on the 1-9 scale."        8
    "6.5"   "6.5."   "seven"   "six and a half"   "seven point five"
    "between 5 and 6"   "5-6"   "5 to 6"   "5 or 6"             5.5 (a range inside the scale: its midpoint)
    "Arousal: 6, valence: 3"   (name="valence")                 3 (the number after the task's name)
    "around 8."   "roughly 2"                                     8, 2
    "On a scale of 1 to 9, where 1 is calm and 9 is excited, this is a 3."   3
    "The music has 2 guitars and I rate it 6"                   6
    "-0.4" on the scale -1..1                                     -0.4
    "70%" on the scale 0-100                                      70
    "1.2e1"   "1e-3"                                              12, 0.001 (outside the scale: the caller clips)
Not read as an answer (None):
    "1e308"                                      farther outside the scale than its own width
    "loop endlesspirate 07"                      a number in a name (core.parse.numerals)
    "guitar loops 001 at 120 bpm"                a name and a tempo: no rating
    "The estimated arousal scores of the given music are 2, 8, and 5, respectively."
        with question="... Example 1 ... Estimated score: 2. Example 2 ... 8. Example 3 ... 5."

Rules:
1. Scale mentions are not answers: "1-9 scale", "scale of 1 to 9", "from 1 to 9" when those are
   the scale's bounds, "a 9-point scale", and the N of "/N" and "out of N" are removed first.
2. With `name` (e.g. "arousal"), the first number after a mention of the name, in the same clause,
   wins.
3. Otherwise numbers inside the scale are preferred to numbers outside it (a tempo of 120 BPM in
   a rating answer is not the rating); among them the first one that follows an answer word
   ("rate it", "a score of", "assign", "give it", "would be", "I'd say"), else the first one. A
   number outside the scale is returned only when no number inside it remains (the caller decides
   whether to clip).
4. A scale bound followed by what it means ("where 1 is calm and 9 is excited") is not an answer.
5. Numbers with a unit that is not the scale's ("120 BPM", "30 seconds", "4/4") are skipped, and
   so are enumerators ("Example 1", "1. Arousal: 6").
6. A number farther outside the scale than the scale's width (1e308, or 30 on 1-9; 12 on 1-9 is
   kept) is not a rating.
7. With `question` (the prompt the response answers): the question's example answers are its
   numbers that rules 1, 4 and 5 leave, inside the scale and not a bound. CMI-Bench's emotion
   prompts show three ("Example 1, when the music is slow and gentle ...: Estimated score: 2.",
   then 8 and 5). A response whose numbers inside the scale are two or more different example
   values and nothing else repeats the examples instead of answering: None. One example value
   alone ("The estimated arousal score is 2.") is an answer.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mllm.core.parse.found import Found
from mllm.core.parse.numerals import Numeral, find_numerals

__all__ = ["find_number", "read_number"]

# The *_AFTER patterns are matched where a number ends (pattern.match(text, end): no "^", no
# copy of the rest of the text). The *_BEFORE patterns are searched in the LOOK_BACK characters
# before a number, not in the whole text before it: a search anchored at the end ("...\s*$")
# still tries every start position, and on long answers that was most of the reader's time.
LOOK_BACK = 64
RANGE_JOIN = re.compile(r"^\s*(?:-|–|—|to|and|or)\s*$", re.I)
SCALE_WORD_AFTER = re.compile(r"\s*(?:-?\s?point\s+)?(?:scale|range|rating\s+scale|likert)\b", re.I)
SCALE_WORD_BEFORE = re.compile(r"\b(?:scale|range)\s+(?:of|from|between)\s+$", re.I)
OUT_OF_BEFORE = re.compile(r"(?:\bout\s+of|/)\s*$", re.I)
UNIT_AFTER = re.compile(
    r"\s*(?:bpm\b|b\.p\.m|beats?\b|hz\b|khz\b|db\b|s\b|sec|seconds?\b|ms\b|min(?:ute)?s?\b|bars?\b|measures?\b|years?\b|/\s*4\b|/\s*8\b|th\b|st\b|nd\b|rd\b)",
    re.I,
)
LIST_MARKER_AFTER = re.compile(r"[.)]\s+\D")
DIGIT_SLASH_BEFORE = re.compile(r"\d\s*/\s*$")
ENUMERATOR_BEFORE = re.compile(r"\b(?:examples?|options?|steps?|questions?|samples?)\s*#?\s*$", re.I)
# "where 1 is calm and 9 is excited": a scale bound followed by what it means.
ANCHOR_AFTER = re.compile(r"\s*(?:=|is|means|being|represents|indicates|stands\s+for)\s+(?:the\s+|very\s+|extremely\s+|most\s+|least\s+|not\s+)*[a-z]", re.I)
# Words that introduce the answer: "I rate it 6", "a score of 5", "I would assign a 3.6".
ANSWER_CUE = re.compile(
    r"\b(?:rate|rated|rating|score|scored|assign|assigned|give|gave|estimate|estimated|predict|predicted|"
    r"answer|would\s+be|i'd\s+say|i\s+would\s+say)\b[^.!?\d\n]{0,20}$",
    re.I,
)


def _is_list_marker(text: str, numeral: Numeral) -> bool:
    """'1. Arousal: 6' or '2) ...': an enumerator at the start of a line (only white space
    between it and the start of the text or a line break)."""
    if not LIST_MARKER_AFTER.match(text, numeral.end):
        return False
    before = text[: numeral.start]
    kept = before.rstrip()
    return not kept or "\n" in before[len(kept):]


def _candidates(text: str, scale: tuple[float, float]) -> list[tuple[float, Numeral, Numeral]]:
    """(value, first numeral, last numeral) of every number that may be the answer."""
    low, high = scale
    numerals = find_numerals(text)
    out = []
    i = 0
    while i < len(numerals):
        a = numerals[i]
        b = numerals[i + 1] if i + 1 < len(numerals) else None
        before = text[max(0, a.start - LOOK_BACK) : a.start]
        if b is not None and RANGE_JOIN.match(text[a.end : b.start]):
            is_scale = (
                SCALE_WORD_AFTER.match(text, b.end)
                or SCALE_WORD_BEFORE.search(before)
                or (a.value, b.value) == (low, high)
            )
            if is_scale:  # "1-9 scale", "scale of 1 to 9", "from 1 to 9"
                i += 2
                continue
            if a.value < b.value and low <= a.value and b.value <= high and not UNIT_AFTER.match(text, b.end):
                out.append(((a.value + b.value) / 2, a, b))  # a range of answers: its midpoint
                i += 2
                continue
        i += 1
        if OUT_OF_BEFORE.search(before) or SCALE_WORD_AFTER.match(text, a.end):
            continue  # the N of "7/9", "out of 9", "a 9-point scale"
        if UNIT_AFTER.match(text, a.end) or DIGIT_SLASH_BEFORE.search(before) or _is_list_marker(text, a):
            continue
        if ENUMERATOR_BEFORE.search(before):
            continue
        if a.value in (low, high) and ANCHOR_AFTER.match(text, a.end):
            continue
        out.append((a.value, a, a))
    return out


@lru_cache(maxsize=256)
def _example_values(question: str, scale: tuple[float, float]) -> frozenset[float]:
    """The example answers a question shows: its numbers inside the scale, bounds and scale mentions left out.

    Cached: the items of a benchmark file usually share one prompt, and reading its examples
    (a few hundred characters) costs more than reading the answer."""
    low, high = scale
    return frozenset(c[0] for c in _candidates(question, scale) if low < c[0] < high)


@lru_cache(maxsize=64)
def _mention_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\b{re.escape(name)}\b", re.I)


def find_number(
    text: str, scale: tuple[float, float], name: str | None = None, *, question: str | None = None
) -> Found[float] | None:
    """The number the text gives on `scale` (rules in the module docstring), or None.

    `name` is the quantity asked for ("arousal"); `question`, the prompt the text answers, lets
    a response that only repeats the prompt's example scores be refused (rule 7).
    """
    low, high = scale
    width = high - low
    candidates = [c for c in _candidates(text, scale) if low - width <= c[0] <= high + width]
    if not candidates:
        return None
    if question:
        examples = _example_values(question, scale)
        said = {n.value for value, first, last in candidates if low <= value <= high for n in (first, last)}
        if len(said) >= 2 and said <= examples:
            return None

    def found(candidate):
        value, first, last = candidate
        return Found(value, text[first.start : last.end], first.start, last.end)

    if name:
        for mention in _mention_pattern(name).finditer(text):
            for candidate in candidates:
                if candidate[1].start >= mention.end() and not re.search(r"[,;.\n!?]\s", text[mention.end() : candidate[1].start]):
                    return found(candidate)
    inside = [c for c in candidates if low <= c[0] <= high]
    cued = [c for c in inside if ANSWER_CUE.search(text[max(0, c[1].start - 60) : c[1].start])]
    return found(cued[0] if cued else inside[0] if inside else candidates[0])


def read_number(
    text: str, scale: tuple[float, float], name: str | None = None, *, question: str | None = None
) -> float | None:
    found = find_number(text, scale, name, question=question)
    return found.value if found else None
