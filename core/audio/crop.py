"""Which part of a track to use: LLark's 25 s rule, and fixed windows over long audio.

LLark (appendix, "preprocessing"): "if a track is less than 60 seconds in duration, we retain the
first 25 seconds of the clip, or the entire clip, whichever is shorter. If a track is longer than
60 seconds, we crop the interval [30, 55) with probability p = 0.8, and the interval [0, 25) with
probability (1 - p)." A track of exactly 60 s counts as long here.

The choice is seeded per track (a hash of the seed and the track's key, not a shared random
stream), so a record's crop does not depend on which other records are processed or in which
order, and reruns give the same crops.
"""

from __future__ import annotations

import hashlib

__all__ = ["LLARK_CLIP_SECONDS", "llark_crop", "windows"]

LLARK_CLIP_SECONDS = 25.0
LLARK_LONG_TRACK = 60.0
LLARK_LATE_START = 30.0
LLARK_LATE_PROBABILITY = 0.8


def _uniform(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def llark_crop(duration: float, key: str, seed: int = 0, probability: float = LLARK_LATE_PROBABILITY) -> tuple[float, float]:
    """(start, end) in seconds of the 25 s excerpt LLark takes from a track of `duration` seconds.

    Examples
    --------
    >>> llark_crop(12.0, "song-1")
    (0.0, 12.0)
    >>> llark_crop(45.0, "song-1")
    (0.0, 25.0)
    >>> llark_crop(200.0, "song-1", probability=1.0)
    (30.0, 55.0)
    """
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration!r}")
    if duration < LLARK_LONG_TRACK:
        return 0.0, min(LLARK_CLIP_SECONDS, float(duration))
    if _uniform(seed, key) < probability:
        return LLARK_LATE_START, LLARK_LATE_START + LLARK_CLIP_SECONDS
    return 0.0, LLARK_CLIP_SECONDS


def windows(duration: float, length: float, hop: float | None = None, keep_last: bool = True) -> list[tuple[float, float]]:
    """Fixed windows (start, end) of `length` seconds every `hop` seconds (default: no overlap).

    The last window is cut at `duration` when `keep_last` (so every second is covered), else
    dropped when shorter than `length`.

    >>> windows(25.0, 10.0)
    [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    """
    if not (length > 0 and duration > 0):
        raise ValueError("duration and length must be > 0")
    hop = length if hop is None else hop
    if not hop > 0:
        raise ValueError("hop must be > 0")
    out = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + length, duration)
        if end - start < length and not keep_last and out:
            break
        out.append((round(start, 6), round(end, 6)))
        if end >= duration:
            break
        start += hop
    return out
