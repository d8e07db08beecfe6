"""Reading chords: one chord name into a Harte label, and timed chord sequences out of free text.

    to_harte("F#m7")  -> "F#:min7"          to_harte("C/E") -> "C:maj/3"      to_harte("N.C.") -> "N"
    find_chords("0.0-2.0: C, 2.0-4.0: G")  -> Found([(0.0, 2.0, "C:maj"), (2.0, 4.0, "G:maj")], ...)

Chord names accepted by `to_harte` (the tests use this list):

    Harte labels as they are: "C:maj"  "A:min7"  "G:7/3"  "Bb:hdim7"  "N"  "X"
    pop/jazz symbols: "C"  "Cmaj"  "CM"  "C major"  "Am"  "Amin"  "A-"  "A minor"
        "G7"  "Cmaj7"  "CM7"  "CΔ7"  "CΔ"  "Am7"  "A-7"  "Amin7"  "CmM7"  "Cm(maj7)"
        "Bdim"  "B°"  "Bdim7"  "B°7"  "Bm7b5"  "Bø"  "Bø7"  "Caug"  "C+"
        "Csus2"  "Csus4"  "Csus"  "C6"  "Cm6"  "C9"  "Cmaj9"  "Cm9"  "C11"  "C13"  "C5"  "Cadd9"
    accidentals: "F#"  "F♯"  "Bb"  "B♭"  "F sharp minor"  "B-flat major"
    slash chords: "C/E" -> "C:maj/3"  "Am/G" -> "A:min/b7"
    no chord: "N"  "N.C."  "NC"  "no chord"  "none"  "silence"

Timed sequences accepted by `find_chords` (the tests use this list):

    "0.0-2.0: C major, 2.0-4.0: G major"      "[0.0s - 2.0s] Am"   "(0.0, 2.0, C:maj)"
    "C from 0s to 2s, then G from 2s to 4s"   "C (0-2s), G (2-4s)"
    "[[0, 2, \\"C:maj\\"], [2, 4, \\"G:maj\\"]]"    (JSON, as `mllm` writes chords)
    "0.000 2.000 C:maj" lines (a .lab file)
    start times only: "C at 0.0s, G at 2.0s"  "0.0s: C, 2.0s: G"  "0.0 C\\n2.0 G"
        each chord lasts until the next; the last until `duration` (else as long as the one before)
    no times: "C - G - Am - F"  "The chords are C, G, Am and F."
        read only when `duration` is given: the chords then share [0, duration] equally
"""

from __future__ import annotations

import json
import re

from mllm.core.metrics.mir_eval_package import mir_eval_with
from mllm.core.parse.found import Found
from mllm.core.parse.key import PITCH_CLASS

mir_eval = mir_eval_with("chord")  # not `import mir_eval`: 0.65 s of scipy it does not need

__all__ = ["to_harte", "find_chords", "read_chords"]

# Pop/jazz quality symbols -> Harte shorthands (mir_eval.chord.QUALITIES).
QUALITY = {
    "": "maj", "maj": "maj", "M": "maj", "major": "maj",
    "m": "min", "min": "min", "-": "min", "minor": "min", "mi": "min",
    "7": "7", "dom7": "7", "maj7": "maj7", "M7": "maj7", "Δ7": "maj7", "Δ": "maj7", "ma7": "maj7",
    "m7": "min7", "min7": "min7", "-7": "min7", "mi7": "min7",
    "mM7": "minmaj7", "m(maj7)": "minmaj7", "minmaj7": "minmaj7", "mmaj7": "minmaj7",
    "dim": "dim", "°": "dim", "o": "dim", "dim7": "dim7", "°7": "dim7", "o7": "dim7",
    "m7b5": "hdim7", "m7♭5": "hdim7", "ø": "hdim7", "ø7": "hdim7", "hdim7": "hdim7", "hdim": "hdim7",
    "aug": "aug", "+": "aug",
    "sus2": "sus2", "sus4": "sus4", "sus": "sus4",
    "6": "maj6", "maj6": "maj6", "m6": "min6", "min6": "min6",
    "9": "9", "maj9": "maj9", "M9": "maj9", "m9": "min9", "min9": "min9",
    "11": "11", "m11": "min11", "min11": "min11", "13": "13", "maj13": "maj13", "m13": "min13", "min13": "min13",
    "5": "5", "add9": "maj(9)", "7sus4": "7(4)",  # add9 and 7sus4 have no shorthand: written as intervals
}
# Bass note -> Harte scale degree, by semitones above the root.
DEGREE = ["1", "b2", "2", "b3", "3", "4", "b5", "5", "b6", "6", "b7", "7"]
NO_CHORD = re.compile(r"^(?:n|n\.?\s?c\.?|no[\s-]?chord|none|silence|rest)$", re.I)

