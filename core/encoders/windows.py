"""Encoding many clips: long audio in windows, windows in batches, frames back in time order.

    embeddings = embed_clips(encoder, [samples_a, samples_b], frame_rate=10, batch_size=8)
    # -> [T_i, D] float32 per clip (or the exception that clip raised), T_i = ceil(duration_i * 10)

Windows. A clip longer than the encoder's `window_seconds` (Whisper: its feature extractor's
chunk, 30 s; AST: the patches that fit its `max_length`, about 10 s; CLAP: 10 s; DSP: 300 s) is
cut into consecutive windows of that length, the last one shorter (`core.audio.windows`). Each
window is encoded on its own; its frames get absolute times (window start + t / native rate) and
the frames of all windows, in time order, are pooled together. A window shorter than the
encoder's `min_samples` (a wav2vec2 frame needs 400 samples) is padded with zeros.

Batches. The windows of all clips are sorted by length and cut into batches of `batch_size`, so
clips of similar length share a batch and padding is small. Encoders whose results would change
with padding (`equal_lengths_only`: wav2vec2/HuBERT models with group norm) get batches of equal
lengths only. A batch that fails is retried one window at a time, so one bad clip fails alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from mllm.core.encoders.pooling import pool_frames
from mllm.core.encoders.registry import Encoder, EncoderError

__all__ = ["NativeFrames", "embed_clips", "encode_clips", "split_windows", "stream_windows"]


@dataclass
class NativeFrames:
    frames: np.ndarray  # [N, D] float32 at the encoder's native rate
    times: np.ndarray  # [N] start of each frame in seconds from the clip's start
    duration: float  # seconds of the clip


@dataclass
class _Piece:
    clip: int  # index of the clip it belongs to
    start: float  # seconds into the clip
    duration: float  # seconds of real audio in `samples`
    samples: np.ndarray


def stream_windows(
    blocks: Iterable[np.ndarray], sample_rate: int, window_seconds: float | None
) -> Iterator[tuple[float, np.ndarray]]:
    """(start seconds, samples) of each window of a clip that arrives in blocks (a decoder's
    stream): the windows `split_windows` cuts from the whole clip, holding one window at a time.

    Window k runs from sample round(s_k * rate) to round(s_{k+1} * rate), s_k the start
    `core.audio.windows` gives (k window lengths, rounded to the microsecond); the last is cut at
    the end of the clip. None: one window, the whole clip.
    """
    if window_seconds is None:
        parts = [np.asarray(block) for block in blocks]
        if parts:
            yield 0.0, parts[0] if len(parts) == 1 else np.concatenate(parts)
        return
    if not window_seconds * sample_rate >= 1:
        raise ValueError(f"a window of {window_seconds!r} s holds no sample at {sample_rate} Hz")
    start = 0.0  # the window's start in seconds, accumulated as core.audio.windows accumulates it
    first, boundary = 0, round(round(start + window_seconds, 6) * sample_rate)
    parts: list[np.ndarray] = []
    have = 0  # samples of the current window in `parts`
    for block in blocks:
        block = np.asarray(block)
        while block.size:
            take = block[: boundary - first - have]
            parts.append(take)
            have += take.size
            block = block[take.size :]
            if first + have == boundary:
                yield first / sample_rate, parts[0] if len(parts) == 1 else np.concatenate(parts)
                parts, have = [], 0
                start += window_seconds
                first, boundary = boundary, round(round(start + window_seconds, 6) * sample_rate)
    if have:
        yield first / sample_rate, parts[0] if len(parts) == 1 else np.concatenate(parts)


def split_windows(samples: np.ndarray, sample_rate: int, window_seconds: float | None) -> list[tuple[float, np.ndarray]]:
    """(start seconds, samples) of each window of a clip; one window when it fits."""
    return list(stream_windows([samples], sample_rate, window_seconds))


def _pieces(encoder: Encoder, clips: list[np.ndarray]) -> list[_Piece]:
    pieces = []
    for index, clip in enumerate(clips):
        if clip.ndim != 1 or len(clip) == 0:
            raise EncoderError(f"clip {index}: expected mono samples (1-D, not empty), got shape {clip.shape}")
        for start, samples in split_windows(clip, encoder.sample_rate, encoder.window_seconds):
            duration = len(samples) / encoder.sample_rate
            if len(samples) < encoder.min_samples:
                samples = np.pad(samples, (0, encoder.min_samples - len(samples)))
            pieces.append(_Piece(index, start, duration, np.ascontiguousarray(samples, dtype=np.float32)))
    return pieces


def _batches(encoder: Encoder, pieces: list[_Piece], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i].samples))
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        if (
            current is None
            or len(current) >= batch_size
            or (encoder.equal_lengths_only and len(pieces[current[0]].samples) != len(pieces[i].samples))
        ):
            batches.append([i])
        else:
            current.append(i)
    return batches


def _checked(encoder: Encoder, outputs: list[np.ndarray], count: int) -> list[np.ndarray]:
    if len(outputs) != count:
        raise EncoderError(f"encoder {encoder.name!r} returned {len(outputs)} outputs for {count} clips")
    for frames in outputs:
        if frames.ndim != 2 or frames.shape[1] != encoder.dim or frames.shape[0] == 0:
            raise EncoderError(f"encoder {encoder.name!r} returned frames of shape {frames.shape}, expected [T, {encoder.dim}]")
    return outputs


def _encode_alone(encoder: Encoder, samples: np.ndarray) -> np.ndarray | Exception:
    try:
        return _checked(encoder, encoder.encode_batch([samples]), 1)[0]
    except Exception as exc:  # noqa: BLE001 - this window's error becomes its clip's error
        return exc


def _frames_inside(encoder: Encoder, piece: _Piece, frames: np.ndarray) -> np.ndarray:
    """The frames that start inside the window's real audio (at least the first): an encoder that
    padded the window (Whisper to 30 s) returns more. Dropped at once, so memory holds only these."""
    count = int(np.count_nonzero(np.arange(len(frames)) / encoder.native_frame_rate < piece.duration))
    return frames[: max(1, count)].copy()  # a copy, so the batch array behind it can be freed


def encode_clips(encoder: Encoder, clips: list[np.ndarray], batch_size: int = 8) -> list[NativeFrames | Exception]:
    """Frames at the native rate of each clip (mono float32 at `encoder.sample_rate`), or the
    exception that stopped it."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    pieces = _pieces(encoder, clips)
    outputs: list[np.ndarray | Exception] = [np.empty(0)] * len(pieces)
    for batch in _batches(encoder, pieces, batch_size):
        try:
            results = _checked(encoder, encoder.encode_batch([pieces[i].samples for i in batch]), len(batch))
        except Exception as exc:  # noqa: BLE001 - retried one window at a time to find the one at fault
            results = [exc] if len(batch) == 1 else [_encode_alone(encoder, pieces[i].samples) for i in batch]
        for index, result in zip(batch, results):
            outputs[index] = result if isinstance(result, Exception) else _frames_inside(encoder, pieces[index], result)
    by_clip: list[list[int]] = [[] for _ in clips]
    for index, piece in enumerate(pieces):
        by_clip[piece.clip].append(index)
    per_clip: list[NativeFrames | Exception] = []
    for clip, indices in zip(clips, by_clip):
        failures = [outputs[i] for i in indices if isinstance(outputs[i], Exception)]
        if failures:
            per_clip.append(failures[0])
            continue
        frames = [outputs[i] for i in indices]
        times = [pieces[i].start + np.arange(len(f)) / encoder.native_frame_rate for i, f in zip(indices, frames)]
        per_clip.append(NativeFrames(np.concatenate(frames), np.concatenate(times), len(clip) / encoder.sample_rate))
    return per_clip


def embed_clips(
    encoder: Encoder, clips: list[np.ndarray], frame_rate: float, batch_size: int = 8
) -> list[np.ndarray | Exception]:
    """Pooled embeddings `[ceil(duration * frame_rate), D]` float32 per clip (or its exception)."""
    out: list[np.ndarray | Exception] = []
    for native in encode_clips(encoder, clips, batch_size):
        if isinstance(native, Exception):
            out.append(native)
        else:
            out.append(pool_frames(native.frames, native.times, native.duration, frame_rate))
    return out
