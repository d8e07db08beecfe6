"""core.parse.labels: closed label sets with synonyms, negation and longest match."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mllm.core.parse.labels import LabelSet, find_labels, normalise

GTZAN = LabelSet.of(["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"])
INSTRUMENTS = LabelSet.of(["drums", "vocals", "guitar", "piano", "percussion", "bass"])


def labels(text, label_set):
    return [found.value for found in find_labels(text, label_set)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("This is a blues song.", ["blues"]),
        ("Pop.", ["pop"]),
        ("ROCK", ["rock"]),
        ("rock music", ["rock"]),
        ("hip-hop", ["hiphop"]),
        ("hip hop", ["hiphop"]),
        ("Hip_Hop", ["hiphop"]),
        ("It's not rock, it's jazz.", ["jazz"]),
        ("not rock but jazz", ["jazz"]),
        ("a non-metal song", []),
        ("It sounds like rock or pop", ["rock", "pop"]),
        ("Rock, rock and more rock.", ["rock"]),
        ("Classical music with strings", ["classical"]),
        ("Sounds like electronic dance music", []),
    ],
)
def test_genres(text, expected):
    assert labels(text, GTZAN) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("guitars and Pianos", ["guitar", "piano"]),
        ("drum kit", ["drums"]),
        ("drum set", ["drums"]),
        ("a drummer", ["drums"]),
        ("singing", ["vocals"]),
        ("a singer", ["vocals"]),
        ("voice", ["vocals"]),
        ("There are no vocals or drums; just piano.", ["piano"]),
        ("The song doesn't have drums but has guitar", ["guitar"]),
        ("bass and percussion", ["bass", "percussion"]),
        ("without any percussion", []),
    ],
)
def test_instruments(text, expected):
    assert labels(text, INSTRUMENTS) == expected


def test_longest_label_wins_and_spans_point_at_the_text():
    punk = LabelSet.of(["punk rock", "rock"])
    found = find_labels("Definitely Punk-Rock.", punk)
    assert [f.value for f in found] == ["punk rock"]
    assert found[0].text == "Punk-Rock" and "Definitely Punk-Rock."[found[0].start : found[0].end] == "Punk-Rock"


def test_synonyms_do_not_override_labels_of_the_set():
    # "percussion" is a label here, so it does not become a synonym of anything.
    assert labels("percussion", INSTRUMENTS) == ["percussion"]
    with_voice = LabelSet.of(["voice", "vocals"])
    assert labels("voice", with_voice) == ["voice"] and labels("singing", with_voice) in (["voice"], ["vocals"])


def test_user_synonyms_and_canonical_names():
    genres = LabelSet.of(["electronic", "hiphop"], {"electronic": ["EDM", "techno"], "not-a-label": ["x"]})
    assert labels("Pure techno.", genres) == ["electronic"]
    assert genres.canonical("Hip Hop") == "hiphop"
    assert genres.canonical("hip-hop") == "hiphop"
    assert genres.canonical("EDM") == "electronic"
    assert genres.canonical("x") is None
    assert INSTRUMENTS.canonical("Drum Kit") == "drums" and INSTRUMENTS.canonical("guitars") == "guitar"


def test_normalise():
    assert normalise("  Hip-Hop/Rap & B ") == "hip hop rap and b"


WORDS = st.sampled_from(["blues", "country", "disco", "jazz", "metal", "pop", "reggae", "rock"])


@given(label=WORDS, noise=st.sampled_from(["", "I think ", "The genre is ", "Probably "]), case=st.sampled_from([str.lower, str.upper, str.title]))
def test_a_label_is_found_in_any_case_and_framing(label, noise, case):
    assert labels(f"{noise}{case(label)}.", GTZAN) == [label]


@given(label=WORDS, other=WORDS, negation=st.sampled_from(["not", "no", "without", "isn't", "rather than"]))
def test_a_negated_label_is_never_read(label, other, negation):
    text = f"It is {negation} {label}, it is {other}."
    assert label not in labels(text, GTZAN) or label == other


# ---------------------------------------------------------------- issue 9: word forms (Snowball stems)

VOCAL_TECHNIQUES = LabelSet.of(["belt", "breathy", "inhaled", "lip_trill", "spoken", "straight", "trill", "trillo", "vibrato", "vocal_fry"])
MOODS = LabelSet.of(["happy", "sad", "calm", "dark", "love", "energetic", "relaxing"])


@pytest.mark.parametrize(
    "text, label_set, expected",
    [
        ("Belting", VOCAL_TECHNIQUES, ["belt"]),
        ("The singer is belting with vibrato.", VOCAL_TECHNIQUES, ["belt", "vibrato"]),
        ("inhaling", VOCAL_TECHNIQUES, ["inhaled"]),
        ("trilling", VOCAL_TECHNIQUES, ["trill"]),
        ("sadness", MOODS, ["sad"]),
        ("A feeling of happiness and calmness.", MOODS, ["happy", "calm"]),
        ("darkness", MOODS, ["dark"]),
        ("relaxed", MOODS, ["relaxing"]),
        ("not happiness but sadness", MOODS, ["sad"]),  # negation still applies
        ("a rocking track", GTZAN, ["rock"]),
        ("drumming", INSTRUMENTS, ["drums"]),  # a built-in synonym, not a stem (doubled m)
    ],
)
def test_word_forms_of_labels_are_matched(text, label_set, expected):
    assert labels(text, label_set) == expected


@pytest.mark.parametrize(
    "text, label_set",
    [
        ("rocket science", GTZAN),
        ("classic", GTZAN),  # classic rock is not classical music
        ("a metallic timbre", GTZAN),
        ("a popping bass line", GTZAN),
        ("blue", GTZAN),
        ("Sadly, I cannot tell.", MOODS),
        ("a lovely tune", MOODS),
        ("sadder", MOODS),
        ("energy", MOODS),
        ("melancholy", MOODS),  # a synonym, not a word form
        ("rich piano voicings", LabelSet.of(["voice", "guitar"])),
        ("percussive", INSTRUMENTS),
    ],
)
def test_words_that_only_share_a_stem_are_not_labels(text, label_set):
    assert labels(text, label_set) == []


def test_word_forms_in_both_directions_and_with_user_synonyms():
    assert labels("classical", LabelSet.of(["classic", "rock"])) == []
    assert labels("melancholy", LabelSet.of(["sad", "happy"], {"sad": ["melancholy"]})) == ["sad"]
    assert labels("grieving", LabelSet.of(["sad", "happy"], {"sad": ["grieve"]})) == ["sad"]
    assert MOODS.canonical("Happiness") == "happy" and VOCAL_TECHNIQUES.canonical("Belting") == "belt"
    assert GTZAN.canonical("classic") is None
    found = find_labels("Lots of belting here.", VOCAL_TECHNIQUES)
    assert found[0].text == "belting" and found[0].start == 8
