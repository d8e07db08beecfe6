"""Question and answer phrasings per task, and how values are written into them.

Every answer phrasing states its value in a form `mllm.core.parse` reads back to exactly the
structured `answer` (tests/test_instructions_templates.py checks each one over generated values):

    key         "The key is A minor."                       parse.key      -> "A minor"
    tempo       "The tempo is 120.5 BPM."                   parse.tempo    -> 120.5   (1 decimal)
    meter       "There are 4 beats in each bar."            parse.labels   -> "4"
    beats       "Beats: 0.52s, 1.04s, 1.56s."               parse.times    -> [0.52, 1.04, 1.56] (2 decimals)
    chords      "The chords are C:maj from 0.0s to 2.0s, G:maj from 2.0s to 4.0s."
                                                            parse.chords   -> [(0.0, 2.0, "C:maj"), ...]
    genre       "The genre is rock."                        parse.labels   -> "rock"
    instruments "Instruments: piano, drums, and voice."     parse.labels   -> {piano, drums, voice}
    regression  "I would assign a 3.6 on the 1-9 scale."    parse.numbers  -> 3.6 (the emotion paper's form)

Phrasings avoid words that are labels of the public vocabularies (GTZAN genres, MTG-Jamendo genre,
instrument and mood/theme tags: "beat", "voice", "dance", "fast", "film", ...), number words, and
negations, so an answer names its value and nothing else a parser could take for one.

A phrasing's id ("key/q2", "key/a1") is written into each instruction record's `source.template`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AUDIO_PLACEHOLDER",
    "Phrasing",
    "QUESTIONS",
    "ANSWERS",
    "format_number",
    "format_times",
    "format_chords_from_to",
    "format_chords_spans",
    "format_labels",
    "scale_text",
    "indefinite_article",
]

AUDIO_PLACEHOLDER = "<audio>"

TEMPO_DECIMALS = 1
TIME_DECIMALS = 2
NEGATION_WORDS = ("no ", "not ", "non ", "non-", "without ")


@dataclass(frozen=True)
class Phrasing:
    id: str  # "key/q1"
    text: str  # with {placeholders}

    def render(self, fill: dict[str, str]) -> str:
        text = self.text.format(**fill)
        return text[:1].upper() + text[1:]


def _phrasings(task: str, kind: str, texts: Sequence[str]) -> tuple[Phrasing, ...]:
    return tuple(Phrasing(f"{task}/{kind}{i}", text) for i, text in enumerate(texts, start=1))


# ---------------------------------------------------------------- values in text


def format_number(value: float, decimals: int) -> str:
    """`value` rounded to `decimals`, without trailing zeros: 120.0 -> "120", 3.60 -> "3.6"."""
    text = f"{round(float(value), decimals):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def number_decimals(scale: tuple[float, float]) -> int:
    """Decimals of a value on `scale`: one on wide scales (1-9: "3.6"), two on narrow ones (0-1)."""
    return 1 if scale[1] - scale[0] >= 2 else 2


def scale_text(scale: tuple[float, float]) -> str:
    """ "1-9" for the emotion paper's form; "-1 to 1" when the low end is negative (a dash would read as a sign)."""
    low, high = (format_number(v, 2) for v in scale)
    return f"{low}-{high}" if scale[0] >= 0 else f"{low} to {high}"


def indefinite_article(number: str) -> str:
    """ "an" before numbers said with a vowel sound (8, 11, 18, 80-89, 8.5), else "a"."""
    whole = number.lstrip("+").split(".")[0]
    return "an" if whole.startswith("8") or whole in ("11", "18") else "a"


def format_times(times: Sequence[float]) -> str:
    """ "0.52s, 1.04s, 1.56s" (CMI-Bench's own format, with spaces)."""
    return ", ".join(f"{format_number(t, TIME_DECIMALS)}s" for t in times)


def format_chords_from_to(rows: Sequence[Sequence]) -> str:
    """ "C:maj from 0.0s to 2.0s, G:maj from 2.0s to 4.0s" """
    return ", ".join(
        f"{label} from {format_number(start, TIME_DECIMALS)}s to {format_number(end, TIME_DECIMALS)}s"
        for start, end, label in rows
    )


def format_chords_spans(rows: Sequence[Sequence]) -> str:
    """ "0.0s-2.0s: C:maj, 2.0s-4.0s: G:maj" """
    return ", ".join(
        f"{format_number(start, TIME_DECIMALS)}s-{format_number(end, TIME_DECIMALS)}s: {label}" for start, end, label in rows
    )


