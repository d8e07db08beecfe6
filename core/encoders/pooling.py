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

Long audio: `FramePooler` pools the frames of one window after another as they are encoded, so
an hour of audio never holds its native-rate frames (Whisper: 50 per second), only the result.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EDGE_TOLERANCE", "FramePooler", "frame_count", "pool_frames"]

# A frame within this many seconds before a window edge counts as starting at the edge (float noise).
EDGE_TOLERANCE = 1e-6


def frame_count(duration: float, frame_rate: float) -> int:
    """Frames of a clip of `duration` seconds pooled at `frame_rate` (0 -> 1)."""
    if frame_rate < 0 or not math.isfinite(frame_rate):
        raise ValueError(f"frame rate must be >= 0, got {frame_rate!r}")
    if frame_rate == 0:
        return 1
    return max(1, math.ceil(duration * frame_rate - EDGE_TOLERANCE))


class FramePooler:
    """`pool_frames` fed window by window: `add(frames, times)` in time order, then `finish(duration)`.

    Finished output frames are kept as float32 (the result itself); a window's sums are float64
    while it is open. Only the frames of the latest `add` wait for `finish`, which drops those
    starting at or after the end of the clip (only the last window may have such frames: an
    encoder that padded it), so memory is the result plus one window. The result
    equals `pool_frames` on all the frames at once up to float rounding of the sums.
    """

    def __init__(self, frame_rate: float):
        frame_count(1.0, frame_rate)  # checks the rate
        self.frame_rate = float(frame_rate)
        self.rows: list[np.ndarray] = []  # finished output frames, float32 [k, D] pieces
        self.sizes: list[np.ndarray] = []  # native frames behind each finished output frame (0: repeated)
        self.finished = 0  # output frames in `rows`
        self.open_sum: np.ndarray | None = None  # float64 [D] of output frame `finished`, still open
        self.open_size = 0
        self.last: np.ndarray | None = None  # the latest committed native frame
        self.last_committed_time = -np.inf
        self.pending: tuple[np.ndarray, np.ndarray] | None = None
        self.last_time = -np.inf

    def add(self, frames: np.ndarray, times: np.ndarray) -> None:
        frames = np.asarray(frames)
        times = np.asarray(times, dtype=np.float64)
        if frames.ndim != 2 or times.shape != (frames.shape[0],):
            raise ValueError(f"expected frames [N, D] and times [N], got {frames.shape} and {times.shape}")
        if times.size and (times[0] < self.last_time or np.any(np.diff(times) < 0)):
            raise ValueError("frame times must ascend across and within the windows added")
        if self.pending is not None:
            self._commit(*self.pending)
        if times.size:
            self.pending, self.last_time = (frames, times), float(times[-1])
        else:
            self.pending = None

    def _bins(self, times: np.ndarray) -> np.ndarray:
        """Output frame of each time: k with k / r - EDGE_TOLERANCE <= t < (k + 1) / r - EDGE_TOLERANCE."""
        k = np.floor((times + EDGE_TOLERANCE) * self.frame_rate).astype(np.int64)
        k += (k + 1) / self.frame_rate - EDGE_TOLERANCE <= times  # the edges exactly as pool_frames draws them
        k -= k / self.frame_rate - EDGE_TOLERANCE > times
        return np.maximum(k, 0)

    def _emit(self, rows: np.ndarray, sizes: np.ndarray) -> None:
        if rows.shape[0]:
            self.rows.append(rows.astype(np.float32))
            self.sizes.append(sizes)
            self.finished += rows.shape[0]

    def _commit(self, frames: np.ndarray, times: np.ndarray) -> None:
        frames64 = frames.astype(np.float64)
        if self.frame_rate == 0:
            total = frames64.sum(axis=0)
            self.open_sum = total if self.open_sum is None else self.open_sum + total
            self.open_size += frames.shape[0]
            self.last, self.last_committed_time = frames64[-1], float(times[-1])
            return
        bins = self._bins(times)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(bins)) + 1])
        sums = np.add.reduceat(frames64, starts, axis=0)  # [G, D], one row per output frame touched
        sizes = np.diff(np.append(starts, bins.size))
        bins = bins[starts]
        if self.open_sum is not None and bins[0] == self.finished:
            sums[0] += self.open_sum
            sizes[0] += self.open_size
        elif self.open_sum is not None:  # the open frame is complete; repeat the latest frame up to bins[0]
            self._emit(np.concatenate([(self.open_sum / self.open_size)[None], np.repeat(self.last[None], bins[0] - self.finished - 1, axis=0)]),
                       np.concatenate([[self.open_size], np.zeros(bins[0] - self.finished - 1, dtype=np.int64)]))
        else:  # the first frames: output frames before them repeat the first (pool_frames' rule)
            self._emit(np.repeat(frames64[:1], bins[0], axis=0), np.zeros(bins[0], dtype=np.int64))
        # Every touched output frame but the last is complete: its mean, then the frame before each gap.
        gaps = np.diff(bins) - 1
        means = sums[:-1] / sizes[:-1, None]
        before_gap = frames64[starts[1:] - 1]
        values = np.stack([means, before_gap], axis=1).reshape(-1, frames.shape[1])
        counts = np.stack([np.ones_like(gaps), gaps], axis=1).ravel()
        self._emit(np.repeat(values, counts, axis=0), np.repeat(np.stack([sizes[:-1], np.zeros_like(gaps)], axis=1).ravel(), counts))
        self.open_sum, self.open_size = sums[-1], int(sizes[-1])
        self.last, self.last_committed_time = frames64[-1], float(times[-1])

    def finish(self, duration: float) -> np.ndarray:
        """float32 `[frame_count(duration, frame_rate), D]`: the pooled frames of a clip of `duration` s."""
        if self.last_committed_time >= duration - EDGE_TOLERANCE:
            raise ValueError(f"a window before the last one has frames starting at or after the end of the clip ({duration:g} s)")
        if self.pending is not None:
            frames, times = self.pending
            keep = times < duration - EDGE_TOLERANCE
            if self.last is None:
                keep[:1] = True  # a clip always has its first frame
            if keep.any():
                self._commit(frames[keep], times[keep])
            self.pending = None
        if self.last is None:
            raise ValueError("no frames to pool")
        if self.frame_rate == 0:
            return (self.open_sum / self.open_size)[None].astype(np.float32)
        count = frame_count(duration, self.frame_rate)
        trailing = max(count - self.finished - 1, 0)  # output frames after the open one: repeat the last frame
        self._emit(np.concatenate([(self.open_sum / self.open_size)[None], np.repeat(self.last[None], trailing, axis=0)]),
                   np.concatenate([[self.open_size], np.zeros(trailing, dtype=np.int64)]))
        rows, sizes = np.concatenate(self.rows), np.concatenate(self.sizes)
        if rows.shape[0] > count:  # frames past the last edge belong to the last output frame (pool_frames' rule)
            tail, weights = rows[count - 1 :].astype(np.float64), sizes[count - 1 :]
            if weights.sum() > 0:
                rows[count - 1] = (tail * weights[:, None]).sum(axis=0) / weights.sum()
            rows = rows[:count]
        return rows


def pool_frames(frames: np.ndarray, times: np.ndarray, duration: float, frame_rate: float) -> np.ndarray:
    """Mean-pool `frames` `[N, D]` starting at `times` `[N]` (seconds, ascending) to `frame_rate` Hz.

    Returns float32 `[frame_count(duration, frame_rate), D]`.

    >>> pool_frames(np.arange(10.0)[:, None], np.arange(10) / 50, 0.2, 10).ravel()
    array([2., 7.], dtype=float32)
    """
    pooler = FramePooler(frame_rate)
    pooler.add(frames, times)
    return pooler.finish(duration)
