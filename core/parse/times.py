"""Reading a list of times (beats, downbeats, onsets) in seconds out of free text.

    find_times("0.52s, 1.04s, 1.56s")  -> Found([0.52, 1.04, 1.56], "0.52s, 1.04s, 1.56s")

Phrasings accepted (the tests use this list):

    "0.52s, 1.04s, 1.56s"   "0.0s,0.54s,1.0ss"  (CMI-Bench's own format, typo included)
    "0.5, 1.0, 1.5"   "[0.5, 1.0, 1.5]"   "0.5 1.0 1.5"
    "0.5 seconds, 1.0 seconds and 1.5 seconds"   "0.5 sec, 1 sec"
    "The beats are at 0.5, 1.0, 1.5 and 2.0 seconds."
    "500ms, 1000 ms"                               -> 0.5, 1.0
    "1:02.5, 1:03.0"   "0:01.20"   "1:02:03"       m:ss(.s) and h:mm:ss -> seconds
    "Beat 1: 0.52s\\nBeat 2: 1.04s"                 enumerators ("beat 1", "#2", "1.") are skipped
    "[]"                                           an empty list (read, with no times)
    "Label: 0.5s, 1.0s"                            times after a "Label:" are still times
Not read as times:
    "Percussion: [0.0s-10.0s]"                     time ranges (segments) are not beat times
    "Speech: 0.0s-0.5s, 1.0s-1.5s, 2.0s"           two or more ranges: a segment list, refused whole
    "0.0s~0.5s, 1.0s~1.5s"   "(0.0s, 0.5s), (1.0s, 1.5s)"   ranges written with "~" or as pairs
    "The audio clip contains 10 beats."            a count ("10 beats", "8 bars", "4 notes")
    "The clip is 30 seconds long."  "It lasts 30 s."  a duration
    "Label: 60s, slow"                             a label answer: words in the list after "Label:"
    "loop endlesspirate 07"                        a number in a name (core.parse.numerals)
    "120 BPM in 4/4"                               tempi, time signatures
    "I cannot hear the beats."

Rules: when any number carries a time unit (s, sec, seconds, ms, or m:ss), only numbers with a
unit are read; otherwise every bare number that is not an enumerator, a tempo or part of a time
signature. Negative numbers are not times. The times are returned in the order written.
A range ("0.0s-0.5s", "0.0s to 0.5s", "0.0s~0.5s") is a segment, not a beat: its two numbers are
skipped, and a text with two or more ranges (a sound-event or segment list) holds no beat list at
all, so the loose times beside the ranges are not read either (reading the ranges' starts would
turn every event onset into a beat). A list that ends a sentence ("..., 9.5s, 10.0s.") is read.
"""

from __future__ import annotations

import re

from mllm.core.parse.found import Found
from mllm.core.parse.numerals import find_numerals

__all__ = ["find_times", "read_times"]

CLOCK_RE = re.compile(r"(?<![\d:.])(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{2}(?:\.\d+)?)(?![\d:])")
SECONDS_AFTER = re.compile(r"^\s*(?:s{1,2}\b|secs?\b|seconds?\b)", re.I)
MS_AFTER = re.compile(r"^\s*(?:ms\b|msecs?\b|milliseconds?\b)", re.I)
RANGE_JOIN = re.compile(r"^\s*(?:s|sec|seconds?)?\s*(?:-|–|—|~|to)\s*$", re.I)
# "(0.0s, 0.5s)" or "[0.0, 0.5]": a start and an end in brackets; two such pairs make a segment list.
PAIR_RE = re.compile(r"[(\[]\s*\d+(?:\.\d+)?\s*s?\s*,\s*\d+(?:\.\d+)?\s*s?\s*[)\]]")
COUNT_AFTER = re.compile(r"^\s*(?:beats?|downbeats?|bars?|measures?|notes?|onsets?|times|events?)\b", re.I)
DURATION_AFTER = re.compile(r"^[\s-]*(?:s|secs?|seconds?)\b[\s-]*(?:long\b|in\s+(?:length|duration)\b)", re.I)
DURATION_BEFORE = re.compile(r"\b(?:lasts?|lasting|duration(?:\s+(?:of|is))?|length(?:\s+(?:of|is))?)\s*(?:about\s+|around\s+|~\s*)?$", re.I)
LABEL_ANSWER = re.compile(r"^\s*(?:labels?|tags?)\s*:", re.I)
UNIT_WORDS = {"s", "ss", "sec", "secs", "second", "seconds", "ms", "and"}
ENUMERATOR_BEFORE = re.compile(r"(?:\b(?:beats?|downbeats?|bars?|measures?|no\.?|number|item)\s*|#\s*)$", re.I)
OTHER_UNIT_AFTER = re.compile(r"^\s*(?:bpm\b|beats?\s+per|hz\b|%|/\s*\d)", re.I)
LINE_ENUMERATOR = re.compile(r"(?:^|\n)\s*$")
LIST_GAP = re.compile(r"^\s*(?:,|;)?\s*(?:and\s+)?$", re.I)
EMPTY_LIST = re.compile(r"^\s*\[\s*\]\s*\.?\s*$")


