"""Audio of a record: the `audio` path with the record's `start`/`end`, checked field by field.

    audio = record_audio(record, sample_rate=22050)                 # whole span, mono float32
    for block in record_audio_stream(record, sample_rate=22050):    # the same samples, block by block
        ...

`longest` (seconds) bounds the span a caller takes: a longer one raises AudioTooLong whose
message names the field to change (`end` when the record has one, else `audio`, the file from
`start` on) and the bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mllm.core.audio.decode import Audio, AudioError, AudioStream, AudioTooLong, open_audio, read_whole
from mllm.core.io.errors import RecordError

__all__ = ["RecordAudioStream", "record_audio", "record_audio_stream", "record_path", "record_span"]


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


def _named(exc: AudioError, record: Mapping[str, Any], purpose: str) -> AudioError:
    """The error with the record field it is about in front of its message."""
    if isinstance(exc, AudioTooLong):
        field = "end" if record.get("end") is not None else "audio"
        hint = "a shorter span" if field == "end" else "a 'start'/'end' span of at most that"
        return AudioTooLong(
            f"field {field!r}: {exc}; {purpose} takes at most {exc.longest:g} s of audio per record: give the record {hint}",
            exc.seconds, exc.longest,
        )
    return AudioError(f"field 'audio': {exc}")


class RecordAudioStream:
    """An AudioStream whose errors name the record's field (see `record_audio_stream`)."""

    def __init__(self, stream: AudioStream, record: Mapping[str, Any], purpose: str):
        self.stream, self.record, self.purpose = stream, record, purpose
        self.sample_rate, self.start, self.path = stream.sample_rate, stream.start, stream.path
        self.expected_samples = stream.expected_samples

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            yield from self.stream
        except AudioError as exc:
            raise _named(exc, self.record, self.purpose) from None

    def close(self) -> None:
        self.stream.close()


def record_audio_stream(
    record: Mapping[str, Any],
    *,
    sample_rate: int | None = 22050,
    root: str | Path | None = None,
    longest: float | None = None,
    purpose: str = "this command",
) -> RecordAudioStream:
    """The record's span as mono float32 blocks at `sample_rate` (see core.audio.decode.open_audio).

    The fields and the file are checked now (RecordError / AudioError naming the field); errors
    found while decoding (corrupt data, NaN samples, a span over `longest`) are raised by the
    iteration. `purpose` names who sets the bound in the AudioTooLong message.
    """
    start, end = record_span(record)
    path = record_path(record, root)
    try:
        stream = open_audio(path, sample_rate=sample_rate, start=start, end=end, longest=longest)
    except AudioError as exc:
        raise _named(exc, record, purpose) from None
    return RecordAudioStream(stream, record, purpose)


def record_audio(
    record: Mapping[str, Any], *, sample_rate: int | None = 22050, root: str | Path | None = None,
    longest: float | None = None, purpose: str = "this command",
) -> Audio:
    """The record's audio between its `start` and `end`, mono at `sample_rate`.

    Raises RecordError (a ValueError) for a missing or malformed field and AudioError (a
    ValueError) for a file that cannot be read or a span over `longest`; the messages say which.
    """
    return read_whole(record_audio_stream(record, sample_rate=sample_rate, root=root, longest=longest, purpose=purpose))
