"""Resuming a stopped `mllm caption` / `mllm regress` run that writes JSONL to `-o FILE`.

`done_ids(path)` reads the ids already in the file (cutting off a last line that a stop left half
written); the command skips those records and appends the others, so a stopped run continues where
it was and the file ends with every id once, in input order. Records already in the file are not
checked against the input (a different input gives a mixed file).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

__all__ = ["done_ids"]


def done_ids(path: str | os.PathLike) -> set[str]:
    """Ids of the records already in the JSONL file `path` (empty when it does not exist).

    A last line without its newline (the run was stopped while writing it) is cut off the file, so
    appending starts on a clean line; a complete line that is not a record is an error.
    """
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data[:4] == b"PAR1":
        raise ValueError(f"{path} is Parquet: --resume appends to JSONL output only")
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(end)
    ids = set()
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number} is not a JSON record ({exc}); cannot resume into it") from None
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            ids.add(value["id"])
    return ids