def format_labels(labels: Sequence[str]) -> str:
    """ "piano", "piano and drums", "piano, drums, and voice".

    Labels that start with a negation ("no voice", a MusicCaps aspect) go last, and lists of three
    or more take the serial comma, so no label stands after "no ..." in the same clause (the label
    parser would read it as negated).
    """
    items = sorted(labels, key=lambda label: label.lower().startswith(NEGATION_WORDS))
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def rounded(value: float, decimals: int) -> float:
    """The value the text states: `format_number` read back as a float."""
    number = float(format_number(value, decimals))
    return 0.0 if number == 0 else number


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- phrasings
# Placeholders: {key} {tempo} {meter} {times} {chords_from_to} {chords_spans} {label} {labels}
# {value} {a} (article of value) {scale} {low} {high} {name} {about} {caption} {time} {chord}

QUESTIONS: dict[str, tuple[Phrasing, ...]] = {
    "key": _phrasings("key", "q", (
        "What is the key of this piece?",
        "In which key is this music?",
        "What key is this song in?",
        "Identify the key and mode of this recording.",
    )),
    "tempo": _phrasings("tempo", "q", (
        "What is the tempo of this track in beats per minute (BPM)?",
        "How fast is this music, in BPM?",
        "Estimate the tempo of this clip in BPM.",
        "What is the BPM of this recording?",
    )),
    "meter": _phrasings("meter", "q", (
        "How many beats are there in each bar of this music?",
        "What is the meter of this piece, in beats per bar?",
        "Count the beats in a bar of this music. How many are there?",
    )),
    "beats": _phrasings("beats", "q", (
        "List the beat times of this music in seconds.",
        "At which times, in seconds, do the beats fall?",
        "Where are the beats in this clip? Give their times in seconds.",
    )),
    "downbeats": _phrasings("downbeats", "q", (
        "List the downbeat times of this music in seconds.",
        "At which times, in seconds, does each bar start?",
        "Where are the downbeats in this clip? Give their times in seconds.",
    )),
    "chords": _phrasings("chords", "q", (
        "Which chords are played in this clip, and when?",
        "Transcribe the chord progression of this music with start and end times.",
        "List the chords of this recording with their times in seconds.",
    )),
    "genre": _phrasings("genre", "q", (
        "What genre is this music?",
        "Which genre does this track belong to?",
        "How would you classify the genre of this recording?",
    )),
    "genres": _phrasings("genres", "q", (
        "Which genres describe this track?",
        "What genre tags fit this music?",
        "List the genres of this recording.",
    )),
    "instruments": _phrasings("instruments", "q", (
        "Which instruments can you hear in this recording?",
        "What instruments are played here?",
        "List the instruments in this clip.",
    )),
    "moods": _phrasings("moods", "q", (
        "Which moods or themes does this track suggest?",
        "What mood tags fit this music?",
        "Describe the mood of this recording with tags.",
    )),
    "tags": _phrasings("tags", "q", (
        "Which tags describe this clip?",
        "Give tags for this music.",
        "What tags would you assign to this recording?",
    )),
    "regression": _phrasings("regression", "q", (
        "How would you rate the {name}{about} of this music on a scale from {low} to {high}?",
        "On a scale from {low} to {high}, what is the {name} of this piece?",
        "Rate the {name}{about} of this clip from {low} to {high}.",
    )),
    "arousal_class": _phrasings("arousal_class", "q", (
        "Is the arousal of this music high or low?",
        "Does this piece have high or low arousal?",
    )),
    "valence_class": _phrasings("valence_class", "q", (
        "Is the valence of this music positive or negative?",
        "Does this piece have positive or negative valence?",
    )),
    "quadrant": _phrasings("quadrant", "q", (
        "In which quadrant of the arousal-valence plane (Q1 to Q4) does this music lie?",
        "Which emotion quadrant, Q1 to Q4, fits this piece?",
    )),
    "caption": _phrasings("caption", "q", (
        "Describe this music.",
        "Write a short caption for this clip.",
        "Give a short summary of the provided audio.",
        "What does this recording sound like?",
    )),
    # LLark-style MIR questions built from the metadata (mir_qa.py): one entry per question type.
    "mir_qa/tempo_key": _phrasings("mir_qa/tempo_key", "q", (
        "What are the tempo and key of this piece?",
        "How fast is this music, and in which key is it?",
    )),
    "mir_qa/meter_tempo": _phrasings("mir_qa/meter_tempo", "q", (
        "How many beats are in a bar, and what is the tempo?",
        "Describe the meter and the tempo of this music.",
    )),
    "mir_qa/chord_at": _phrasings("mir_qa/chord_at", "q", (
        "Which chord is played at {time} seconds?",
        "What chord do you hear at {time}s?",
    )),
    "mir_qa/first_downbeat": _phrasings("mir_qa/first_downbeat", "q", (
        "When does the first downbeat occur?",
        "At what time does the first bar start?",
    )),
}

