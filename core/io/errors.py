"""Error records: a record that fails is written with an `error` field, never dropped.

    {"id": "clip-7", ..., "error": {"stage": "eval-mir", "type": "ValueError", "message": "..."}}

Later stages pass such a record through untouched (`map_records` does this for every stage), so
the number of records out of a pipeline equals the number in, and the failure stays visible with
the stage that caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


class RecordError(ValueError):
    """A record cannot be processed; the message names the field at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def has_error(record: Record) -> bool:
    return bool(record.get("error"))


class FreshError(dict):
    """An `error` field made while this process read its input (a malformed line, a bad tensor).
    Written like any dict; the summary counts it as a failure of this command, not of an earlier one."""


def make_error(stage: str, exc: BaseException | str, error_type: str | None = None, *,
               fresh: bool = False) -> dict[str, str]:
    """The `error` field for a failure at `stage` (`fresh`: found by this process's reader)."""
    if isinstance(exc, BaseException):
        error = {"stage": stage, "type": error_type or type(exc).__name__, "message": str(exc)}
    else:
        error = {"stage": stage, "type": error_type or "Error", "message": exc}
    return FreshError(error) if fresh else error


def with_error(record: Record, stage: str, exc: BaseException | str, error_type: str | None = None) -> Record:
    """A copy of `record` carrying an `error` field; every other field is kept."""
    out = dict(record)
    out["error"] = make_error(stage, exc, error_type)
    return out


FIRST_ERRORS = 5  # failed records named in the summary


@dataclass
class StreamSummary:
    """Counts of one command's run, printed on stderr at the end."""

    stage: str
    records_in: int = 0
    records_out: int = 0
    failed_here: int = 0
    failed_before: int = 0
    first_errors: list[str] = field(default_factory=list)

    def note(self, record: Record, *, new_failure: bool) -> None:
        self.records_out += 1
        if not has_error(record):
            return
        error = record["error"]
        new_failure = new_failure or isinstance(error, FreshError)  # read here, so failed here
        if new_failure:
            self.failed_here += 1
        else:
            self.failed_before += 1
        if len(self.first_errors) < FIRST_ERRORS:
            if not isinstance(error, dict):
                error = {"message": str(error)}
            origin = "" if new_failure else " (from an earlier stage)"
            self.first_errors.append(f"{record.get('id', '?')}: {error.get('stage', '?')}{origin}: "
                                     f"{error.get('type', 'Error')}: {error.get('message', '')}")

    @property
    def failed(self) -> int:
        return self.failed_here + self.failed_before

    def describe(self) -> str:
        text = f"{self.stage}: {self.records_in} records in, {self.records_out} out"
        if self.failed:
            text += f", {self.failed} failed ({self.failed_here} here, {self.failed_before} passed through)"
        return text


def map_records(
    records: Iterable[Record],
    process: Callable[[Record], Record],
    stage: str,
    summary: StreamSummary | None = None,
) -> Iterator[Record]:
    """Apply `process` to every record; a failure becomes an error record, the others go on.

    Records that already carry an `error` are passed through unchanged. `process` returns the
    new record (usually the input with fields added).
    """
    for record in records:
        if summary is not None:
            summary.records_in += 1
        failed_before = has_error(record)
        if failed_before:
            out = record
        else:
            try:
                out = process(record)
            except Exception as exc:  # noqa: BLE001 - any failure of one record is that record's error
                out = with_error(record, stage, exc)
        if summary is not None:
            summary.note(out, new_failure=has_error(out) and not failed_before)
        yield out
