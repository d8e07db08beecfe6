"""The judgement a record carries for a reward model: a preference between two audios, or opinion scores.

    pair_judgements(record, axes)  # [("musicality", "a")] for {"audio", "audio_b", "axis": "musicality", "preference": "a"}
    mos_of(record, axes)           # {"musicality": 4.0} for {"audio", "musicality": 4.0, "system": "level-1"}

The fields are those `mllm eval-reward` reads (docs/reward.md). A **pair** record has a second
audio (`audio_b` or `audio_b_embedding`) and a `preference`: {axis: label}, or one label about the
record's `axis` (as `mllm build-pairs` writes them); a label is "a" (`audio` is better), "b"
(`audio_b` is; "model_a"/"model_b" are read as a/b), or a tie, "both" or "neither". A **MOS**
record has an opinion score per axis it is rated on, in `mos` {axis: score} or under the axis's
own name (`musicality`, `alignment`). Each raises RecordError naming the field at fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mllm.core.io.errors import RecordError

__all__ = ["PREFERENCES", "TIES", "is_pair", "pair_judgements", "mos_of"]

PREFERENCES = ("a", "b", "both", "neither")
TIES = ("both", "neither")
SPELLINGS = {"model_a": "a", "model_b": "b"}  # CMI-RewardBench's spellings


def is_pair(record: Mapping[str, Any]) -> bool:
    return "audio_b" in record or "audio_b_embedding" in record


def _label(value: Any, field: str) -> str:
    label = value.strip().lower() if isinstance(value, str) else value
    label = SPELLINGS.get(label, label)
    if label not in PREFERENCES:
        raise RecordError(f"field {field!r} must be one of {', '.join(PREFERENCES)}, got {value!r}", field)
    return label


def pair_judgements(record: Mapping[str, Any], axes: Sequence[str]) -> list[tuple[str, str]]:
    """[(axis, preference), ...] of a pair record: `preference` {axis: label} (axes the model does
    not score are left out), or a plain label on the record's `axis`."""
    preference = record.get("preference")
    if isinstance(preference, Mapping):
        return [(axis, _label(value, f"preference.{axis}")) for axis, value in preference.items() if axis in axes]
    axis = record.get("axis")
    if axis not in axes:
        raise RecordError(f"field 'axis' must be one of {', '.join(axes)} (the axis the preference is about), "
                          f"got {axis!r}", "axis")
    return [(axis, _label(preference, "preference"))]


def mos_of(record: Mapping[str, Any], axes: Sequence[str]) -> dict[str, float]:
    """{axis: score} for each axis the record has a number for, in `mos` {axis: score} or under
    the axis's own name (empty when none)."""
    holder, prefix = (record["mos"], "mos.") if isinstance(record.get("mos"), Mapping) else (record, "")
    out = {}
    for axis in axes:
        value = holder.get(axis)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RecordError(f"field {prefix + axis!r} must be a finite number (an opinion score), got {value!r}",
                              prefix + axis)
        out[axis] = float(value)
    return out
