"""Offline preference data with known answers, from a labelled corpus (`mllm synth`'s manifest).

    result = build_pairs(clips, "pairs/", PairOptions(seed=0))
    result.pairs    # alignment and musicality pair records
    result.mos      # one MOS-style record per clip version (clean and each degradation level)

Two kinds of pair, each with the preferred side known by construction:

- **alignment**: the prompt is clip c's caption (`labels.caption`, which names its tempo, key and
  instruments); the preferred audio is c, the other a clip d of the same split that does not fit
  that caption: a different key, a tempo at least `min_tempo_change` (20 %) away, and other
  instruments. `per_clip` such d are drawn for each c (seeded), each a pair. `mismatch` lists
  what differs (always all three under the default rule).
- **musicality**: clip c rendered clean against c degraded (core/reward_model/degrade.py) at a
  known level: clean against each of levels 1-4, and each level against the next (1 v 2, 2 v 3,
  3 v 4), the less degraded preferred. Each clip takes one degradation kind (noise, clip or
  detune), the kinds taken in turn from a seeded permutation so that they are balanced.

Which side (`audio` or `audio_b`) holds the preferred clip is a seeded coin flip per pair, so
"a" and "b" are equally often right. Pairs never cross splits: a clip's `split` is its own, else
drawn from a hash of its `track` (core/instructions/splits.py, `fractions` train/valid/test), and
every pair and MOS record of the clip carries it.

A pair record (the fields `mllm eval-reward` and `mllm train-reward` read):

    {"id": "synth-0-00007:align-1", "axis": "alignment", "prompt": "Piano, double bass and drums ...",
     "audio": "/abs/pairs/audio/synth-0-00031.clean.wav", "audio_b": "/abs/pairs/audio/synth-0-00007.clean.wav",
     "preference": "b", "split": "train", "clip": "synth-0-00007", "mismatched_clip": "synth-0-00031", "mismatch": ["key", "tempo", "instruments"],
     "source": "build-pairs"}
    {"id": "synth-0-00007:clean-v-noise-2", "axis": "musicality", "prompt": ..., "audio": ..., "audio_b": ...,
     "preference": "a", "system": "clean", "system_b": "level-2", "degradation": "noise", ...}

A MOS-style record per version of a clip, for per-system correlation: `system` is the level
("clean", "level-1" ... "level-4"), `musicality` a stand-in opinion score fixed by the level,
5 - level (clean 5, level 4 1), so the known ranking of the systems is clean > 1 > 2 > 3 > 4:

    {"id": "synth-0-00007:noise-2", "audio": ..., "prompt": ..., "system": "level-2", "musicality": 3.0,
     "degradation": "noise", "level": 2, "split": "train", "clip": "synth-0-00007", "source": "build-pairs"}

These are constructed labels, not human judgements: they test that a reward model can learn and
rank what it is given, not what listeners prefer.

Every version of a clip is written as OUT/audio/<clip id>.<clean | kind-level>.wav (16-bit PCM,
the clip's span and sample rate), the clean one too, so that the two sides of a musicality pair
went through the same decoding and writing. A clip that cannot be used (unreadable audio, a label
missing) gives an error record naming the field, in `pairs`; the other clips go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from mllm.core.audio.records import record_audio
from mllm.core.instructions.splits import SplitRule
from mllm.core.io.errors import Record, RecordError, has_error, with_error
from mllm.core.options import check_integer, check_number
from mllm.core.parse.key import read_key
from mllm.core.reward_model.degrade import KINDS, LEVELS, degrade, system_name

__all__ = ["PairOptions", "Built", "build_pairs", "mismatch", "MOS_OF_LEVEL", "STAGE"]

STAGE = "build-pairs"
SOURCE = "build-pairs"
MOS_OF_LEVEL = {0: 5.0, 1: 4.0, 2: 3.0, 3: 2.0, 4: 1.0}
# Streams of the seed, one per kind of choice.
KIND_STREAM, NEGATIVE_STREAM, SIDE_STREAM, NOISE_STREAM = range(1, 5)


@dataclass(frozen=True)
class PairOptions:
    per_clip: int = 2  # alignment pairs per clip (mismatching clips drawn)
    kinds: tuple[str, ...] = KINDS
    min_tempo_change: float = 0.2  # an alignment negative's tempo differs by at least this fraction
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # splits of clips without one
    seed: int = 0

    def __post_init__(self) -> None:
        check_integer("--per-clip", self.per_clip, minimum=0)
        check_number("--min-tempo-change", self.min_tempo_change, minimum=0, below=1)
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"--kinds: unknown degradation(s) {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(KINDS)}")


@dataclass
class Built:
    pairs: list[Record] = field(default_factory=list)
    mos: list[Record] = field(default_factory=list)
    clips: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Clip:
    id: str
    split: str
    caption: str
    tempo: float
    key: str
    instruments: frozenset[str]
    clean: str  # path of the clean version


def _labels(record: Mapping[str, Any]) -> tuple[str, float, str, frozenset[str]]:
    """(caption, tempo, key, instruments) of a clip; RecordError naming the label that is missing."""
    labels = record.get("labels")
    if not isinstance(labels, Mapping):
        raise RecordError("record has no 'labels' object (a manifest of `mllm synth`)", "labels")
    caption = labels.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise RecordError("field 'labels.caption' must be the clip's caption text", "labels.caption")
    tempo = labels.get("tempo_bpm")
    if isinstance(tempo, bool) or not isinstance(tempo, (int, float)) or not tempo > 0:
        raise RecordError(f"field 'labels.tempo_bpm' must be a tempo > 0, got {tempo!r}", "labels.tempo_bpm")
    key = read_key(str(labels.get("key"))) if labels.get("key") is not None else None
    if key is None:
        raise RecordError(f"field 'labels.key' must be a key such as 'A minor', got {labels.get('key')!r}", "labels.key")
    instruments = labels.get("instruments")
    if not isinstance(instruments, list) or not instruments:
        raise RecordError("field 'labels.instruments' must be a list of instrument names", "labels.instruments")
    return caption, float(tempo), str(key), frozenset(map(str, instruments))


def mismatch(a: _Clip, b: _Clip, min_tempo_change: float) -> list[str]:
    """What of a's caption b does not fit: "key" (another key), "tempo" (at least `min_tempo_change`
    of a's tempo away), "instruments" (another set)."""
    out = []
    if a.key != b.key:
        out.append("key")
    if abs(b.tempo - a.tempo) >= min_tempo_change * a.tempo:
        out.append("tempo")
    if a.instruments != b.instruments:
        out.append("instruments")
    return out