_ACC = r"(?:#|♯|b|♭|\s?-?sharp|\s?-?flat)"
_QUALITIES = "|".join(re.escape(q) for q in sorted(QUALITY, key=len, reverse=True) if q)
POP_RE = re.compile(
    rf"^(?P<root>[A-G])(?P<acc>{_ACC})?\s?(?P<quality>{_QUALITIES})?(?:/(?P<bass>[A-G](?:#|♯|b|♭)?))?$"
)
# A chord name inside running text (for sequences): a capital root with optional quality and bass.
CHORD_TOKEN = (
    r"(?:[A-G](?:#|♯|b|♭)?(?::[a-z0-9]+(?:\([^)\s]*\))?(?:/[#b]?[0-9]+)?)?(?:maj|min|m|M|dim|aug|sus|ø|°|Δ|\+|-)?[0-9]{0,2}(?:b5|♭5)?"
    r"(?:\s(?:major|minor))?(?:/[A-G0-9](?:#|♯|b|♭)?)?|N\.C\.|N|NC)"
)


def _pitch_class(letter: str, accidental: str | None) -> int:
    shift = 0
    if accidental:
        accidental = accidental.strip().lstrip("-")
        shift = 1 if accidental in ("#", "♯", "sharp") else -1
    return (PITCH_CLASS[letter] + shift) % 12


def _valid(label: str) -> str | None:
    try:
        mir_eval.chord.validate_chord_label(label)
        mir_eval.chord.encode(label)
    except (mir_eval.chord.InvalidChordException, ValueError, KeyError):
        return None
    return label


def to_harte(name: str) -> str | None:
    """The Harte label of a chord name (see the module docstring), or None if it is not one."""
    text = name.strip().strip(".,;")
    if not text:
        return None
    if NO_CHORD.match(text):
        return "N"
    if text == "X":
        return "X"
    if ":" in text:
        return _valid(text.replace("♯", "#").replace("♭", "b"))
    words = re.sub(r"\s+", " ", text)
    words = re.sub(r"\s?(major|minor)$", lambda m: m.group(1), words, flags=re.I)
    match = POP_RE.match(words) or POP_RE.match(re.sub(r"(?i)(major|minor)$", lambda m: m.group(1).lower(), words))
    if not match:
        return None
    root = match.group("root")
    accidental = match.group("acc")
    if accidental:
        root += "#" if accidental.strip().lstrip("-") in ("#", "♯", "sharp") else "b"
    quality = QUALITY[match.group("quality") or ""]
    label = f"{root}:{quality}"
    if match.group("bass"):
        bass = match.group("bass")
        semitones = (_pitch_class(bass[0], bass[1:] or None) - _pitch_class(match.group("root"), accidental)) % 12
        if semitones:
            label += "/" + DEGREE[semitones]
    return _valid(label)


# ---------------------------------------------------------------- sequences

_NUM = r"(\d+(?:\.\d+)?)\s*(?:s|sec|seconds?)?"
_CHORD = rf"({CHORD_TOKEN})"
# Each pattern yields (start, end, chord) or (start, chord); tried in this order.
SEGMENT_PATTERNS = [
    re.compile(rf"[\[(]?\s*{_NUM}\s*(?:-|–|to|,|\s)\s*{_NUM}\s*[\])]?\s*[:=,]?\s*[\"']?{_CHORD}[\"']?(?![\w#♯♭/:])"),  # 0-2: C | (0, 2, C)
    re.compile(rf"(?<![\w:]){_CHORD}\s*(?::|,)?\s*(?:from|\(|\[)\s*{_NUM}\s*(?:-|–|to|,)\s*{_NUM}"),  # C from 0 to 2 | C (0-2s)
]
START_PATTERNS = [
    re.compile(rf"(?<![\w:]){_CHORD}\s+(?:at|@|starting\s+at|from)\s+{_NUM}"),  # C at 0.0s
    re.compile(rf"(?<![\d.]){_NUM}\s*(?::|-|–)?\s*[\"']?{_CHORD}[\"']?(?![\w#♯♭/:])"),  # 0.0s: C | 0.0 C
]
UNTIMED_SEPARATOR = re.compile(r"\s*(?:,\s*(?:and\s+|then\s+)?|\s-\s|\s–\s|\s*\|\s*|\s*→\s*|\s*->\s*|\s+and\s+|\s+then\s+|\s+)\s*")


