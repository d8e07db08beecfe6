"""Which kind of task a record is, and how its reference and its answer are read.

A record names its task in `task` ("key", "tempo", "arousal", "genre", ...). The task's kind
decides the parser and the metrics:

    kind            reference (in `reference`, else `answer`)          answer is read with
    key             "A minor" / {"key": "A minor"}                     parse.key
    tempo           120 / {"tempo_bpm": 120}                          parse.tempo
    beats           [0.5, 1.0, ...] / "0.5s,1.0s" / {"beats": [...]}   parse.times
    downbeats       as beats, {"downbeats": [...]}                     parse.times
    chords          [[0, 2, "C:maj"], ...] / {"chords": [...]}          parse.chords
    classification  "rock" / ["rock"] / {"genre": "rock"}               parse.labels (one label)
    tagging         ["piano", "drums"] / "piano, drums"                parse.labels (a set)
    regression      5.2 / "5.2" / {"arousal": 5.2}                      parse.numbers on the scale

Task names map to kinds through KIND_OF_TASK; a record may also say `task_type` itself, and the
command takes `--task-type name=kind` for names it does not know. Numeric tasks carry a `scale`
([low, high]) or take the default of their name (arousal, valence and the demo corpus's energy and
brightness are 1-9).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

KINDS = ("key", "tempo", "beats", "downbeats", "chords", "classification", "tagging", "regression")

KIND_OF_TASK: dict[str, str] = {
    "key": "key",
    "tempo": "tempo",
    "bpm": "tempo",
    "beats": "beats",
    "beat": "beats",
    "downbeats": "downbeats",
    "downbeat": "downbeats",
    "chords": "chords",
    "chord": "chords",
    "genre": "classification",
    "instrument": "classification",
    "mood": "classification",
    "pitch": "classification",
    "technique": "classification",
    "meter": "classification",
    "classification": "classification",
    "tags": "tagging",
    "instruments": "tagging",
    "moods": "tagging",
    "genres": "tagging",
    "tagging": "tagging",
    "arousal": "regression",
    "valence": "regression",
    "energy": "regression",
    "brightness": "regression",
    "regression": "regression",
}

# Tasks whose answers are free text scored by another command: eval-mir passes them through
# unscored (counted under `skipped`), so one file of mixed instruction records can go to both.
SCORED_ELSEWHERE: dict[str, str] = {
    "caption": "mllm eval-caption",
    "captioning": "mllm eval-caption",
    "qa": "mllm eval-caption",
    "mir_qa": "mllm eval-caption",
}

DEFAULT_SCALES: dict[str, tuple[float, float]] = {
    "arousal": (1.0, 9.0),
    "valence": (1.0, 9.0),
    "energy": (1.0, 9.0),
    "brightness": (1.0, 9.0),
}

# Field names a structured reference or prediction may use for each kind, besides the task's name.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "key": ("key",),
    "tempo": ("tempo_bpm", "tempo", "bpm"),
    "beats": ("beats", "beat_times", "times"),
    "downbeats": ("downbeats", "downbeat_times", "times"),
    "chords": ("chords",),
    "classification": ("label",),
    "tagging": ("labels", "tags"),
    "regression": ("value",),
}


class TaskError(ValueError):
    """The record's task, reference or scale cannot be used; the message names the field."""


def task_kind(record: Mapping[str, Any], overrides: Mapping[str, str]) -> tuple[str, str]:
    """(task name, kind) of a record; raises TaskError naming the field when it cannot tell."""
    name = record.get("task")
    if not isinstance(name, str) or not name:
        raise TaskError("record has no 'task' field (say which task it is, e.g. \"task\": \"key\")")
    kind = overrides.get(name) or record.get("task_type") or KIND_OF_TASK.get(name.lower())
    if kind is None:
        raise TaskError(
            f"unknown task {name!r} in field 'task': give its kind with --task-type {name}=KIND "
            f"or a 'task_type' field (kinds: {', '.join(KINDS)})"
        )
    if kind not in KINDS:
        raise TaskError(f"unknown task kind {kind!r} for task {name!r} (kinds: {', '.join(KINDS)})")
    return name, kind


def parse_scale(text: str) -> tuple[float, float]:
    """ "1,9" -> (1.0, 9.0); TaskError unless two numbers with LOW < HIGH."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise TaskError(f"a scale is LOW,HIGH (e.g. 1,9), got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise TaskError(f"a scale needs finite LOW < HIGH, got {text!r}")
    return low, high


def record_scale(record: Mapping[str, Any], name: str, default: tuple[float, float] | None) -> tuple[float, float]:
    """The numeric scale of a regression record: its `scale` field, the command's, or the task's default."""
    scale = record.get("scale")
    if scale is None:
        scale = default or DEFAULT_SCALES.get(name.lower())
    if scale is None:
        raise TaskError(f"numeric task {name!r} has no scale: add a 'scale' field [low, high] or use --scale LOW,HIGH")
    try:
        low, high = (float(v) for v in scale)
    except (TypeError, ValueError) as exc:
        raise TaskError(f"field 'scale' must be [low, high], got {scale!r}") from exc
    if not low < high:
        raise TaskError(f"field 'scale' must have low < high, got {scale!r}")
    return low, high


def structured_value(value: Any, name: str, kind: str, field_name: str, *, only_field: bool = True) -> Any:
    """The value for this task out of a reference/prediction that may be a dict like `answer`.

    {"key": "A minor"} -> "A minor": the field named after the task or a field name of its kind
    (FIELD_NAMES). With `only_field` (references: an instruction record's `answer` holds its own
    task's answer) the only field besides bookkeeping ones is taken too; predictions must name
    the field (`{"energy": 9}` is no tempo). Any non-dict value is returned as it is.
    """
    if not isinstance(value, Mapping):
        return value
    for candidate in (name, *FIELD_NAMES[kind]):
        if candidate in value:
            return value[candidate]
    payload = {k: v for k, v in value.items() if k not in ("parse_ok", "read_from", "matched", "scale")}
    if only_field and len(payload) == 1:
        return next(iter(payload.values()))
    raise TaskError(
        f"field {field_name!r} has no value for task {name!r}: expected one of "
        f"{[name, *FIELD_NAMES[kind]]}, found {sorted(value)}"
    )
