"""Audio of a record: the `audio` path with the record's `start`/`end`, checked field by field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mllm.core.audio.decode import Audio, AudioError, load_audio
from mllm.core.io.errors import RecordError

__all__ = ["record_audio", "record_span"]


def _seconds(record: Mapping[str, Any], field: str) -> float | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"field {field!r} must be a number of seconds, got {value!r}", field)
    if value < 0:
        raise RecordError(f"field {field!r} must be >= 0, got {value!r}", field)
    return float(value)


def record_span(record: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(start, end) of a record in seconds (None when absent); raises RecordError naming the field."""
    start, end = _seconds(record, "start"), _seconds(record, "end")
    if start is not None and end is not None and end <= start:
        raise RecordError(f"field 'end' ({end:g}) must be after field 'start' ({start:g})", "end")
    return start, end


def record_path(record: Mapping[str, Any], root: str | Path | None = None) -> Path:
    """The record's `audio` path (relative paths are taken from `root`, else the working folder)."""
    value = record.get("audio")
    if not isinstance(value, str) or not value:
        raise RecordError("record has no 'audio' field (a path to an audio file)", "audio")
    path = Path(value)
    return path if path.is_absolute() or root is None else Path(root) / path


def record_audio(record: Mapping[str, Any], *, sample_rate: int | None = 22050, root: str | Path | None = None) -> Audio:
    """The record's audio between its `start` and `end`, mono at `sample_rate`.

    Raises RecordError (a ValueError) for a missing or malformed field and AudioError (a
    ValueError) for a file that cannot be read; both messages say which.
    """
    start, end = record_span(record)
    path = record_path(record, root)
    try:
        return load_audio(path, sample_rate=sample_rate, start=start, end=end)
    except AudioError as exc:
        raise AudioError(f"field 'audio': {exc}") from None
