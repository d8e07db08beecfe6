"""`mllm eval-mir` on files: input detection, the two passes, the comparison run.

Scoring needs two passes over the input when a classification or tagging task has no label set
given (the first pass collects the reference labels), so stdin is first copied to a temporary
file; memory stays flat either way. The summary keeps a few numbers per item, not the records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

from mllm.core.evaluation.cmi_bench import looks_like_cmi_bench, read_cmi_bench, resolve_task
from mllm.core.evaluation.mir import EvalOptions, MirEvaluator, collect_label_sets, compare
from mllm.core.io.errors import Record, StreamSummary
from mllm.core.io.records import read_records, spool_stdin


@dataclass
class MirInput:
    """A re-readable input: `records()` starts a new pass over it."""

    path: str
    records: Callable[[], Iterator[Record]]
    cmi_bench: bool
    task: str | None = None
    standardized_reference: bool = False


def open_input(path: str, stack: ExitStack, *, cmi_bench: bool | None, task: str | None) -> MirInput:
    """Prepare an input for (possibly) several passes; CMI-Bench files are detected when not told."""
    real = spool_stdin(stack) if path == "-" else path
    shown = "<stdin>" if path == "-" else path  # the name error messages give
    is_cmi = looks_like_cmi_bench(real) if cmi_bench is None else cmi_bench
    if is_cmi:
        if task is None and path == "-":
            raise ValueError("a CMI-Bench file on stdin needs --task (a file's name tells the task otherwise)")
        name, standardized = resolve_task(path, task)
        return MirInput(path, lambda: read_cmi_bench(real, name, shown), True, name, standardized)
    if task:
        return MirInput(path, lambda: _with_task(read_records(real, name=shown), task), False, task)
    return MirInput(path, lambda: read_records(real, name=shown), False)


def _with_task(records: Iterator[Record], task: str) -> Iterator[Record]:
    for record in records:
        record.setdefault("task", task)
        yield record


def evaluate(
    main: MirInput,
    options: EvalOptions,
    *,
    write: Callable[[Record], None] | None = None,
    other: MirInput | None = None,
    summary: StreamSummary | None = None,
) -> dict[str, Any]:
    """Score `main` (writing each scored record with `write` when given) and summarise.

    With `other`, the same items of a second system are scored too and compared pairwise.
    """
    if main.standardized_reference and main.task:
        options = replace(options, standardize=options.standardize | {main.task})
    passes = [main.records()] + ([other.records()] if other else [])
    label_sets = collect_label_sets(chain(*passes), options)
    evaluator = MirEvaluator(options, label_sets)
    for record in main.records():
        scored = evaluator.score(record)
        if summary is not None:
            summary.records_in += 1
            summary.note(scored, new_failure="error" in scored and scored["error"].get("stage") == "eval-mir")
        if write is not None:
            write(scored)
    result = {"input": main.path, **evaluator.summary()}
    if main.cmi_bench:
        result["cmi_bench_task"] = main.task
    if other is not None:
        other_evaluator = MirEvaluator(options, label_sets)
        other_evaluator._matcher = evaluator._matcher  # one embedding model for both systems
        for record in other.records():
            other_evaluator.score(record)
        result["comparison"] = {
            "other": other.path,
            "other_summary": other_evaluator.summary()["tasks"],
            "tasks": compare(evaluator, other_evaluator),
        }
    return result
