"""core.parse.key: the phrasings of its docstring, and properties over every key and phrasing."""

from __future__ import annotations

import mir_eval
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mllm.core.parse.key import Key, find_key, read_key

PHRASINGS = [
    ("The key of this song is F# minor.", "F# minor"),
    ("It sounds like A-flat major", "Ab major"),
    ("C major", "C major"),
    ("c minor", "C minor"),
    ("A Minor", "A minor"),
    ("F#m", "F# minor"),
    ("F#min", "F# minor"),
    ("F# min.", "F# minor"),
    ("Am", "A minor"),
    ("Amin", "A minor"),
    ("Cmaj", "C major"),
    ("C maj", "C major"),
    ("CM", "C major"),
    ("Bb major", "Bb major"),
    ("B♭ major", "Bb major"),
    ("B flat major", "Bb major"),
    ("B-flat major", "Bb major"),
    ("C# minor", "C# minor"),
    ("C♯ minor", "C# minor"),
    ("C sharp minor", "C# minor"),
    ("C-sharp minor", "C# minor"),
    ("E# major", "F major"),
    ("Cb major", "B major"),
    ("A:minor", "A minor"),
    ("A:min", "A minor"),
    ("a-minor", "A minor"),
    ("a minor", "A minor"),
    ("D Dorian", "D other"),
    ("A Aeolian", "A minor"),
    ("C Ionian", "C major"),
    ("in the key of D", "D major"),
    ("Key: D", "D major"),
    ("D", "D major"),
    ("The song is in E.", "E major"),
    ("The key: Gbm", "Gb minor"),
    ("Ebminor", "Eb minor"),
    ("The key is not C major; it is A minor.", "A minor"),
    ("Eb major (the relative minor is C minor)", "Eb major"),
    ("A major part of the song is the drums. The key is D minor.", "D minor"),
    ("The musical key of the given audio is C major.", "C major"),
    ("**Key:** G major", "G major"),
    ("I think it's G minor, or maybe Bb major.", "G minor"),
]

NOT_KEYS = [
    "A great song!",
    "I cannot determine the key.",
    "a minor change in the melody",
    "The tempo is 120 BPM.",
    "in A section the drums enter",
    "Bm7 chord",
    "C/E",
    "",
]


@pytest.mark.parametrize("text, key", PHRASINGS)
def test_phrasings(text, key):
    assert read_key(text) == key
    mir_eval.key.validate_key(key)  # every reading is a valid mir_eval key string


@pytest.mark.parametrize("text", NOT_KEYS)
def test_texts_without_a_key(text):
    assert find_key(text) is None


def test_found_points_at_the_text_that_decided():
    text = "Well, I'd say the key is probably B-flat minor here."
    found = find_key(text)
    assert found.value == Key("Bb", "minor")
    assert text[found.start : found.end] == found.text == "B-flat minor"
    assert found.value.pitch_class == 10


LETTERS = "CDEFGAB"
ACCIDENTALS = {"": 0, "#": 1, "♯": 1, " sharp": 1, "-sharp": 1, "b": -1, "♭": -1, " flat": -1, "-flat": -1}
MODE_WORDS = {"major": "major", "Major": "major", "maj": "major", "minor": "minor", "Minor": "minor", "min": "minor", "m": "minor"}
TEMPLATES = [
    "{k}",
    "The key is {k}.",
    "This piece is in {k}, with a bright feel.",
    "It sounds like {k} to me",
    "Key: {k}",
    "I would say {k}",
    "The song appears to be in the key of {k}. The tempo is moderate.",
]


@given(
    letter=st.sampled_from(LETTERS),
    accidental=st.sampled_from(sorted(ACCIDENTALS)),
    mode_word=st.sampled_from(sorted(MODE_WORDS)),
    template=st.sampled_from(TEMPLATES),
)
def test_any_key_in_any_phrasing_is_read_with_its_pitch_class_and_mode(letter, accidental, mode_word, template):
    assume(not (mode_word == "m" and accidental.strip("- ").isalpha()))  # nobody writes "C flatm"
    separator = "" if mode_word == "m" else " "
    text = template.format(k=f"{letter}{accidental}{separator}{mode_word}")
    found = find_key(text)
    assert found is not None, text
    expected_pitch_class = (mir_eval.key.KEY_TO_SEMITONE[letter.lower()] + ACCIDENTALS[accidental]) % 12
    tonic, mode = mir_eval.key.split_key_string(str(found.value))
    assert (tonic, mode) == (expected_pitch_class, MODE_WORDS[mode_word]), text
