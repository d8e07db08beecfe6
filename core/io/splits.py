"""Splits of a record stream: the one rule every command follows.

A record's `split` ("train", "valid", "test", or a dataset's own name) says what it may be used
for. Training (`mllm sft`, `regress --method probe`) fits on `split: "train"` only; a record
without a split is never training data. Inference (`caption`, `regress`) with `--split NAME`
answers the records of that split and passes the others through untouched, in their place;
evaluation (`eval-mir`, `eval-caption`) with `--split NAME` scores that split alone, and
without it scores every split apart. Records without a split are reported as "no split".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TRAIN", "in_split", "record_split", "split_label"]

TRAIN = "train"


def record_split(record: Mapping[str, Any]) -> str | None:
    """The record's `split` (None when it has none); ValueError naming the field unless it is text."""
    split = record.get("split")
    if split is not None and not isinstance(split, str):
        raise ValueError(f"field 'split' must be text, got {type(split).__name__} {split!r}")
    return split


def in_split(record: Mapping[str, Any], split: str | None) -> bool:
    """Whether `record` is one a command restricted to `split` works on (every record when None)."""
    return split is None or record.get("split") == split


def split_label(split: str | None) -> str:
    """The name reports give a split ("no split" for records without one)."""
    return "no split" if split is None else split
