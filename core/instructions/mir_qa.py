"""LLark-style MIR questions built from the metadata, and captions composed from labels/features.

LLark (Gardner et al. 2024, Sec. 4.2) asks a language model for question-answer pairs about each
clip's metadata (tempo, key, beat grid, chords, tags). These questions are the part of that which
needs no language model: each combines values of the metadata, and its answer states them so that
`core.parse` reads each one back (the tests check it).

    type            needs                 question / answer (one phrasing each of several)
    tempo_key       tempo_bpm, key        "What are the tempo and key of this piece?"
                                          "The tempo is 120 BPM and the key is A minor."
    meter_tempo     meter, tempo_bpm      "How many beats are in a bar, and what is the tempo?"
                                          "There are 4 beats in each bar and the tempo is 120 BPM."
    chord_at        chords                "Which chord is played at 2.5 seconds?"   (a chord drawn by seed,
                                          "The chord at 2.5s is G:maj."              the time is its middle)
    first_downbeat  downbeats             "When does the first downbeat occur?"
                                          "The first downbeat is at 0.52s."

A record gets as many distinct question types as asked (`--per-task`), drawn by seed among those
its values allow. All are written with task "mir_qa" (eval-mir does not score them: they are
free-text answers, scored with eval-caption or by their structured `answer`).

A caption is composed only when the record has no `caption`: one or two sentences from the genre,
key, tempo, meter, instruments, moods and tags it has ("A rock piece in A minor at 120 BPM, with 4
beats per bar. It features piano and drums."). LLark found captions from such global values poorer
than human ones; they are marked `source.template` "caption/composed..." so a study can leave them out.
"""

from __future__ import annotations

import random

from mllm.core.instructions import tasks
from mllm.core.instructions import templates as tpl
from mllm.core.instructions.tasks import MusicValues, Skip, Target
from mllm.core.parse.chords import read_chords

__all__ = ["QUESTION_TYPES", "mir_qa_targets", "compose_caption"]

QUESTION_TYPES = ("tempo_key", "meter_tempo", "chord_at", "first_downbeat")


def _merge(kind: str, parts: list[Target], answer: dict, fill: dict) -> Target:
    sources = sorted({p.labels_from for p in parts if p.labels_from})
    checks = [p.check for p in parts if p.check]
    return Target(
        "mir_qa", f"mir_qa/{kind}", answer, fill, None, "+".join(sources) or None,
        check=lambda text: all(check(text) for check in checks),
    )


def _tempo_key(values: MusicValues, rng: random.Random) -> Target:
    key = tasks.key_targets(values)[0]
    tempo = tasks.tempo_targets(values)[0]
    return _merge("tempo_key", [key, tempo], {**tempo.answer, **key.answer}, {**tempo.fill, **key.fill})


def _meter_tempo(values: MusicValues, rng: random.Random) -> Target:
    meter = tasks.meter_targets(values)[0]
    tempo = tasks.tempo_targets(values)[0]
    # The meter is checked against its own label only: a tempo like "93.5" holds a "5".
    meter.check = tasks._checker("classification", "meter", meter.answer, labels=[meter.answer["meter"]])
    return _merge("meter_tempo", [meter, tempo], {**meter.answer, **tempo.answer}, {**meter.fill, **tempo.fill})


def _chord_at(values: MusicValues, rng: random.Random) -> Target:
    chords = tasks.chord_targets(values)[0]
    rows = [row for row in chords.answer["chords"] if row[2] not in ("N", "X")]
    if not rows:
        raise Skip("no chords")
    start, end, label = rng.choice(rows)
    time = tpl.rounded((start + end) / 2, tpl.TIME_DECIMALS)
    if not start <= time < end:
        time = start
    answer = {"time": time, "chord": label}

    def check(text: str) -> bool:
        rows = read_chords(text, duration=time + 1.0)
        return rows is not None and {row[2] for row in rows} == {label}

    target = _merge("chord_at", [chords], answer, {"time": tpl.format_number(time, tpl.TIME_DECIMALS), "chord": label})
    target.check = check
    return target


def _first_downbeat(values: MusicValues, rng: random.Random) -> Target:
    downbeats = tasks.times_targets("downbeats")(values)[0]
    time = downbeats.answer["downbeats"][0]
    target = _merge("first_downbeat", [downbeats], {"first_downbeat": time}, {"time": tpl.format_number(time, tpl.TIME_DECIMALS)})
    target.check = tasks._checker("downbeats", "downbeats", {"downbeats": [time]})
    return target


BUILDERS = {
    "tempo_key": _tempo_key,
    "meter_tempo": _meter_tempo,
    "chord_at": _chord_at,
    "first_downbeat": _first_downbeat,
}


def mir_qa_targets(values: MusicValues, rng: random.Random, count: int = 1) -> list[Target]:
    """Up to `count` questions of distinct types, drawn by `rng` among those the values allow."""
    available: list[Target] = []
    for kind in QUESTION_TYPES:
        try:
            available.append(BUILDERS[kind](values, rng))
        except Skip:
            continue
    if not available:
        raise Skip("no values for any MIR question (tempo and key, meter and tempo, chords, downbeats)")
    return rng.sample(available, min(count, len(available)))


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def compose_caption(values: MusicValues, rng: random.Random) -> tuple[str, str, str | None]:
    """(caption, template id, source) composed from the record's values; raises Skip when it has none."""
    sources: set[str] = set()

    def take(read):
        try:
            target = read(values)[0]
        except Skip:
            return None
        sources.add(target.labels_from)
        return target

    genre = take(tasks.single_label_targets("genre"))
    genres = None if genre else take(tasks.label_list_targets("genres"))
    key = take(tasks.key_targets)
    tempo = take(tasks.tempo_targets)
    meter = take(tasks.meter_targets)
    instruments = take(tasks.label_list_targets("instruments"))
    moods = take(tasks.label_list_targets("moods"))
    tags = take(tasks.label_list_targets("tags"))
    if not any((genre, genres, key, tempo, meter, instruments, moods, tags)):
        raise Skip("no caption, and no values to compose one from")

    variant = rng.randrange(2)
    style = genre.fill["label"] if genre else None
    noun = "piece" if variant == 0 else "track"
    subject = f"{_article(style)} {style} {noun}" if style else f"a {noun}"
    first = subject if variant == 0 else f"this is {subject}"
    if genres:
        first += f" blending {genres.fill['labels']}"
    if key:
        first += f" in {key.fill['key']}"
    if tempo:
        first += f" at {tempo.fill['tempo']} BPM"
    if meter:
        first += f", with {meter.fill['meter']} beats per bar"
    sentences = [first[:1].upper() + first[1:] + "."]
    if instruments:
        verb = "It features" if variant == 0 else "You can hear"
        sentences.append(f"{verb} {instruments.fill['labels']}.")
    if moods:
        sentences.append(f"The mood is {moods.fill['labels']}.")
    if tags:
        sentences.append(f"Tags: {tags.fill['labels']}.")
    facts_from = "+".join(sorted(s for s in sources if s)) or None
    return " ".join(sentences), f"caption/composed{variant + 1}", facts_from
