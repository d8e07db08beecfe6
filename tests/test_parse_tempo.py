"""core.parse.tempo: the phrasings of its docstring, and properties over tempi and phrasings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mllm.core.parse.tempo import find_tempo, read_tempo

PHRASINGS = [
    ("around 128 BPM", 128),
    ("128bpm", 128),
    ("128 b.p.m.", 128),
    ("128 beats per minute", 128),
    ("128 beats/min", 128),
    ("The tempo is 121.", 121),
    ("Tempo: 120", 120),
    ("tempo of about 90", 90),
    ("tempo ~ 140", 140),
    ("♩ = 120", 120),
    ("quarter note = 96", 96),
    ("q=100", 100),
    ("MM 120", 120),
    ("M.M. = 120", 120),
    ("BPM: 128", 128),
    ("The BPM is 128", 128),
    ("BPM = 95.5", 95.5),
    ("The tempo is around 90-95 BPM.", 92.5),
    ("one hundred and twenty beats per minute", 120),
    ("ninety-six BPM", 96),
    ("between 120 and 124 BPM", 122),
    ("120-124 BPM", 122),
    ("120 to 124 bpm", 122),
    ("120", 120),
    ("120.5", 120.5),
    ("Tempo: 120 BPM (steady)", 120),
    ("The tempo is 3/4 at 90 BPM", 90),
    ("The song has a tempo of 95 and is in 4/4.", 95),
    ("The tempo is moderate; 2 guitars play at 100 BPM", 100),
    ("It's in 4/4 time at roughly 72 BPM with a swing feel.", 72),
]

NOT_TEMPI = ["In 4/4 time.", "3/4", "The tempo is fast.", "4 beats per bar", "30 seconds", "440 Hz", "It is quite fast.", ""]


@pytest.mark.parametrize("text, bpm", PHRASINGS)
def test_phrasings(text, bpm):
    assert read_tempo(text) == pytest.approx(bpm)


@pytest.mark.parametrize("text", NOT_TEMPI)
def test_texts_without_a_tempo(text):
    assert find_tempo(text) is None


TEMPLATES = [
    "{t} BPM",
    "around {t} BPM",
    "The tempo is {t}.",
    "The tempo of this song is approximately {t} beats per minute.",
    "Tempo: {t} BPM (steady), in 4/4 with 8 bars of intro.",
    "This 3/4 waltz moves at {t} bpm.",
    "{t}",
]


@given(bpm=st.floats(min_value=20, max_value=400).map(lambda x: round(x, 1)), template=st.sampled_from(TEMPLATES))
def test_any_tempo_in_any_phrasing(bpm, template):
    text = template.format(t=f"{bpm:g}")
    found = find_tempo(text)
    assert found is not None and found.value == pytest.approx(bpm), text
    assert f"{bpm:g}" in found.text


# ---------------------------------------------------------------- issue 9: numbers inside names


@pytest.mark.parametrize(
    "text, bpm",
    [("guitar loops 001 120 bpm", 120), ("guitar loops 001 ... 120 bpm", 120), ("loop endlesspirate 07, tempo 96", 96),
     ("1.2e2 BPM", 120)],
)
def test_numbers_inside_names_are_skipped(text, bpm):
    assert read_tempo(text) == pytest.approx(bpm)


@pytest.mark.parametrize(
    "text", ["The tempo of loop endlesspirate 07 is fast.", "The tempo of guitar loops 090 is fast.", "Tempo of Op. 27: lively"]
)
def test_a_name_is_not_a_tempo(text):
    assert find_tempo(text) is None
