"""Record streams in and out: JSONL or Parquet, a path or stdin/stdout.

    records = read_records("clips.jsonl")          # or "-" for stdin; Parquet is detected
    with RecordWriter("-") as out:                 # stdout, JSONL
        for record in records:
            out.write(record)

The input format is detected from the bytes (Parquet files start with ``PAR1``), never from the
name. The output format follows the file extension (`.parquet`/`.pq` -> Parquet, anything else
JSONL) unless given. Stdout carries records only.

A file output is written as `<dest>.partial` and renamed to `<dest>` once it is complete, so a
killed or failed run never leaves a file that looks finished (RecordWriter). A command refuses an
output that is one of its inputs before opening either (`check_output_is_not_input`).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # POSIX only: on Windows a second writer is not locked out
    fcntl = None  # type: ignore[assignment]

from mllm.core.io.errors import Record
from mllm.core.io.jsonl import UTF8_BOM, dumps, read_jsonl
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


COUNT_LINES_UP_TO = 1 << 30  # bytes


def count_records(source: str | Path) -> int | None:
    """How many records the file `source` holds, for a progress bar's total; None for stdin, a
    pipe, a JSON array or a file that cannot be read (the bar then counts without a total).

    Parquet: the row count of its footer. JSONL: the non-blank lines, not parsed (a malformed line
    counts: it becomes an error record, one out per line in); a JSONL file over COUNT_LINES_UP_TO
    bytes is not counted (an extra pass over gigabytes of embeddings would delay the start).
    """
    if str(source) == "-":
        return None
    path = Path(source)
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] == PARQUET_MAGIC:
                import pyarrow.parquet as pq

                return pq.ParquetFile(path).metadata.num_rows
            if head.removeprefix(UTF8_BOM).lstrip()[:1] == b"[" or path.stat().st_size > COUNT_LINES_UP_TO:
                return None
            handle.seek(0)
            return sum(1 for line in handle if len(line) > 64 or not line.isspace())
    except (OSError, ValueError):
        return None


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


def partial_path(dest: str | Path) -> Path:
    """Where a command writes `dest` until it is complete: `dest` + ".partial" beside it."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".partial")


def _is_special(dest: Path) -> bool:
    """True for an existing destination that is not a regular file (/dev/null, a FIFO, /dev/stdout):
    written in place, since a rename would replace the device or pipe itself."""
    try:
        return not stat.S_ISREG(os.stat(dest).st_mode)
    except FileNotFoundError:
        return False


def _open_partial(partial: Path, append: bool) -> IO[bytes]:
    """Open (create) the partial file with the user's umask, locked against a second writer."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0), 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not append:
            os.ftruncate(fd, 0)  # after taking the lock: never truncate another writer's file
    except BlockingIOError:
        os.close(fd)
        raise RecordStreamError(f"another process is writing {partial}: wait for it or choose another -o") from None
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab" if append else "wb")


class RecordWriter:
    """Write records to a path or '-' (stdout) as JSONL or Parquet. Use as a context manager.

    A file is written as `<dest>.partial` and renamed to `dest` when the block ends without an
    exception, so `dest` is always either its previous whole content (or absent) or the new whole
    output: a killed or failed run never leaves a file that reads as complete. After a failure the
    partial file is removed, unless `keep_partial` (commands with `--resume` continue from it; a
    SIGKILL leaves it in any case). `append` continues an existing partial file (resume), and
    `flush_each` flushes after every record so that a kill loses at most the record being written.
    Destinations that are not regular files (/dev/null, FIFOs) are written in place.
    """

    def __init__(self, dest: str | Path = "-", fmt: str | None = None, *, append: bool = False,
                 keep_partial: bool = False, flush_each: bool = False):
        self.dest = str(dest)
        self.format = output_format(dest, fmt)
        if append and self.format != "jsonl":
            raise RecordStreamError("only JSONL output can be appended to (resume)")
        self.count = 0
        self.keep_partial = keep_partial
        self.flush_each = flush_each
        self.partial: Path | None = None
        self._closed = False
        if self.dest == "-":
            self._stream: IO[bytes] = sys.stdout.buffer
            self._owns_stream = False
        elif _is_special(Path(self.dest)):
            self._stream = open(self.dest, "ab" if append else "wb")  # noqa: SIM115 - closed in close()
            self._owns_stream = True
        else:
            self.partial = partial_path(self.dest)
            self._stream = _open_partial(self.partial, append)
            self._owns_stream = True
        self._parquet = ParquetRecordWriter(self._stream) if self.format == "parquet" else None

    def write(self, record: Record) -> None:
        if self._parquet is not None:
            self._parquet.write(record)
        else:
            self._stream.write(dumps(record))
            if self.flush_each:
                self._stream.flush()
        self.count += 1

    def close(self) -> None:
        """Finish the output; a file is renamed into place (it is complete now)."""
        if self._closed:
            return
        self._closed = True
        if self._parquet is not None:
            self._parquet.close()
        self._stream.flush()
        if self._owns_stream:
            if self.partial is not None:
                os.fsync(self._stream.fileno())  # the data is on disk before the name says "complete"
            self._stream.close()
        if self.partial is not None:
            os.replace(self.partial, self.dest)

    def abandon(self) -> None:
        """Stop without completing: `dest` is left as it was; the partial file is removed unless kept."""
        if self._closed:
            return
        self._closed = True
        if self._owns_stream:
            try:
                self._stream.close()
            except OSError:
                pass
        if self.partial is not None and not self.keep_partial:
            self.partial.unlink(missing_ok=True)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def write_file(dest: str | Path, data: bytes) -> None:
    """Write `data` to the file `dest` by way of `<dest>.partial` and a rename (as RecordWriter)."""
    dest = Path(dest)
    if _is_special(dest):
        with open(dest, "wb") as handle:
            handle.write(data)
        return
    partial = partial_path(dest)
    handle = _open_partial(partial, append=False)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when the paths name one existing file (`-` is stdin/stdout: compared by its descriptor)."""
    try:
        first = os.fstat(0) if str(a) == "-" else os.stat(a)
        second = os.fstat(1) if str(b) == "-" else os.stat(b)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(first.st_mode) and (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def check_output_is_not_input(output: str | Path | None, inputs: Iterable[str | Path | None]) -> None:
    """RecordStreamError when `output` (a path, '-' = stdout) is one of the `inputs` ('-' = stdin).

    Checked before anything is opened: writing over the file being read would destroy it. Compares
    the files themselves (device and inode), so another spelling of the same path is caught, as is
    `mllm encode - -o x.jsonl < x.jsonl` and `mllm encode x.jsonl > x.jsonl`.
    """
    target = "-" if output is None else output
    for source in inputs:
        if source is None:
            continue
        if same_file(source, target) or (str(target) != "-" and str(source) != "-" and same_file(source, partial_path(target))):
            where = "stdout" if str(target) == "-" else str(target)
            raise RecordStreamError(f"the output {where} is the input {source}: writing it would destroy the input; "
                                    "write to another file")
