"""The judgement a record carries for a reward model: a preference between two audios, or opinion scores.

    pair_of(record, axes)    # ("musicality", "a") for {"audio", "audio_b", "axis": "musicality", "preference": "a"}
    mos_of(record, axes)     # {"musicality": 4.0} for {"audio", "musicality": 4.0, "system": "level-1"}

A **pair** record has a second audio (`audio_b` or `audio_b_embedding`), an `axis` (one of the
model's axes: alignment or musicality) and a `preference`: "a" (`audio` is better), "b"
(`audio_b` is), or a tie, "both" (both good) or "neither". A **MOS** record has one number per
axis it is rated on, under the axis's name (`musicality`, `alignment`). Each raises RecordError
naming the field at fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mllm.core.io.errors import RecordError

__all__ = ["PREFERENCES", "TIES", "is_pair", "pair_of", "mos_of"]

PREFERENCES = ("a", "b", "both", "neither")
TIES = ("both", "neither")


def is_pair(record: Mapping[str, Any]) -> bool:
    return "audio_b" in record or "audio_b_embedding" in record


def pair_of(record: Mapping[str, Any], axes: Sequence[str]) -> tuple[str, str]:
    """(axis, preference) of a pair record."""
    axis = record.get("axis")
    if axis not in axes:
        raise RecordError(f"field 'axis' must be one of {', '.join(axes)} (the axis the preference is about), "
                          f"got {axis!r}", "axis")
    preference = record.get("preference")
    if isinstance(preference, str):
        preference = preference.strip().lower()
    if preference not in PREFERENCES:
        raise RecordError(f"field 'preference' must be one of {', '.join(PREFERENCES)}, got {record.get('preference')!r}",
                          "preference")
    return axis, preference


def mos_of(record: Mapping[str, Any], axes: Sequence[str]) -> dict[str, float]:
    """{axis: score} for each axis the record has a number for (empty when none)."""
    out = {}
    for axis in axes:
        value = record.get(axis)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RecordError(f"field {axis!r} must be a finite number (an opinion score), got {value!r}", axis)
        out[axis] = float(value)
    return out