def _write(path: Path, samples: np.ndarray, sample_rate: int) -> str:
    partial = path.with_name(path.name + ".partial")  # renamed when whole: a kill leaves no short file
    soundfile.write(str(partial), samples, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(partial, path)
    return str(path)


def _side(rng: np.random.Generator, preferred: str, other: str) -> dict[str, str]:
    """`audio`, `audio_b` and `preference` with the preferred clip on a random side."""
    if rng.random() < 0.5:
        return {"audio": preferred, "audio_b": other, "preference": "a"}
    return {"audio": other, "audio_b": preferred, "preference": "b"}


def _clip_versions(record: Record, index: int, kind: str, split: str, audio_dir: Path, seed: int,
                   built: Built) -> _Clip:
    """Write the clean and degraded versions of one clip; add its MOS records and musicality pairs."""
    caption, tempo, key, instruments = _labels(record)
    clip_id = str(record["id"])
    audio = record_audio(record, sample_rate=None, purpose="build-pairs")
    noise_rng = np.random.default_rng([seed, NOISE_STREAM, index])
    paths = {}
    for level in (0, *LEVELS):
        samples = degrade(audio.samples, audio.sample_rate, kind, level, rng=noise_rng)
        name = "clean" if level == 0 else f"{kind}-{level}"
        paths[level] = _write(audio_dir / f"{clip_id}.{name}.wav", samples, audio.sample_rate)
    common = {"prompt": caption, "split": split, "clip": clip_id, "source": SOURCE}
    for level, path in paths.items():
        built.mos.append({"id": f"{clip_id}:{'clean' if level == 0 else f'{kind}-{level}'}", "audio": path,
                          "system": system_name(level), "musicality": MOS_OF_LEVEL[level], "degradation": kind,
                          "level": level, **common})
    side_rng = np.random.default_rng([seed, SIDE_STREAM, index])
    contrasts = [(0, level) for level in LEVELS] + [(level, level + 1) for level in LEVELS[:-1]]
    for better, worse in contrasts:
        sides = _side(side_rng, paths[better], paths[worse])
        systems = (system_name(better), system_name(worse)) if sides["preference"] == "a" else \
            (system_name(worse), system_name(better))
        label = "clean" if better == 0 else f"{kind}-{better}"
        built.pairs.append({"id": f"{clip_id}:{label}-v-{kind}-{worse}", "axis": "musicality", **sides,
                            "system": systems[0], "system_b": systems[1], "degradation": kind, **common})
    return _Clip(clip_id, split, caption, tempo, key, instruments, paths[0])


def build_pairs(clips: Iterable[Record], out_dir: str | os.PathLike, options: PairOptions = PairOptions(),
                note=None) -> Built:
    """Musicality pairs and MOS records clip by clip (audio written to OUT/audio/), then the
    alignment pairs within each split (module docstring). `note(n)` is called after each clip."""
    audio_dir = Path(out_dir).resolve() / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rule = SplitRule(mode="auto", fractions=options.fractions, seed=options.seed)
    kind_order = np.random.default_rng([options.seed, KIND_STREAM]).permutation(len(options.kinds))
    built, usable = Built(), []
    for index, record in enumerate(clips):
        built.clips += 1
        if has_error(record):  # failed earlier (e.g. in synth): passed on as it is
            built.pairs.append(record)
            built.failed += 1
            continue
        try:
            if not isinstance(record.get("id"), str):
                raise RecordError("record has no string 'id'", "id")
            split = rule(record)[0]
            kind = options.kinds[int(kind_order[index % len(options.kinds)])]
            usable.append(_clip_versions(record, index, kind, split, audio_dir, options.seed, built))
        except Exception as exc:  # noqa: BLE001 - one clip's failure is that clip's error record
            built.pairs.append(with_error({"id": record.get("id"), "audio": record.get("audio")}, STAGE, exc))
            built.failed += 1
        if note is not None:
            note(built.clips)
    built.pairs.extend(_alignment_pairs(usable, options))
    return built


def _alignment_pairs(clips: list[_Clip], options: PairOptions) -> list[Record]:
    """`per_clip` pairs per clip: its caption, itself against a mismatching clip of its split."""
    out = []
    by_split: dict[str, list[_Clip]] = {}
    for clip in clips:
        by_split.setdefault(clip.split, []).append(clip)
    for index, clip in enumerate(clips):
        candidates = [d for d in by_split[clip.split]
                      if len(mismatch(clip, d, options.min_tempo_change)) == 3]
        rng = np.random.default_rng([options.seed, NEGATIVE_STREAM, index])
        chosen = rng.permutation(len(candidates))[:options.per_clip]
        for j, slot in enumerate(chosen, start=1):
            other = candidates[int(slot)]
            out.append({"id": f"{clip.id}:align-{j}", "axis": "alignment", "prompt": clip.caption,
                        **_side(rng, clip.clean, other.clean), "split": clip.split, "clip": clip.id,
                        "mismatched_clip": other.id, "mismatch": mismatch(clip, other, options.min_tempo_change),
                        "source": SOURCE})
    return out
