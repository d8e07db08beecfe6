"""Task names and their numeric scales: what is not a kind's own reading (core.evaluation.kinds).

A record names its task in `task` ("key", "tempo", "arousal", "genre", ...); its kind (the
reading and the metrics) is in core.evaluation.kinds. Numeric tasks carry a `scale` ([low, high])
or take the default of their name (arousal, valence and the demo corpus's energy and brightness
are 1-9). Tasks scored by another command (captions, QA) are passed through by eval-mir.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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

class TaskError(ValueError):
    """The record's task, reference or scale cannot be used; the message names the field."""


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
