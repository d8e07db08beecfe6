"""core.parse.chords: chord names to Harte labels, and timed chord sequences."""

from __future__ import annotations

import mir_eval
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mllm.core.parse.chords import find_chords, read_chords, to_harte

NAMES = [
    ("C:maj", "C:maj"), ("A:min7", "A:min7"), ("G:7/3", "G:7/3"), ("Bb:hdim7", "Bb:hdim7"), ("N", "N"), ("X", "X"),
    ("C", "C:maj"), ("Cmaj", "C:maj"), ("CM", "C:maj"), ("C major", "C:maj"), ("Am", "A:min"), ("Amin", "A:min"),
    ("A-", "A:min"), ("A minor", "A:min"), ("G7", "G:7"), ("Cmaj7", "C:maj7"), ("CM7", "C:maj7"), ("CΔ7", "C:maj7"),
    ("CΔ", "C:maj7"), ("Am7", "A:min7"), ("A-7", "A:min7"), ("Amin7", "A:min7"), ("CmM7", "C:minmaj7"),
    ("Cm(maj7)", "C:minmaj7"), ("Bdim", "B:dim"), ("B°", "B:dim"), ("Bdim7", "B:dim7"), ("B°7", "B:dim7"),
    ("Bm7b5", "B:hdim7"), ("Bø", "B:hdim7"), ("Bø7", "B:hdim7"), ("Caug", "C:aug"), ("C+", "C:aug"),
    ("Csus2", "C:sus2"), ("Csus4", "C:sus4"), ("Csus", "C:sus4"), ("C6", "C:maj6"), ("Cm6", "C:min6"), ("C9", "C:9"),
    ("Cmaj9", "C:maj9"), ("Cm9", "C:min9"), ("C11", "C:11"), ("C13", "C:13"), ("C5", "C:5"), ("Cadd9", "C:maj(9)"),
    ("F#", "F#:maj"), ("F♯", "F#:maj"), ("Bb", "Bb:maj"), ("B♭", "Bb:maj"), ("F sharp minor", "F#:min"),
    ("B-flat major", "Bb:maj"), ("C/E", "C:maj/3"), ("Am/G", "A:min/b7"), ("N.C.", "N"), ("NC", "N"),
    ("no chord", "N"), ("none", "N"), ("silence", "N"),
]


@pytest.mark.parametrize("name, harte", NAMES)
def test_chord_names(name, harte):
    assert to_harte(name) == harte
    mir_eval.chord.validate_chord_label(harte)


@pytest.mark.parametrize("name", ["H", "Cxyz", "hello", "", "C:notaquality"])
def test_not_chords(name):
    assert to_harte(name) is None


TWO = [(0.0, 2.0, "C:maj"), (2.0, 4.0, "G:maj")]
SEQUENCES = [
    ("0.0-2.0: C major, 2.0-4.0: G major", None, TWO),
    ("[0.0s - 2.0s] Am", None, [(0.0, 2.0, "A:min")]),
    ("(0.0, 2.0, C:maj), (2.0, 4.0, G:7)", None, [(0.0, 2.0, "C:maj"), (2.0, 4.0, "G:7")]),
    ("C from 0s to 2s, then G from 2s to 4s", None, TWO),
    ("C (0-2s), G (2-4s)", None, TWO),
    ('[[0, 2, "C:maj"], [2, 4, "G:maj"]]', None, TWO),
    ("0.000 2.000 C:maj\n2.000 4.000 A:min", None, [(0.0, 2.0, "C:maj"), (2.0, 4.0, "A:min")]),
    ("C at 0.0s, G at 2.0s", None, TWO),
    ("C at 0.0s, G at 2.0s", 5.0, [(0.0, 2.0, "C:maj"), (2.0, 5.0, "G:maj")]),
    ("0.0s: C, 2.0s: G", None, TWO),
    ("0.0 C\n2.0 G", None, TWO),
    ("C - G - Am - F", 8.0, [(0, 2, "C:maj"), (2, 4, "G:maj"), (4, 6, "A:min"), (6, 8, "F:maj")]),
    ("The chords are C, G, Am and F.", 8.0, [(0, 2, "C:maj"), (2, 4, "G:maj"), (4, 6, "A:min"), (6, 8, "F:maj")]),
]


@pytest.mark.parametrize("text, duration, rows", SEQUENCES)
def test_sequences(text, duration, rows):
    assert read_chords(text, duration) == [(pytest.approx(s), pytest.approx(e), c) for s, e, c in rows]


def test_untimed_chords_need_a_duration_and_prose_is_not_chords():
    assert find_chords("C - G - Am - F") is None
    assert find_chords("I hear a happy song.", duration=8.0) is None


ROOTS = ["C", "C#", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
QUALITIES = {"": "maj", "m": "min", "7": "7", "maj7": "maj7", "m7": "min7", "dim": "dim", "aug": "aug", "sus4": "sus4"}


@given(
    chords=st.lists(st.tuples(st.sampled_from(ROOTS), st.sampled_from(sorted(QUALITIES))), min_size=1, max_size=12),
    step=st.floats(min_value=0.25, max_value=8).map(lambda x: round(x, 2)),
    style=st.sampled_from(["{s:.2f}-{e:.2f}: {c}", "{c} from {s:.2f}s to {e:.2f}s", "{s:.3f} {e:.3f} {c}"]),
)
def test_any_timed_sequence_round_trips(chords, step, style):
    rows = [(i * step, (i + 1) * step, root + quality) for i, (root, quality) in enumerate(chords)]
    text = ", ".join(style.format(s=s, e=e, c=c) for s, e, c in rows)
    read = read_chords(text)
    assert read is not None, text
    assert [c for _, _, c in read] == [f"{root}:{QUALITIES[q]}" for root, q in chords]
    assert [s for s, _, _ in read] == pytest.approx([s for s, _, _ in rows], abs=0.006)
