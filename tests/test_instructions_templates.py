"""Every answer phrasing states its value so that core.parse reads back exactly the structured answer.

Values are generated (hypothesis); labels are drawn from the public vocabularies the adapters
produce (GTZAN, MTG-Jamendo genre/instrument/mood-theme, MusicCaps-like aspects) and read back
with the whole vocabulary as the label set, as eval-mir does with a corpus's labels.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from mllm.core.instructions import mir_qa, tasks
from mllm.core.instructions import templates as tpl
from mllm.core.instructions.tasks import MusicValues
from mllm.core.parse.chords import read_chords
from mllm.core.parse.key import MIR_EVAL_TONICS, read_key
from mllm.core.parse.labels import LabelSet, find_labels
from mllm.core.parse.numbers import read_number
from mllm.core.parse.tempo import read_tempo
from mllm.core.parse.times import read_times

GTZAN = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
MTG_GENRES = [
    "60s", "70s", "80s", "90s", "acidjazz", "alternative", "alternativerock", "ambient", "atmospheric", "blues",
    "bluesrock", "bossanova", "breakbeat", "celtic", "chanson", "chillout", "choir", "classical", "classicrock",
    "club", "contemporary", "country", "dance", "darkambient", "darkwave", "deephouse", "disco", "downtempo",
    "drumnbass", "dub", "dubstep", "easylistening", "edm", "electronic", "electronica", "electropop", "ethno",
    "eurodance", "experimental", "folk", "funk", "fusion", "gothic", "groove", "grunge", "hard", "hardrock",
    "hiphop", "house", "idm", "improvisation", "indie", "industrial", "instrumentalpop", "instrumentalrock",
    "jazz", "jazzfusion", "latin", "lounge", "medieval", "metal", "minimal", "newage", "newwave", "orchestral",
    "oriental", "pop", "popfolk", "poprock", "postrock", "progressive", "psychedelic", "punkrock", "rap",
    "reggae", "rnb", "rock", "rocknroll", "singersongwriter", "soul", "soundtrack", "swing", "symphonic",
    "synthpop", "techno", "trance", "triphop", "world", "worldfusion",
]
MTG_INSTRUMENTS = [
    "accordion", "acousticbassguitar", "acousticguitar", "bass", "beat", "bell", "bongo", "brass", "cello",
    "clarinet", "classicalguitar", "computer", "doublebass", "drummachine", "drums", "electricguitar",
    "electricpiano", "flute", "guitar", "harmonica", "harp", "horn", "keyboard", "oboe", "orchestra", "organ",
    "pad", "percussion", "piano", "pipeorgan", "rhodes", "sampler", "saxophone", "strings", "synthesizer",
    "trombone", "trumpet", "viola", "violin", "voice",
]
MTG_MOODS = [
    "action", "adventure", "advertising", "background", "ballad", "calm", "children", "christmas", "commercial",
    "cool", "corporate", "dark", "deep", "documentary", "drama", "dramatic", "dream", "emotional", "energetic",
    "epic", "fast", "film", "fun", "funny", "game", "groovy", "happy", "heavy", "holiday", "hopeful", "inspiring",
    "love", "meditative", "melancholic", "melodic", "motivational", "movie", "nature", "party", "positive",
    "powerful", "relaxing", "retro", "romantic", "sad", "sexy", "slow", "soft", "soundscape", "space", "sport",
    "summer", "trailer", "travel", "upbeat", "uplifting",
]
ASPECTS = [
    "low quality", "sustained strings melody", "soft female vocal", "mellow piano melody", "sad", "soulful",
    "ballad", "guitar song", "piano backing", "simple percussion", "relaxing melody", "slow tempo", "bass",
    "country feel", "instrumental", "no voice", "amateur recording", "reverb", "male vocal", "electronic music",
]
HARTE_QUALITIES = ["maj", "min", "7", "maj7", "min7", "dim", "aug", "sus2", "sus4", "hdim7", "dim7", "maj6", "min6", "9", "minmaj7"]
ROOTS = ["C", "C#", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
SCALES = [(1.0, 9.0), (0.0, 1.0), (-1.0, 1.0), (0.0, 100.0), (-40.0, 0.0), (1.0, 5.0)]

seconds = st.floats(min_value=0, max_value=600, allow_nan=False).map(lambda t: round(t, 3))


def values(**labels) -> MusicValues:
    return MusicValues({"labels": labels})


def rendered(target) -> list[str]:
    return [p.render(target.fill) for p in tpl.ANSWERS[target.templates]]


def test_every_task_has_several_phrasings_and_matching_answers():
    assert set(tpl.QUESTIONS) == set(tpl.ANSWERS)
    for name, phrasings in tpl.QUESTIONS.items():
        assert len(phrasings) >= 2, name
        assert len({p.id for p in phrasings}) == len(phrasings)
        assert all(tpl.AUDIO_PLACEHOLDER not in p.text for p in phrasings)
    for name, phrasings in tpl.ANSWERS.items():
        assert name == "caption" or len(phrasings) >= 2, name


@given(st.sampled_from(sorted(MIR_EVAL_TONICS)), st.sampled_from(["major", "minor"]))
def test_key_answers_read_back(tonic, mode):
    target = tasks.key_targets(values(key=f"{tonic} {mode}"))[0]
    assert target.answer == {"key": f"{tonic} {mode}"}
    for text in rendered(target):
        assert read_key(text) == f"{tonic} {mode}", text


@given(st.floats(min_value=10, max_value=1000, allow_nan=False))
def test_tempo_answers_read_back(bpm):
    target = tasks.tempo_targets(values(tempo_bpm=bpm))[0]
    assert abs(target.answer["tempo_bpm"] - bpm) <= 0.05 + 1e-9
    for text in rendered(target):
        assert read_tempo(text) == target.answer["tempo_bpm"], text


@given(st.integers(min_value=1, max_value=16))
def test_meter_answers_read_back_against_every_meter(meter):
    label_set = LabelSet.of([str(n) for n in range(1, 17)])
    target = tasks.meter_targets(values(meter=meter))[0]
    assert target.answer == {"meter": str(meter)}
    for text in rendered(target):
        assert [f.value for f in find_labels(text, label_set)] == [str(meter)], text


@pytest.mark.parametrize("name", ["beats", "downbeats"])
@given(times=st.lists(seconds, min_size=1, max_size=40))
def test_time_answers_read_back(name, times):
    target = tasks.times_targets(name)(values(**{name: times}))[0]
    assert target.answer[name] == sorted({round(t, 2) for t in times})
    for text in rendered(target):
        assert read_times(text) == target.answer[name], text


chord_labels = st.one_of(
    st.just("N"),
    st.builds(lambda r, q: f"{r}:{q}", st.sampled_from(ROOTS), st.sampled_from(HARTE_QUALITIES)),
    st.builds(lambda r, b: f"{r}:maj/{b}", st.sampled_from(ROOTS), st.sampled_from(["3", "5", "b7"])),
    st.builds(lambda r, q: f"{r}{q}", st.sampled_from(ROOTS), st.sampled_from(["", "m", "7", "m7", "maj7", "dim", "sus4"])),
)


@given(st.lists(st.tuples(st.floats(min_value=0.01, max_value=8, allow_nan=False), chord_labels), min_size=1, max_size=12),
       st.floats(min_value=0, max_value=100, allow_nan=False))
def test_chord_answers_read_back(segments, start):
    rows, time = [], start
    for length, label in segments:
        rows.append([time, time + length, label])
        time += length
    target = tasks.chord_targets(values(chords=rows))[0]
    for text in rendered(target):
        assert [list(r) for r in read_chords(text)] == target.answer["chords"], text


@pytest.mark.parametrize("vocabulary", [GTZAN, MTG_GENRES], ids=["gtzan", "mtg"])
def test_genre_answers_name_only_their_genre(vocabulary):
    label_set = LabelSet.of(vocabulary)
    for genre in vocabulary:
        target = tasks.single_label_targets("genre")(values(genre=genre))[0]
        for text in rendered(target):
            assert [f.value for f in find_labels(text, label_set)] == [genre], text


@pytest.mark.parametrize("family,vocabulary", [
    ("genres", MTG_GENRES), ("instruments", MTG_INSTRUMENTS), ("moods", MTG_MOODS), ("tags", ASPECTS),
])
@given(data=st.data())
def test_label_list_answers_read_back(family, vocabulary, data):
    labels = data.draw(st.lists(st.sampled_from(vocabulary), min_size=1, max_size=6, unique=True))
    label_set = LabelSet.of(vocabulary)
    target = tasks.label_list_targets(family)(values(**{family: labels}))[0]
    for text in rendered(target):
        assert sorted(f.value for f in find_labels(text, label_set)) == sorted(labels), text


@given(st.sampled_from(SCALES), st.floats(min_value=0, max_value=1), st.sampled_from(["arousal", "valence", "energy", "loudness_lufs"]))
def test_regression_answers_read_back(scale, fraction, name):
    value = scale[0] + fraction * (scale[1] - scale[0])
    target = tasks.regression_target(name, values(**{name: value}), {}, {name: scale})
    assert target.fields == {"scale": list(scale)}
    for text in rendered(target):
        assert read_number(text, scale, name) == target.answer[name], text


def test_the_emotion_papers_form():
    target = tasks.regression_target("arousal", values(arousal=3.6), {}, {})
    assert tpl.ANSWERS["regression"][0].render(target.fill) == "I would assign a 3.6 on the 1-9 scale."
    target = tasks.regression_target("arousal", values(arousal=8.04), {}, {})
    assert tpl.ANSWERS["regression"][0].render(target.fill) == "I would assign an 8 on the 1-9 scale."


@pytest.mark.parametrize("family", ["arousal_class", "valence_class", "quadrant"])
def test_emotion_class_answers_read_back(family):
    labels = tasks.CLASS_LABELS[family]
    for label in labels:
        target = tasks.single_label_targets(family)(values(**{family: label}))[0]
        for text in rendered(target):
            assert [f.value for f in find_labels(text, LabelSet.of(labels))] == [label], text


@given(st.sampled_from(sorted(MIR_EVAL_TONICS)), st.sampled_from(["major", "minor"]),
       st.floats(min_value=10, max_value=1000, allow_nan=False), st.integers(min_value=1, max_value=16))
def test_mir_qa_compound_answers_read_back(tonic, mode, bpm, meter):
    record_values = values(key=f"{tonic} {mode}", tempo_bpm=bpm, meter=meter)
    for kind in ("tempo_key", "meter_tempo"):
        target = mir_qa.BUILDERS[kind](record_values, random.Random(0))
        for text in rendered(target):
            assert read_tempo(text) == target.answer["tempo_bpm"], text
            if kind == "tempo_key":
                assert read_key(text) == target.answer["key"], text
            else:
                assert [f.value for f in find_labels(text, LabelSet.of([str(meter)]))] == [str(meter)], text


@given(st.lists(st.tuples(st.floats(min_value=0.01, max_value=8, allow_nan=False), chord_labels), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=1000), st.lists(seconds, min_size=1, max_size=8))
def test_mir_qa_chord_at_and_first_downbeat_read_back(segments, seed, downbeats):
    rows, time = [], 0.0
    for length, label in segments:
        rows.append([time, time + length, label])
        time += length
    record_values = values(chords=rows, downbeats=downbeats)
    first = mir_qa.BUILDERS["first_downbeat"](record_values, random.Random(seed))
    for text in rendered(first):
        assert read_times(text) == [min(round(t, 2) for t in downbeats)], text
    try:
        target = mir_qa.BUILDERS["chord_at"](record_values, random.Random(seed))
    except tasks.Skip:
        return  # only "N" chords
    start, end, label = next(r for r in target_rows(record_values) if r[2] == target.answer["chord"] and r[0] <= target.answer["time"] < r[1])
    assert start <= target.answer["time"] < end
    for text in rendered(target):
        assert {row[2] for row in read_chords(text, duration=target.answer["time"] + 1)} == {label}, text


def target_rows(record_values):
    return tasks.chord_targets(record_values)[0].answer["chords"]


def test_labels_after_a_negated_aspect_still_read():
    text = "Tags: " + tpl.format_labels(["no voice", "piano"]) + "."
    assert text == "Tags: piano and no voice."
    assert sorted(f.value for f in find_labels(text, LabelSet.of(["no voice", "piano", "voice"]))) == ["no voice", "piano"]


def test_formatting_helpers():
    assert tpl.format_number(120.0, 1) == "120" and tpl.format_number(3.6049, 1) == "3.6" and tpl.format_number(-0.004, 2) == "0"
    assert tpl.scale_text((1, 9)) == "1-9" and tpl.scale_text((-1, 1)) == "-1 to 1"
    assert [tpl.indefinite_article(n) for n in ("3.6", "8", "11", "18.5", "80", "1")] == ["a", "an", "an", "an", "an", "a"]
    assert tpl.format_labels(["a", "b", "c"]) == "a, b, and c"
