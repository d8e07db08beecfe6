"""Record streams in and out: JSONL or Parquet, a path or stdin/stdout.

    records = read_records("clips.jsonl")          # or "-" for stdin; Parquet is detected
    with RecordWriter("-") as out:                 # stdout, JSONL
        for record in records:
            out.write(record)

The input format is detected from the bytes (Parquet files start with ``PAR1``), never from the
name. The output format follows the file extension (`.parquet`/`.pq` -> Parquet, anything else
JSONL) unless given. Stdout carries records only.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from mllm.core.io.errors import Record
from mllm.core.io.jsonl import dumps, read_jsonl
from mllm.core.io.parquet import ParquetReadError, ParquetRecordWriter, read_parquet

PARQUET_MAGIC = b"PAR1"
FORMATS = ("jsonl", "parquet")


class RecordStreamError(ValueError):
    """The stream as a whole cannot be read or written (missing file, truncated Parquet, ...)."""


def _stdin() -> IO[bytes]:
    return sys.stdin.buffer


def read_records(source: str | Path = "-", *, require_id: bool = True, name: str | None = None) -> Iterator[Record]:
    """Records from a path or '-' (stdin), JSONL, JSON array or Parquet, detected from the bytes.

    A malformed line or record becomes an error record (see jsonl.py); a stream that cannot be
    read at all raises RecordStreamError with a message naming the file (`name` when given, e.g.
    "<stdin>" for a spooled copy of stdin).
    """
    stdin = str(source) == "-"
    name = name or ("<stdin>" if stdin else str(source))
    if stdin:
        stream: IO[bytes] = _stdin()
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise RecordStreamError(f"cannot open {name}: {exc.strerror}") from exc
    try:
        if not hasattr(stream, "peek"):
            stream = io.BufferedReader(stream)  # type: ignore[arg-type]
        head = stream.peek(4)[:4]
        try:
            if head == PARQUET_MAGIC:
                # Parquet needs random access: a path is read in place, stdin is held in memory.
                parquet_source = io.BytesIO(stream.read()) if stdin else str(source)
                yield from read_parquet(parquet_source, name)
            else:
                yield from read_jsonl(stream, name, require_id=require_id)
        except (ParquetReadError, ValueError) as exc:
            raise RecordStreamError(str(exc)) from exc
    finally:
        if not stdin:
            stream.close()


def spool_stdin(stack: ExitStack) -> str:
    """Copy stdin to a temporary file (deleted when `stack` closes) so it can be read twice.

    Commands that need two passes (a corpus statistic first, then per-record output) read stdin
    this way; memory stays flat. Read the copy with `read_records(path, name="<stdin>")`.
    """
    spool = stack.enter_context(tempfile.NamedTemporaryFile(prefix="mllm-", suffix=".stdin"))
    shutil.copyfileobj(_stdin(), spool)
    spool.flush()
    return spool.name


def output_format(dest: str | Path, fmt: str | None = None) -> str:
    """The format to write: `fmt` if given, else from the extension, else JSONL."""
    if fmt:
        if fmt not in FORMATS:
            raise RecordStreamError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(str(dest)).suffix.lower()
    return "parquet" if suffix in (".parquet", ".pq") else "jsonl"


class RecordWriter:
    """Write records to a path or '-' (stdout) as JSONL or Parquet. Use as a context manager."""

    def __init__(self, dest: str | Path = "-", fmt: str | None = None):
        self.dest = str(dest)
        self.format = output_format(dest, fmt)
        self.count = 0
        if self.dest == "-":
            self._stream: IO[bytes] = sys.stdout.buffer
            self._owns_stream = False
        else:
            Path(self.dest).parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(self.dest, "wb")  # noqa: SIM115 - closed in close()
            self._owns_stream = True
        self._parquet = ParquetRecordWriter(self._stream) if self.format == "parquet" else None

    def write(self, record: Record) -> None:
        if self._parquet is not None:
            self._parquet.write(record)
        else:
            self._stream.write(dumps(record))
        self.count += 1

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self._stream.flush()
        if self._owns_stream:
            self._stream.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
