"""Sharing a record stream among jobs: `--shard i/n` and torchrun ranks.

    records = take_shard(read_records("clips.jsonl"), parse_shard("1/4"))   # positions 1, 5, 9, ...
    share = torchrun_share((0, 1))          # (RANK, WORLD_SIZE) under torchrun, (0, 1) alone
    path = rank_output_path("out/emb.jsonl", rank=1, world=4)                # out/emb.rank1-of-4.jsonl

A shard (i, n) keeps the records whose position in the input (0-based, counting every record,
error records included) is i modulo n, so n jobs with i = 0..n-1 cover a collection once, with no
overlap and no gap. Under torchrun every rank takes every WORLD_SIZE-th record of its shard and
writes its own output file; nothing is exchanged between ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

__all__ = ["parse_shard", "rank_output_path", "take_shard", "torchrun_share"]

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """'1/4' -> (1, 4), the second of four shards; ValueError unless 0 <= i < n."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"--shard takes i/n (e.g. 0/4), got {text!r}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def take_shard(items: Iterable[T], shard: tuple[int, int] | None) -> Iterator[T]:
    """The items at positions i, i + n, i + 2n, ... (every item when `shard` is None)."""
    if shard is None:
        yield from items
        return
    index, count = shard
    for position, item in enumerate(items):
        if position % count == index:
            yield item


def torchrun_share(shard: tuple[int, int] | None = None, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The share of this process: the shard (i, n) split again among torchrun's WORLD_SIZE ranks.

    Rank r of W keeps the shard's items number r, r + W, ... (in shard order): the input
    positions i + n * r + n * W * k, which is the shard (i + n * r, n * W).
    """
    environ = os.environ if environ is None else environ
    rank, world = int(environ.get("RANK", "0")), int(environ.get("WORLD_SIZE", "1"))
    index, count = shard or (0, 1)
    return index + count * rank, count * world


def rank_output_path(path: str, rank: int, world: int) -> str:
    """'out/emb.jsonl' -> 'out/emb.rank1-of-4.jsonl' (the path itself when there is one rank)."""
    if world <= 1:
        return path
    target = Path(path)
    return str(target.with_name(f"{target.stem}.rank{rank}-of-{world}{target.suffix}"))