def _from_json(text: str):
    start = text.find("[[")
    if start < 0:
        return None
    try:
        rows = json.loads(text[start : text.rfind("]]") + 2])
        out = [(float(r[0]), float(r[1]), to_harte(str(r[2]))) for r in rows]
    except (ValueError, TypeError, IndexError):
        return None
    return out if out and all(r[2] for r in out) else None


def _segments(text: str):
    """Rows of the pattern that reads the most segments."""
    results = [r for r in (_segments_of(text, pattern) for pattern in SEGMENT_PATTERNS) if r]
    return max(results, key=lambda r: len(r[0])) if results else None


def _segments_of(text: str, pattern: re.Pattern):
    rows, first, last = [], None, None
    for match in pattern.finditer(text):
        groups = match.groups()
        if pattern is SEGMENT_PATTERNS[0]:
            start, end, name = float(groups[0]), float(groups[1]), groups[2]
        else:
            name, start, end = groups[0], float(groups[1]), float(groups[2])
        label = to_harte(name)
        if label is None or end <= start:
            continue
        rows.append((start, end, label))
        first = match.start() if first is None else first
        last = match.end()
    return (rows, first, last) if rows else None


def _starts(text: str, duration: float | None):
    for pattern in START_PATTERNS:
        starts, first, last = [], None, None
        for match in pattern.finditer(text):
            groups = match.groups()
            name, start = (groups[0], float(groups[1])) if pattern is START_PATTERNS[0] else (groups[1], float(groups[0]))
            label = to_harte(name)
            if label is None:
                continue
            starts.append((start, label))
            first = match.start() if first is None else first
            last = match.end()
        if len(starts) >= 1 and all(b[0] > a[0] for a, b in zip(starts, starts[1:])):
            ends = [b[0] for b in starts[1:]]
            if duration is not None and duration > starts[-1][0]:
                ends.append(duration)
            elif len(starts) > 1:
                ends.append(starts[-1][0] + (starts[-1][0] - starts[-2][0]))
            else:
                continue
            return [(s, e, label) for (s, label), e in zip(starts, ends)], first, last
    return None


def _untimed(text: str, duration: float):
    body = re.sub(r"^.*?\b(?:chords?|progression)\b[^:]*?(?:are|is|:)\s*", "", text.strip(), flags=re.I | re.S)
    body = body.strip().rstrip(".")
    names = [n for n in UNTIMED_SEPARATOR.split(body) if n]
    labels = [to_harte(n) for n in names]
    if not labels or any(label is None for label in labels):
        return None
    step = duration / len(labels)
    return [(i * step, (i + 1) * step, label) for i, label in enumerate(labels)], len(text) - len(body) - 1, len(text)


def find_chords(text: str, duration: float | None = None) -> Found[list[tuple[float, float, str]]] | None:
    """Timed chords (start, end, Harte label) the text lists (forms in the module docstring), or None."""
    rows = _from_json(text)
    if rows is not None:
        return Found(rows, text.strip(), 0, len(text))
    for reader in (_segments, lambda t: _starts(t, duration)):
        result = reader(text)
        if result is not None:
            rows, first, last = result
            return Found(rows, text[first:last], first, last)
    if duration is not None and duration > 0:
        result = _untimed(text, duration)
        if result is not None:
            rows, first, last = result
            return Found(rows, text[max(first, 0) : last], max(first, 0), last)
    return None


def read_chords(text: str, duration: float | None = None) -> list[tuple[float, float, str]] | None:
    found = find_chords(text, duration)
    return found.value if found else None
