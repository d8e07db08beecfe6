"""Reading a tempo in beats per minute out of free text.

    find_tempo("around 128 BPM")  -> Found(128.0, "128 BPM")

Phrasings accepted (the tests use this list):

    "around 128 BPM"  "128bpm"  "128 b.p.m."  "128 beats per minute"  "128 beats/min"
    "The tempo is 121."  "Tempo: 120"  "tempo of about 90"  "tempo ~ 140"
    "♩ = 120"  "quarter note = 96"  "q=100"  "MM 120"  "M.M. = 120"
    "BPM: 128"  "The BPM is 128"  "BPM = 95.5"
    "one hundred and twenty beats per minute"    number words
    "between 120 and 124 BPM"  "120-124 BPM"  "120 to 124 bpm"   -> 122 (a range: its midpoint)
    "120"  "120.5"                                 the whole answer is a number
    "guitar loops 001 ... 120 bpm"   -> 120        a number in a name is skipped (core.parse.numerals)
Not read as a tempo:
    "In 4/4 time."  "3/4"                          time signatures
    "The tempo is fast."                           no number
    "4 beats per bar", "30 seconds", "440 Hz"      other units
    "The tempo of loop endlesspirate 07 is fast."  a number in a name ("07", "loops 090", "Op. 27")

Rules, in order: a number with a tempo unit (BPM, beats per minute, a metronome mark) wins;
then a number that follows the word "tempo" in the same sentence; then a whole answer that is only
a number. The first candidate of the strongest rule is the answer. A tempo must lie in 10-1000 BPM.
"""

from __future__ import annotations

import re

from mllm.core.parse.found import Found
from mllm.core.parse.numerals import Numeral, find_numerals

__all__ = ["find_tempo", "read_tempo", "LOWEST_BPM", "HIGHEST_BPM"]

LOWEST_BPM, HIGHEST_BPM = 10.0, 1000.0

UNIT_AFTER = re.compile(
    r"\s*(?:bpm\b|b\.p\.m\.?|beats?\s*(?:per|/|a|an)\s*min(?:ute)?s?\b|quarter[- ]notes?\s+per\s+minute)", re.I
)
MARK_BEFORE = re.compile(
    r"(?:♩|𝅘𝅥|\bquarter(?:[- ]note)?|\bq|\bm\.?\s?m\.?|\bmetronome(?:\s+mark(?:ing)?)?|\bbpm(?:\s+(?:is|was|of|would\s+be))?)"
    r"\s*[=:]?\s*(?:about\s+|around\s+|approx(?:\.|imately)?\s+|roughly\s+|~\s*)?$",
    re.I,
)
TEMPO_BEFORE = re.compile(r"\btempo\b[^.!?\n\d]{0,60}$", re.I)
OTHER_UNIT_AFTER = re.compile(
    r"\s*(?:/\s*\d|%|percent|hz\b|khz\b|db\b|s\b|sec|second|ms\b|min(?:ute)?s?\b(?!\s*\)?\s*bpm)|bars?\b|measures?\b|beats?\s+(?:per|in\s+(?:a|each))\s+(?:bar|measure)|beats?\b|notes?\b|years?\b|th\b|st\b|nd\b|rd\b)",
    re.I,
)
RANGE_BETWEEN = re.compile(r"^\s*(?:-|–|—|to|and|or)\s*$", re.I)
WHOLE_NUMBER_ANSWER = re.compile(r"^\s*(?:tempo\s*[:=]\s*)?(?:about|around|approximately|~)?\s*$", re.I)


def _range_end(text: str, numerals: list[Numeral], i: int) -> Numeral | None:
    """The numeral that closes a range opened by numerals[i] ("120-124", "between 120 and 124")."""
    if i + 1 >= len(numerals):
        return None
    a, b = numerals[i], numerals[i + 1]
    if RANGE_BETWEEN.match(text[a.end : b.start]) and 0 < b.value - a.value <= 0.5 * a.value:
        return b
    return None


def _plausible(value: float) -> bool:
    return LOWEST_BPM <= value <= HIGHEST_BPM


def find_tempo(text: str) -> Found[float] | None:
    """The tempo (BPM) the text names (rules in the module docstring), or None."""
    numerals = [n for n in find_numerals(text) if n.value >= 0]
    unit, context, whole = None, None, None
    skip = set()
    for i, numeral in enumerate(numerals):
        if i in skip:
            continue
        last = _range_end(text, numerals, i)
        end_numeral = last or numeral
        if last is not None:
            skip.add(i + 1)
        value = (numeral.value + last.value) / 2 if last else numeral.value
        if not _plausible(value):
            continue
        after, before = text[end_numeral.end :], text[: numeral.start]
        found = Found(value, text[numeral.start : end_numeral.end], numeral.start, end_numeral.end)
        if UNIT_AFTER.match(after):
            unit_match = UNIT_AFTER.match(after)
            found = Found(value, text[numeral.start : end_numeral.end + unit_match.end()], numeral.start, end_numeral.end + unit_match.end())
            unit = unit or found
            break
        if MARK_BEFORE.search(before) and not OTHER_UNIT_AFTER.match(after):
            unit = unit or found
            break
        if OTHER_UNIT_AFTER.match(after) or re.search(r"\d\s*/\s*$", before):
            continue
        if context is None and TEMPO_BEFORE.search(before):
            context = found
        if whole is None and WHOLE_NUMBER_ANSWER.match(before) and re.fullmatch(r"[\s.!]*", after):
            whole = found
    return unit or context or whole


def read_tempo(text: str) -> float | None:
    found = find_tempo(text)
    return found.value if found else None
