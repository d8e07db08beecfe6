"""The input of an evaluation command: a file (or stdin) that can be read more than once.

eval-mir and eval-caption read their input in two passes (label sets or document frequencies
first, scores second), so stdin is first copied to a temporary file (`spool_stdin`); memory stays
flat either way. CMI-Bench result files (`<model>_<TASK>.jsonl`, items with `correct_answer` and
no id) are detected when not told and turned into records (core.evaluation.cmi_bench):

    purpose "mir"      the task comes from --task or the file's name; a captioning, lyrics or
                       melody file is refused with where to score it instead
    purpose "caption"  every item is a caption; a file named after another task (GS_key) is
                       refused with a pointer to eval-mir
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from mllm.core.evaluation.cmi_bench import (CmiBenchError, looks_like_cmi_bench, read_cmi_bench, resolve_task,
                                            task_from_file_name)
from mllm.core.io.errors import Record
from mllm.core.io.records import read_records, spool_stdin

__all__ = ["CMI_BENCH_CAPTION_TASKS", "ResultInput", "open_result_input"]

CMI_BENCH_CAPTION_TASKS = ("MusicCaps", "SDD")


@dataclass
class ResultInput:
    """A re-readable input: `records()` starts a new pass over it."""

    path: str
    records: Callable[[], Iterator[Record]]
    cmi_bench: bool
    task: str | None = None  # the mllm task of every record (a CMI-Bench file's, or --task)
    cmi_bench_task: str | None = None  # the CMI-Bench task the file's name gives
    standardized_reference: bool = False  # references are z-scores (CMI-Bench EMO)


def open_result_input(path: str, stack: ExitStack, *, cmi_bench: bool | None = None, task: str | None = None,
                      purpose: str = "mir") -> ResultInput:
    """Prepare `path` ("-" = stdin) for several passes (see the module docstring); CmiBenchError
    for a CMI-Bench file of the other command's tasks, or one on stdin without --task (mir)."""
    real = spool_stdin(stack) if path == "-" else path
    shown = "<stdin>" if path == "-" else path  # the name error messages give
    is_cmi = looks_like_cmi_bench(real) if cmi_bench is None else cmi_bench
    if purpose == "caption":
        return _caption_input(path, real, shown, is_cmi)
    if is_cmi:
        if task is None and path == "-":
            raise CmiBenchError("a CMI-Bench file on stdin needs --task (a file's name tells the task otherwise)")
        name, standardized = resolve_task(path, task)
        cmi_task = task or (task_from_file_name(path) if path != "-" else None)
        return ResultInput(path, lambda: read_cmi_bench(real, name, shown), True, name, cmi_task, standardized)
    if task:
        return ResultInput(path, lambda: _with_task(read_records(real, name=shown), task), False, task)
    return ResultInput(path, lambda: read_records(real, name=shown), False)


def _caption_input(path: str, real: str, shown: str, is_cmi: bool) -> ResultInput:
    if not is_cmi:
        return ResultInput(path, lambda: read_records(real, name=shown), False)
    try:
        cmi_task = task_from_file_name(path) if path != "-" else None
    except CmiBenchError:
        cmi_task = None  # a name that tells no task: fine, captions need none
    if cmi_task is not None and cmi_task not in CMI_BENCH_CAPTION_TASKS:
        raise CmiBenchError(
            f"{Path(path).name} is a CMI-Bench {cmi_task} result file, not captioning "
            f"({', '.join(CMI_BENCH_CAPTION_TASKS)}): score it with `mllm eval-mir`"
        )
    return ResultInput(path, lambda: read_cmi_bench(real, "caption", shown), True, "caption", cmi_task)


def _with_task(records: Iterator[Record], task: str) -> Iterator[Record]:
    for record in records:
        record.setdefault("task", task)
        yield record
