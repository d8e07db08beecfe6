"""core.parse.times: beat and downbeat lists as LLMs write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mllm.core.parse.times import find_times, read_times

PHRASINGS = [
    ("0.52s, 1.04s, 1.56s", [0.52, 1.04, 1.56]),
    ("0.0s,0.54s,1.0ss", [0.0, 0.54, 1.0]),
    ("0.5, 1.0, 1.5", [0.5, 1.0, 1.5]),
    ("[0.5, 1.0, 1.5]", [0.5, 1.0, 1.5]),
    ("0.5 1.0 1.5", [0.5, 1.0, 1.5]),
    ("0.5 seconds, 1.0 seconds and 1.5 seconds", [0.5, 1.0, 1.5]),
    ("0.5 sec, 1 sec", [0.5, 1.0]),
    ("The beats are at 0.5, 1.0, 1.5 and 2.0 seconds.", [0.5, 1.0, 1.5, 2.0]),
    ("500ms, 1000 ms", [0.5, 1.0]),
    ("500, 1000 ms", [0.5, 1.0]),
    ("1:02.5, 1:03.0", [62.5, 63.0]),
    ("0:01.20", [1.2]),
    ("1:02:03", [3723.0]),
    ("Beat 1: 0.52s\nBeat 2: 1.04s", [0.52, 1.04]),
    ("1. 0.5s\n2. 1.0s", [0.5, 1.0]),
    ("Downbeats (4/4 at 120 BPM): 0.5s, 2.5s, 4.5s", [0.5, 2.5, 4.5]),
    ("[]", []),
]

NOT_TIMES = ["Percussion: [0.0s-10.0s]", "Label with timestamps: Percussion: [0.0s-10.0s]", "120 BPM in 4/4", "I cannot hear the beats.", ""]


@pytest.mark.parametrize("text, times", PHRASINGS)
def test_phrasings(text, times):
    assert read_times(text) == pytest.approx(times)


@pytest.mark.parametrize("text", NOT_TIMES)
def test_texts_without_times(text):
    assert find_times(text) is None


FORMATS = {
    "seconds": lambda t: f"{t:.2f}s",
    "bare": lambda t: f"{t:.2f}",
    "words": lambda t: f"{t:.2f} seconds",
    "ms": lambda t: f"{round(t * 1000)}ms",
    "clock": lambda t: f"{int(t // 60)}:{t % 60:05.2f}",
}
JOINERS = [", ", ",", " ", "; ", "\n"]


@given(
    times=st.lists(st.floats(min_value=0, max_value=600).map(lambda x: round(x, 2)), min_size=1, max_size=40),
    style=st.sampled_from(sorted(FORMATS)),
    joiner=st.sampled_from(JOINERS),
    wrap=st.sampled_from(["{}", "[{}]", "The beats are at {}.", "Beat times: {}"]),
)
def test_any_list_in_any_format_round_trips(times, style, joiner, wrap):
    text = wrap.format(joiner.join(FORMATS[style](t) for t in times))
    read = read_times(text)
    assert read is not None, text
    assert read == pytest.approx(times, abs=0.006), text


# ---------------------------------------------------------------- issue 9: spurious times

SPURIOUS = [
    "The audio clip contains 10 beats.",  # a count, not a beat at 10 s
    "There are 8 bars and 32 beats.",
    "Label: 60s, slow",  # a label answer (a decade tag), not a beat at 60 s
    "Tags: 60s, 70s, retro",
    "The clip is 30 seconds long.",  # a duration
    "It lasts 30 s.",
    "loop endlesspirate 07",  # a number in a name
    "guitar loops 001 ... 120 bpm",
    "Speech: 0.0s-0.5s, 1.0s-1.5s, 2.0s",  # a sound-event list: not beats, loose times included
    "Speech [0.0s-0.5s], Dog bark [1.0s-1.5s]",
    "0.0s~0.5s, 1.0s~1.5s",
    "(0.0s, 0.5s), (1.0s, 1.5s)",
    "[0.00, 0.50], [1.00, 1.50]",
]


@pytest.mark.parametrize("text", SPURIOUS)
def test_counts_labels_durations_names_and_segments_are_not_beats(text):
    assert find_times(text) is None


@pytest.mark.parametrize(
    "text, times",
    [
        ("0.5s, 1.0s, 1.5s, 2.0s, 2.5s, 3.0s, 3.5s, 4.0s, 4.5s, 5.0s, 5.5s, 6.0s, 6.5s, 7.0s, 7.5s, 8.0s, 8.5s, 9.0s, 9.5s, 10.0s.",
         [x / 2 for x in range(1, 21)]),  # a list that ends a sentence at 10.0s.
        ("The audio clip contains 4 beats: 0.5s, 1.0s, 1.5s, 2.0s.", [0.5, 1.0, 1.5, 2.0]),
        ("The clip is 30 seconds long. Beats: 0.5s, 1.0s", [0.5, 1.0]),
        ("Label: 0.5s, 1.0s, 1.5s", [0.5, 1.0, 1.5]),
        ("The first downbeat is at 60s.", [60.0]),
        ("[0.5, 1.0]", [0.5, 1.0]),  # one bracketed pair is a list of two
        ("Beats between 0s-10s: 0.5s, 1.0s", [0.5, 1.0]),  # one range is skipped, the list is read
        ("Beats of loop 07: 0.5s, 1.0s", [0.5, 1.0]),
        ("1e-1s, 0.5s", [0.1, 0.5]),
    ],
)
def test_lists_beside_counts_and_names_are_read(text, times):
    assert read_times(text) == pytest.approx(times)
