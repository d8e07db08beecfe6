"""Resuming a stopped `mllm caption` / `mllm regress` run that writes JSONL to `-o FILE`.

While a run writes FILE, its records go to `FILE.partial` (core/io/records.py), flushed one by one,
and the partial file becomes FILE when the run ends. `prepare_resume(FILE)` sets up a resumed run:

1. the records to continue from are those of `FILE.partial` when a stopped run left one, else
   those of FILE (a finished run, to be completed: new records, records that failed);
2. they are copied into a fresh `FILE.partial` (through a temporary file and a rename, so a kill
   here loses nothing), leaving out a last line that a kill cut short and every error record:
   records that failed are done again;
3. the ids copied are returned with their counts; the command skips that many input records of
   each id (an input that repeats an id has each copy done once) and appends the others.

The run then appends to `FILE.partial` and renames it to FILE at the end, so FILE holds every
input id once (as often as the input holds it), the earlier ones first. Records already in the
file are not checked against the input (a different input gives a mixed file).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from mllm.core.io.errors import Record
from mllm.core.io.records import partial_path

__all__ = ["prepare_resume", "skip_done"]


def prepare_resume(path: str | os.PathLike) -> tuple[Counter, int]:
    """Set up `<path>.partial` for a resumed run (see the module docstring).

    Returns (the count of each id already done, the number of error records dropped for a retry).
    Raises ValueError naming the file when it is Parquet or holds a complete line that is not a record.
    """
    path = Path(path)
    partial = partial_path(path)
    source = partial if partial.exists() else path
    done: Counter = Counter()
    if not source.exists():
        return done, 0
    with open(source, "rb") as handle:
        if handle.read(4) == b"PAR1":
            raise ValueError(f"{source} is Parquet: --resume appends to JSONL output only")
    retried = 0
    staging = partial.with_name(partial.name + ".tmp")
    with open(source, "rb") as reader, open(staging, "wb") as writer:
        for number, line in enumerate(reader, start=1):
            if not line.endswith(b"\n"):
                break  # the last line, cut short by a kill
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{source}:{number} is not a JSON record ({exc}); cannot resume from it") from None
            if not isinstance(value, dict) or not isinstance(value.get("id"), str):
                raise ValueError(f"{source}:{number} is not a record with a string id; cannot resume from it")
            if value.get("error"):
                retried += 1
                continue
            done[value["id"]] += 1
            writer.write(line)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(staging, partial)
    return done, retried


def skip_done(records: Iterable[Record], done: Counter) -> Iterator[Record]:
    """The records not yet done: for each id, the first `done[id]` records of that id are skipped."""
    left = Counter(done)
    for record in records:
        record_id = record.get("id")
        if left.get(record_id, 0) > 0:
            left[record_id] -= 1
            continue
        yield record