def find_times(text: str) -> Found[list[float]] | None:
    """The times in seconds the text lists (rules in the module docstring), or None."""
    if EMPTY_LIST.match(text):
        return Found([], text.strip(), 0, len(text))
    items: list[list] = []  # [start, end, value, unit]; unit: None, "s", "ms" or "clock"
    clock_spans = []
    for match in CLOCK_RE.finditer(text):
        seconds = int(match.group("h") or 0) * 3600 + int(match.group("m")) * 60 + float(match.group("s"))
        items.append([match.start(), match.end(), seconds, "clock"])
        clock_spans.append((match.start(), match.end()))
    numerals = [
        n for n in find_numerals(text)
        if not n.is_word and not any(a <= n.start < b for a, b in clock_spans)
    ]
    ranges = [i for i in range(len(numerals) - 1) if RANGE_JOIN.match(text[numerals[i].end : numerals[i + 1].start])]
    in_range = {j for i in ranges for j in (i, i + 1)}
    if len(ranges) >= 2 or len(PAIR_RE.findall(text)) >= 2:
        return None  # two or more ranges: segments (sound events), not beats
    for i, numeral in enumerate(numerals):
        before, after = text[: numeral.start], text[numeral.end :]
        if i in in_range or numeral.value < 0:
            continue
        if ENUMERATOR_BEFORE.search(before) or OTHER_UNIT_AFTER.match(after) or re.search(r"\d\s*/\s*$", before):
            continue
        if COUNT_AFTER.match(after) or DURATION_AFTER.match(after) or DURATION_BEFORE.search(before):
            continue
        if LINE_ENUMERATOR.search(before) and re.match(r"[.)]\s+\D", after):
            continue
        unit = MS_AFTER.match(after) and "ms" or SECONDS_AFTER.match(after) and "s" or None
        end = numeral.end + ((MS_AFTER.match(after) or SECONDS_AFTER.match(after)).end() if unit else 0)
        items.append([numeral.start, end, numeral.value, unit])
    items.sort()
    # A unit written once after a list applies to the list: "at 0.5, 1.0 and 1.5 seconds".
    for i in range(len(items) - 2, -1, -1):
        if items[i][3] is None and items[i + 1][3] in ("s", "ms") and LIST_GAP.match(text[items[i][1] : items[i + 1][0]]):
            items[i][3] = items[i + 1][3]
    if any(unit for *_, unit in items):
        items = [item for item in items if item[3]]
    for item in items:
        if item[3] == "ms":
            item[2] /= 1000
    if not items:
        return None
    label = LABEL_ANSWER.match(text)
    if label and set(re.findall(r"[a-z]+", text[label.end() :].lower())) - UNIT_WORDS:
        return None  # "Label: 60s, slow": labels, one of which looks like a time
    start, end = items[0][0], items[-1][1]
    return Found([item[2] for item in items], text[start:end], start, end)


def read_times(text: str) -> list[float] | None:
    found = find_times(text)
    return found.value if found else None
