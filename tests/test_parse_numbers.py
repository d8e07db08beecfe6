"""core.parse.numbers and core.parse.numerals: ratings on a scale, number words, scale mentions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mllm.core.parse.numbers import find_number, read_number
from mllm.core.parse.numerals import find_numerals, words_to_number

NINE = (1.0, 9.0)
PHRASINGS = [
    ("I would assign a 3.6 on the 1-9 scale", NINE, None, 3.6),
    ("Score: 7/9", NINE, None, 7),
    ("7 out of 9", NINE, None, 7),
    ("7 / 9", NINE, None, 7),
    ("On a scale from 1 to 9, I'd rate the arousal as 6.5.", NINE, None, 6.5),
    ("On a scale of 1-9: 4", NINE, None, 4),
    ("The estimated arousal score is 8 on the 1-9 scale.", NINE, None, 8),
    ("The estimated arousal score of the given music is 2.", NINE, "arousal", 2),
    ("6.5", NINE, None, 6.5),
    ("6.5.", NINE, None, 6.5),
    ("seven", NINE, None, 7),
    ("six and a half", NINE, None, 6.5),
    ("seven point five", NINE, None, 7.5),
    ("between 5 and 6", NINE, None, 5.5),
    ("5-6", NINE, None, 5.5),
    ("5 to 6", NINE, None, 5.5),
    ("5 or 6", NINE, None, 5.5),
    ("Arousal: 6, valence: 3", NINE, "valence", 3),
    ("Arousal: 6, valence: 3", NINE, "arousal", 6),
    ("Valence is 3 and arousal is 8", NINE, "arousal", 8),
    ("around 8.", NINE, None, 8),
    ("roughly 2", NINE, None, 2),
    ("-0.4", (-1.0, 1.0), None, -0.4),
    ("70%", (0.0, 100.0), None, 70),
    ("The tempo is 120 BPM so the arousal is 6", NINE, None, 6),
    ("1. Arousal: 6", NINE, None, 6),
    ("A 9-point scale: 3", NINE, None, 3),
    ("on a scale from 1 to 9 I give it 2", NINE, None, 2),
    ("I'd rate it 12", NINE, None, 12),  # outside the scale: returned, the caller clips and counts
    ("I would rate it 4 out of 9.", NINE, None, 4),
    ("This one deserves a 7.", NINE, None, 7),
    ("On a scale of 1 to 9, where 1 is calm and 9 is excited, this is a 3.", NINE, None, 3),
    ("The music has 2 guitars and I rate it 6", NINE, None, 6),
    ("A score of 5 seems appropriate, given the 120 BPM tempo.", NINE, None, 5),
    ("Based on the music, I would rate the valence as 4.5 out of 9.", NINE, "valence", 4.5),
    ("I'd give it a 9.", NINE, None, 9),
]

NO_NUMBER = ["Hard to say.", "I cannot estimate the arousal of this clip.", "On a scale of 1 to 9.", ""]


@pytest.mark.parametrize("text, scale, name, value", PHRASINGS)
def test_phrasings(text, scale, name, value):
    assert read_number(text, scale, name) == pytest.approx(value)


@pytest.mark.parametrize("text", NO_NUMBER)
def test_no_number(text):
    assert find_number(text, NINE) is None


@pytest.mark.parametrize(
    "words, value",
    [("seven", 7), ("twenty-one", 21), ("one hundred and twenty", 120), ("a hundred", 100), ("six and a half", 6.5),
     ("seven point five", 7.5), ("half", 0.5), ("zero", 0), ("two thousand and five", 2005), ("banana", None)],
)
def test_number_words(words, value):
    assert words_to_number(words) == value


def test_numerals_keep_ranges_and_signs_apart():
    assert [n.value for n in find_numerals("on the 1-9 scale, -0.5")] == [1, 9, -0.5]
    assert [n.value for n in find_numerals("1,200 and 3.6")] == [1200, 3.6]
    assert [n.value for n in find_numerals("(−2.5)")] == [-2.5]
    assert find_numerals("v1.2") == []  # a version, glued to a letter
    assert find_numerals("this one is fine") == []  # "one" as a pronoun


TEMPLATES = [
    "{v}",
    "I would assign a {v} on the 1-9 scale",
    "Score: {v}/9",
    "{v} out of 9",
    "On a scale from 1 to 9, I'd rate the arousal as {v}.",
    "The estimated arousal score is {v} on the 1-9 scale.",
    "Arousal: {v} (the song is quite lively at 128 BPM)",
]


@given(value=st.floats(min_value=1, max_value=9).map(lambda x: round(x, 2)), template=st.sampled_from(TEMPLATES))
def test_any_value_in_any_phrasing(value, template):
    text = template.format(v=f"{value:g}")
    assert read_number(text, NINE) == pytest.approx(value), text
    assert read_number(text, NINE, "arousal") == pytest.approx(value), text


@given(low=st.integers(-10, 10), width=st.integers(1, 100), data=st.data())
def test_scale_mentions_are_never_the_answer(low, width, data):
    high = low + width
    value = data.draw(st.integers(low, high).filter(lambda v: v not in (low, high)))
    text = f"On a scale from {low} to {high}, I would say {value}."
    assert read_number(text, (low, high)) == value


# ---------------------------------------------------------------- issue 9: spurious numbers

@pytest.mark.parametrize("text, value", [("1.2e1", 12.0), ("1e-3", 0.001), ("3.6E2", 360.0), ("−1.5e−1", -0.15)])
def test_scientific_notation_is_read_whole(text, value):
    assert [n.value for n in find_numerals(text)] == [pytest.approx(value)]


def test_non_finite_numbers_are_not_numbers():
    assert find_numerals("1e400") == []
    assert find_numerals("9" * 400) == []


@pytest.mark.parametrize("text, value", [("1.2e1", 12.0), ("1e-3", 0.001), ("I'd rate it 1.2e1", 12.0)])
def test_scientific_notation_on_a_scale_is_what_it_says(text, value):
    # Outside 1-9 but within one scale width of it: returned, the caller clips (like "I'd rate it 12").
    assert read_number(text, NINE) == pytest.approx(value)


@pytest.mark.parametrize("text", ["1e308", "I'd rate it 1e308", "1e400", "I rate it 30"])
def test_numbers_far_outside_the_scale_are_refused(text):
    assert find_number(text, NINE) is None


@pytest.mark.parametrize(
    "text", ["loop endlesspirate 07", "guitar loops 001 ... 120 bpm", "guitar loops 001 120 bpm", "Op. 27", "track 3"]
)
def test_numbers_inside_names_are_not_answers(text):
    assert find_number(text, NINE) is None


def test_a_rating_beside_a_name_is_read():
    assert read_number("loop endlesspirate 07: I would rate the arousal 6.", NINE) == 6
    assert [n.value for n in find_numerals("loops 001 at 0.5")] == [0.5]  # decimals are not zero-padded


# CMI-Bench's EMO prompt (data/EMO/sft_emo.py of nicolaus625/CMI-bench), as its result files hold it.
CMI_AROUSAL_QUESTION = """Estimate the arousal score of the given music on a scale from 1 to 9, where 1 represents the \
lowest arousal level (calm, relaxing) and 9 represents the highest arousal level (energetic, intense). Provide a \
numerical estimate based on your perception of the music.

            Example 1, when the music is slow and gentle, suggesting a low arousal level:
            Estimated score: 2.

            Example 2, when the music is energetic and driving, indicating a high arousal level:
            Estimated score: 8.

            Example 3, when the music has a balanced tempo and moderate intensity:
            Estimated score: 5."""


@pytest.mark.parametrize(
    "response",
    [
        "The estimated arousal scores of the given music are 2, 8, and 5, respectively.",
        "Example 1: Estimated score: 2. Example 2: Estimated score: 8.",
        "2, 8, 5",
    ],
)
def test_a_response_that_echoes_the_examples_is_not_an_answer(response):
    assert find_number(response, NINE, "arousal", question=CMI_AROUSAL_QUESTION) is None
    assert find_number(response, NINE, "arousal") is not None  # without the question: read as before


@pytest.mark.parametrize(
    "response, value",
    [
        ("The estimated arousal score of the given music is 2.", 2),  # one example value is an answer
        ("Estimated score: 5.", 5),
        ("I would rate it 6, between the examples 5 and 8.", 6),
        ("Example 1 is calm; this music is a 7.", 7),
    ],
)
def test_answers_beside_the_examples_are_read(response, value):
    assert read_number(response, NINE, "arousal", question=CMI_AROUSAL_QUESTION) == value


def test_the_examples_of_a_question_leave_out_the_scale_and_enumerators():
    from mllm.core.parse.numbers import _example_values

    assert _example_values(CMI_AROUSAL_QUESTION, NINE) == {2, 8, 5}
    assert _example_values("Estimate its arousal on a scale from 1 (very calm) to 9 (very intense). "
                           "Return a single number between 1 and 9.", NINE) == set()


@pytest.mark.parametrize(("text", "expected"), [
    ("SEVEN, maybe 8", [(7.0, "SEVEN"), (8.0, "8")]),
    ("café: seven", [(7.0, "seven")]),  # not ASCII: the words are looked for without the hint
    ("Énergie 6 — six and a half", [(6.0, "6"), (6.5, "six and a half")]),
    ("x-5 (-5) :-5 .5 a.5", [(5.0, "5"), (-5.0, "-5"), (-5.0, "-5"), (0.5, ".5")]),
    ("no numbers at all", []),
])
def test_numerals_in_ascii_and_other_text(text, expected):
    assert [(n.value, n.text) for n in find_numerals(text)] == expected
