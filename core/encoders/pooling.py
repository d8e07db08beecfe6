"""Mean pooling in time: frames at an encoder's native rate -> frames at a chosen rate.

LLark mean-pools Jukebox's 345 Hz embeddings "within 100ms frames, downsampling the embeddings to
a frequency of 10Hz" (Gardner et al. 2023, section 3.2); `frame_rate=10` does the same.

Windows. Output frame k covers [k / r, (k + 1) / r) seconds of the clip, k = 0 .. ceil(d * r) - 1
for a clip of d seconds at rate r, and is the mean of the native frames whose start time lies in
it (a native frame t starts at t / native_rate; for the DSP encoders that is the frame's centre).
So an 8 s clip at 10 Hz gives 80 frames, a 3.05 s clip 31: the last window is cut at the end of the
clip and averages the frames it has.

Edges:
- a window that holds no native frame (the encoder is slower than `frame_rate`, e.g. CLAP's one
  vector per 10 s) takes the last native frame that starts before it, so the output still has
  ceil(d * r) frames, repeating that frame;
- native frames starting at or after the end of the clip (an encoder that padded its input) are
  dropped before pooling;
- `frame_rate=0` gives one frame: the mean over the whole clip (Castellon et al.'s time average).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["frame_count", "pool_frames", "EDGE_TOLERANCE"]

# A frame within this many seconds before a window edge counts as starting at the edge (float noise).
EDGE_TOLERANCE = 1e-6


def frame_count(duration: float, frame_rate: float) -> int:
    """Frames of a clip of `duration` seconds pooled at `frame_rate` (0 -> 1)."""
    if frame_rate < 0 or not math.isfinite(frame_rate):
        raise ValueError(f"frame rate must be >= 0, got {frame_rate!r}")
    if frame_rate == 0:
        return 1
    return max(1, math.ceil(duration * frame_rate - EDGE_TOLERANCE))


def pool_frames(frames: np.ndarray, times: np.ndarray, duration: float, frame_rate: float) -> np.ndarray:
    """Mean-pool `frames` `[N, D]` starting at `times` `[N]` (seconds, ascending) to `frame_rate` Hz.

    Returns float32 `[frame_count(duration, frame_rate), D]`.

    >>> pool_frames(np.arange(10.0)[:, None], np.arange(10) / 50, 0.2, 10).ravel()
    array([2., 7.], dtype=float32)
    """
    frames = np.asarray(frames)
    times = np.asarray(times, dtype=np.float64)
    if frames.ndim != 2 or times.shape != (frames.shape[0],):
        raise ValueError(f"expected frames [N, D] and times [N], got {frames.shape} and {times.shape}")
    keep = times < duration - EDGE_TOLERANCE
    keep[:1] = True  # a clip always has its first frame
    frames, times = frames[keep], times[keep]
    if frames.shape[0] == 0:
        raise ValueError("no frames to pool")
    if frame_rate == 0:
        return frames.mean(axis=0, dtype=np.float64, keepdims=True).astype(np.float32)
    count = frame_count(duration, frame_rate)
    edges = np.arange(count + 1) / frame_rate - EDGE_TOLERANCE
    bounds = np.searchsorted(times, edges, side="left")
    bounds[-1] = frames.shape[0]  # frames past the last edge (none after the trim above) stay in the last window
    starts, ends = bounds[:-1], bounds[1:]
    total = np.concatenate([np.zeros((1, frames.shape[1])), np.cumsum(frames, axis=0, dtype=np.float64)])
    sizes = ends - starts
    pooled = (total[ends] - total[starts]) / np.maximum(sizes, 1)[:, None]
    empty = sizes == 0
    if empty.any():
        # The last frame starting before the window (or the first frame when none does).
        previous = np.clip(starts[empty] - 1, 0, frames.shape[0] - 1)
        pooled[empty] = frames[previous]
    return pooled.astype(np.float32)
