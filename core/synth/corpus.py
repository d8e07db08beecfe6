"""A labelled corpus on disk: audio files in OUT/audio/ and one manifest record per clip.

    options = SynthOptions(seconds=10.0, seed=0)
    for record in synthesize("corpus/", n=200, options=options, workers=2):
        ...   # the manifest records, in index order

Which clip is which (all from the seed, so clip i is the same whatever --n and --workers are):
- with --source both, clip i is a score when floor((i+1) f) > floor(i f) for the scores fraction
  f (scores spread evenly); otherwise every clip is of the one source;
- the g-th generated clip takes its key from a permutation of the 24 keys redrawn every 24
  generated clips (so any 24 consecutive generated clips cover every key once, and n >= 24 is
  balanced to within one clip per key), and its style likewise from a permutation of the styles;
- the j-th score clip takes the j-th chorale of a seeded permutation of the pool;
- the music of clip i comes from a generator seeded by (seed, i); its caption from another.

A record:

    {"id": "synth-0-00007", "audio": "/abs/corpus/audio/synth-0-00007.wav", "start": 0.0, "end": 10.0,
     "dataset": "mllm-synth", "track": "synth-0-00007",
     "labels": {"duration", "tempo_bpm", "beats", "downbeats", "meter", "time_signature", "key",
                "chords", "instruments", "genre", "energy", "brightness", "caption"},
     "scales": {"energy": [1, 9], "brightness": [1, 9]},
     "synth": {"seed", "index", "source", "renderer", "soundfont", "sample_rate", "note_statistics", ...}}

`audio` is an absolute path, so the records work from any folder and through pipes. `track` is
the clip's id for a generated piece and "music21:bach/bwv66.6" for a score, so a split keeps two
renderings of one chorale together. A clip that fails is written as an error record.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from mllm.core.io.errors import Record, make_error
from mllm.core.options import check_integer, check_number
from mllm.core.synth import attributes
from mllm.core.synth.captions import caption
from mllm.core.synth.harmony import KEYS, Key
from mllm.core.synth.pieces import DEFAULT_METERS, DEFAULT_TEMPO_RANGE, Piece, generate_piece
from mllm.core.synth.render import render
from mllm.core.synth.styles import STYLE_NAMES, STYLES

__all__ = ["SynthOptions", "ClipPlan", "plan_corpus", "make_clip", "synthesize", "DATASET", "SOURCES"]

DATASET = "mllm-synth"
SOURCES = ("generated", "scores", "both")
STAGE = "synth"
# Streams of the seed: one per kind of choice, so that adding a choice of one kind moves no other.
KEY_STREAM, STYLE_STREAM, SCORE_STREAM, MUSIC_STREAM, CAPTION_STREAM = range(1, 6)


@dataclass(frozen=True)
class SynthOptions:
    seconds: float = 10.0
    sample_rate: int = 22050
    seed: int = 0
    source: str = "generated"
    scores_fraction: float = 0.25
    styles: tuple[str, ...] = STYLE_NAMES
    meters: tuple[str, ...] = DEFAULT_METERS
    tempo_range: tuple[int, int] = DEFAULT_TEMPO_RANGE
    renderer: str = "tinysoundfont"
    soundfont: str | None = None
    subtype: str = "PCM_16"
    write_midi: bool = False

    def __post_init__(self) -> None:
        # An hour per clip at most: a mistyped --seconds 1e9 must not ask for terabytes.
        check_number("--seconds", self.seconds, above=0, maximum=3600)
        check_integer("--sample-rate", self.sample_rate, minimum=8000, maximum=192000)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        check_number("--scores-fraction", self.scores_fraction, minimum=0, maximum=1)
        unknown = [s for s in self.styles if s not in STYLES]
        if unknown or not self.styles:
            raise ValueError(f"unknown style(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(STYLE_NAMES)}")
        low, high = self.tempo_range
        if not 0 < low <= high:
            raise ValueError(f"tempo range must be LOW,HIGH with 0 < LOW <= HIGH, got {low},{high}")


@dataclass(frozen=True)
class ClipPlan:
    index: int
    id: str
    key: Key | None = None  # generated clips
    style: str | None = None
    score: str | None = None  # score clips: "bach/bwv66.6"


def _is_score(index: int, options: SynthOptions) -> bool:
    if options.source != "both":
        return options.source == "scores"
    f = options.scores_fraction
    return math.floor((index + 1) * f + 1e-9) > math.floor(index * f + 1e-9)


def _from_permutation(seed: int, stream: int, ordinal: int, items: tuple):
    """The ordinal-th item of a sequence of seeded permutations of `items`, one per len(items) ordinals."""
    block, position = divmod(ordinal, len(items))
    order = np.random.default_rng([seed, stream, block]).permutation(len(items))
    return items[int(order[position])]


def plan_corpus(n: int, options: SynthOptions) -> Iterator[ClipPlan]:
    """What each of the n clips will be (cheap: nothing is rendered)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    pool: tuple[str, ...] = ()
    if options.source != "generated" and n > 0:
        from mllm.core.synth.scores import chorale_names

        names = chorale_names()
        if not names:
            raise ValueError("the music21 corpus has no Bach chorales here (music21 installed without its corpus?)")
        order = np.random.default_rng([options.seed, SCORE_STREAM]).permutation(len(names))
        pool = tuple(names[int(i)] for i in order)
    generated = scores = 0
    for index in range(n):
        clip_id = f"synth-{options.seed}-{index:05d}"
        if _is_score(index, options):
            yield ClipPlan(index, clip_id, score=pool[scores % len(pool)])
            scores += 1
        else:
            key = _from_permutation(options.seed, KEY_STREAM, generated, KEYS)
            style = _from_permutation(options.seed, STYLE_STREAM, generated, options.styles)
            yield ClipPlan(index, clip_id, key=key, style=style)
            generated += 1