ANSWERS: dict[str, tuple[Phrasing, ...]] = {
    "key": _phrasings("key", "a", (
        "The key is {key}.",
        "This piece is in {key}.",
        "It is in the key of {key}.",
        "{key}.",
    )),
    "tempo": _phrasings("tempo", "a", (
        "The tempo is {tempo} BPM.",
        "It moves at {tempo} beats per minute.",
        "This track runs at about {tempo} BPM.",
        "{tempo} BPM.",
    )),
    "meter": _phrasings("meter", "a", (
        "There are {meter} beats in each bar.",
        "Each bar has {meter} beats.",
        "It has {meter} beats per bar.",
    )),
    "beats": _phrasings("beats", "a", (
        "The beats are at {times}.",
        "Beats: {times}.",
        "I hear beats at {times}.",
    )),
    "downbeats": _phrasings("downbeats", "a", (
        "The downbeats are at {times}.",
        "Downbeats: {times}.",
        "Each bar starts at {times}.",
    )),
    "chords": _phrasings("chords", "a", (
        "The chords are {chords_from_to}.",
        "Chords: {chords_spans}.",
        "The progression goes {chords_from_to}.",
    )),
    "genre": _phrasings("genre", "a", (
        "The genre is {label}.",
        "This is {label}.",
        "It sounds like {label}.",
        "I would call this {label}.",
    )),
    "genres": _phrasings("genres", "a", (
        "Genres: {labels}.",
        "The genre tags are {labels}.",
        "It can be tagged as {labels}.",
    )),
    "instruments": _phrasings("instruments", "a", (
        "Instruments: {labels}.",
        "I can hear {labels}.",
        "The instrumentation includes {labels}.",
    )),
    "moods": _phrasings("moods", "a", (
        "Moods and themes: {labels}.",
        "It suggests {labels}.",
        "The mood tags are {labels}.",
    )),
    "tags": _phrasings("tags", "a", (
        "Tags: {labels}.",
        "This clip can be described as {labels}.",
        "The tags are {labels}.",
    )),
    "regression": _phrasings("regression", "a", (
        "I would assign {a} {value} on the {scale} scale.",
        "On a scale from {low} to {high}, the {name} is {value}.",
        "The {name} is {value} on the {scale} scale.",
        "I'd rate the {name} at {value} on a scale from {low} to {high}.",
    )),
    "arousal_class": _phrasings("arousal_class", "a", (
        "The arousal is {label}.",
        "It has {label} arousal.",
    )),
    "valence_class": _phrasings("valence_class", "a", (
        "The valence is {label}.",
        "It has {label} valence.",
    )),
    "quadrant": _phrasings("quadrant", "a", (
        "It lies in {label}.",
        "This music belongs to {label}.",
    )),
    "caption": _phrasings("caption", "a", ("{caption}",)),
    "mir_qa/tempo_key": _phrasings("mir_qa/tempo_key", "a", (
        "The tempo is {tempo} BPM and the key is {key}.",
        "It is in {key} at {tempo} BPM.",
    )),
    "mir_qa/meter_tempo": _phrasings("mir_qa/meter_tempo", "a", (
        "There are {meter} beats in each bar and the tempo is {tempo} BPM.",
        "Each bar has {meter} beats, at {tempo} BPM.",
    )),
    "mir_qa/chord_at": _phrasings("mir_qa/chord_at", "a", (
        "The chord at {time}s is {chord}.",
        "At {time}s the chord is {chord}.",
    )),
    "mir_qa/first_downbeat": _phrasings("mir_qa/first_downbeat", "a", (
        "The first downbeat is at {time}s.",
        "The first bar starts at {time}s.",
    )),
}
