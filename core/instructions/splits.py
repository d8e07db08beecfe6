"""Train/valid/test splits: the dataset's own, or by a hash of a grouping id; and the leakage check.

    assign = SplitRule(mode="auto", fractions=(0.8, 0.1, 0.1), seed=0, group_by="track")
    split, how = assign(record)          # ("valid", "dataset") or ("train", "hash")

- The dataset's own split (a record's `split` field, as the adapters write it) wins in mode
  "auto"; mode "dataset" requires one; mode "hash" ignores it. Names are normalised to
  train/valid/test ("validation", "val", "dev", "validate" -> "valid").
- A hashed split depends only on (seed, grouping id), never on the order or number of records:
  the grouping id is the record's `group_by` field (default `track`), else its `audio` path,
  else its `id`. Every excerpt of one track lands in the same split.
- `LeakageCheck` keeps one entry per audio file (its split and the first record that put it
  there) and reports every record whose audio already sits in another split. Audio is the
  normalised path, or with `by_content` the SHA-256 of the file's bytes (copies under other
  names are caught too; a file that cannot be read falls back to its path).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SPLITS", "normalise_split", "hash_split", "SplitRule", "LeakageCheck", "parse_fractions"]

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "valid": "valid", "validation": "valid", "val": "valid", "dev": "valid", "validate": "valid",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}
SPLIT_MODES = ("auto", "dataset", "hash")


class SplitError(ValueError):
    pass


def normalise_split(name: Any) -> str:
    """train/valid/test for a dataset's split name; a one-element list (CMI-Bench) is unwrapped."""
    if isinstance(name, list) and len(name) == 1:
        name = name[0]
    split = SPLIT_ALIASES.get(str(name).strip().lower()) if name is not None else None
    if split is None:
        raise SplitError(f"field 'split' must be one of train/valid/test (or validation, dev, ...), got {name!r}")
    return split


def parse_fractions(text: str) -> tuple[float, float, float]:
    """ "0.8,0.1,0.1" -> (0.8, 0.1, 0.1), normalised to sum to 1."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SplitError(f"split fractions must be three numbers TRAIN,VALID,TEST, got {text!r}") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise SplitError(f"split fractions must be three numbers >= 0 with a positive sum, got {text!r}")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


def _uniform(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(group: str, fractions: tuple[float, float, float], seed: int = 0) -> str:
    """The split of a grouping id: a uniform number fixed by (seed, group) against the fractions."""
    u = _uniform(seed, group)
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "valid"
    return "test"


@dataclass(frozen=True)
class SplitRule:
    mode: str = "auto"  # auto | dataset | hash
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    group_by: str = "track"

    def group(self, record: Mapping[str, Any]) -> str:
        for name in (self.group_by, "audio", "id"):
            value = record.get(name)
            if value is not None and value != "":
                return str(value)
        raise SplitError("record has no grouping id (field 'track', 'audio' or 'id')")

    def __call__(self, record: Mapping[str, Any]) -> tuple[str, str]:
        """(split, "dataset" or "hash") of a record."""
        own = record.get("split")
        if self.mode != "hash" and own is not None:
            return normalise_split(own), "dataset"
        if self.mode == "dataset":
            raise SplitError("record has no 'split' field and --split-from dataset was asked")
        return hash_split(self.group(record), self.fractions, self.seed), "hash"


def audio_key(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


@dataclass
class LeakageCheck:
    """Remembers (audio -> split, first record id) and collects records that cross splits."""

    by_content: bool = False
    seen: dict[str, tuple[str, str]] = field(default_factory=dict)
    conflicts: list[tuple[str, str, str, str]] = field(default_factory=list)  # (audio, id, split, other id/split)
    n_conflicts: int = 0
    _digests: dict[str, str] = field(default_factory=dict)
    max_kept: int = 100

    def _key(self, audio: str) -> str:
        path = audio_key(audio)
        if not self.by_content:
            return path
        if path not in self._digests:
            try:
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                self._digests[path] = "sha256:" + digest.hexdigest()
            except OSError:
                self._digests[path] = path
        return self._digests[path]

    def add(self, audio: str, split: str, record_id: str) -> None:
        key = self._key(audio)
        first = self.seen.get(key)
        if first is None:
            self.seen[key] = (split, record_id)
        elif first[0] != split:
            self.n_conflicts += 1
            if len(self.conflicts) < self.max_kept:
                self.conflicts.append((audio, record_id, split, f"{first[1]} ({first[0]})"))

    @property
    def ok(self) -> bool:
        return self.n_conflicts == 0

    def describe(self, limit: int = 20) -> list[str]:
        lines = [
            f"{record_id} ({split}) uses {audio}, already in {other}"
            for audio, record_id, split, other in self.conflicts[:limit]
        ]
        if self.n_conflicts > limit:
            lines.append(f"... and {self.n_conflicts - limit} more")
        return lines