def _piece(plan: ClipPlan, options: SynthOptions, rng: np.random.Generator) -> Piece:
    if plan.score is not None:
        from mllm.core.synth.scores import score_piece

        return score_piece(rng, plan.score, options.seconds, tempo_range=options.tempo_range)
    return generate_piece(
        rng, plan.key, STYLES[plan.style], options.seconds, meters=options.meters, tempo_range=options.tempo_range,
    )


def make_clip(plan: ClipPlan, out_dir: str | Path, options: SynthOptions) -> Record:
    """Render one clip, write its audio (and MIDI), and return its manifest record (an error record on failure)."""
    out_dir = Path(out_dir).resolve()
    source = f"music21:{plan.score}" if plan.score else "generated"
    record: Record = {"id": plan.id, "dataset": DATASET, "track": source if plan.score else plan.id}
    synth = {"seed": options.seed, "index": plan.index, "source": source}
    try:
        piece = _piece(plan, options, np.random.default_rng([options.seed, MUSIC_STREAM, plan.index]))
        audio, gain = render(piece.midi, piece.duration, options.sample_rate, renderer=options.renderer, soundfont=options.soundfont)
        path = out_dir / "audio" / f"{plan.id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")  # renamed when whole: a kill leaves no short wav
        soundfile.write(str(partial), audio, options.sample_rate, subtype=options.subtype, format="WAV")
        os.replace(partial, path)
        if options.write_midi:
            midi_path = out_dir / "midi" / f"{plan.id}.mid"
            midi_path.parent.mkdir(parents=True, exist_ok=True)
            piece.midi.write(str(midi_path))
            synth["midi"] = str(midi_path)
        stats = attributes.note_statistics(piece.midi, piece.duration)
        labels = piece.labels()
        labels["energy"] = attributes.energy(piece.tempo_bpm, stats)
        labels["brightness"] = attributes.brightness(piece.mode, stats)
        caption_rng = np.random.default_rng([options.seed, CAPTION_STREAM, plan.index])
        if plan.score:
            labels["caption"] = caption(caption_rng, labels, title=piece.details["title"], ensemble=piece.details["ensemble"])
        else:
            labels["caption"] = caption(caption_rng, labels, loop=piece.details["loop"])
        synth.update(
            renderer=options.renderer, soundfont=Path(options.soundfont).name if options.soundfont else "TimGM6mb.sf2",
            sample_rate=options.sample_rate, gain=round(gain, 6), **piece.details,
            note_statistics={"notes_per_second": round(stats.density, 3), "mean_velocity": round(stats.velocity, 2),
                             "mean_pitch": round(stats.pitch, 2), "drums": stats.drums},
        )
        record.update(
            audio=str(path), start=0.0, end=piece.duration, labels=labels,
            scales={"energy": list(attributes.SCALE), "brightness": list(attributes.SCALE)}, synth=synth,
        )
    except Exception as exc:  # noqa: BLE001 - one clip's failure is that clip's error record
        record["synth"] = synth
        record["error"] = make_error(STAGE, exc)
    return record


def _make_clip_job(job: tuple[ClipPlan, str, SynthOptions]) -> Record:
    return make_clip(*job)


def synthesize(out_dir: str | Path, n: int, options: SynthOptions, *, workers: int = 1) -> Iterator[Record]:
    """The records of n clips in index order, rendered by `workers` processes (memory stays flat)."""
    out_dir = str(Path(out_dir).resolve())
    jobs = ((plan, out_dir, options) for plan in plan_corpus(n, options))
    if workers <= 1:
        yield from map(_make_clip_job, jobs)
        return
    # Spawned workers (not forked from a process that runs a progress thread); a bounded window of
    # clips in flight keeps the order and the memory fixed.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(_make_clip_job, job))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
