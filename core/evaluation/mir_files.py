"""`mllm eval-mir` on files: the two passes, the comparison run, many files into one leaderboard.

Scoring needs two passes over the input when a classification or tagging task has no label set
given (a pass collects the reference labels, made when the first such record comes up; other
tasks are read once): inputs are opened by core.evaluation.inputs. The summary keeps a few
numbers per item, not the records.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any

from mllm.core.evaluation.cmi_bench import CmiBenchError, split_file_name
from mllm.core.evaluation.inputs import ResultInput, open_result_input
from mllm.core.evaluation.mir import LabelSets, MirEvaluator, compare
from mllm.core.evaluation.options import EvalOptions
from mllm.core.io.errors import Record, StreamSummary


def evaluate(
    main: ResultInput,
    options: EvalOptions,
    *,
    write: Callable[[Record], None] | None = None,
    other: ResultInput | None = None,
    summary: StreamSummary | None = None,
    questions: Counter | None = None,
) -> dict[str, Any]:
    """Score `main` (writing each scored record with `write` when given) and summarise.

    With `other`, the same items of a second system are scored too and compared pairwise. With
    `questions`, the QUESTION_WORDS that each record's `question` names are counted into it.
    """
    if main.standardized_reference and main.task:
        options = replace(options, standardize=options.standardize | {main.task})
    # The label sets' pass over the records (both systems') is made only if a task needs it.
    label_sets = LabelSets(lambda: chain(main.records(), *([other.records()] if other else [])), options)
    evaluator = MirEvaluator(options, label_sets)
    for record in main.records():
        if questions is not None and isinstance(record.get("question"), str):
            text = record["question"].lower()
            questions.update(word for word in QUESTION_WORDS if word in text)
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


# ---------------------------------------------------------------- many files: a leaderboard

# The figure a leaderboard row shows for each task kind (every metric is in the JSON summary).
HEADLINE = {
    "key": "weighted_score", "tempo": "acc2", "beats": "f_measure", "downbeats": "f_measure",
    "chords": "majmin", "classification": "accuracy", "tagging": "f1_macro", "regression": "r2",
}
RESULT_SUFFIXES = (".jsonl", ".json", ".parquet")
# Words a question of a regression task should hold: a file whose questions name another of them
# and not its own is flagged (CMI-Bench's released EMO_valence files ask the arousal question).
QUESTION_WORDS = ("arousal", "valence", "energy", "brightness")


def expand_inputs(paths: list[str]) -> list[str]:
    """The files to score: each path, a folder standing for its result files (sorted by name)."""
    files: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).iterdir()
                           if p.is_file() and p.name.lower().endswith(RESULT_SUFFIXES))
            if not found:
                raise ValueError(f"{path}: a folder without result files ({', '.join(RESULT_SUFFIXES)})")
            files.extend(found)
        else:
            files.append(path)
    return files


def model_of(path: str) -> str:
    """The model a result file belongs to: `<model>_<TASK>.jsonl`'s prefix, else the file's stem."""
    try:
        model, _ = split_file_name(path)
    except CmiBenchError:
        model = ""
    return model or Path(path).stem


def evaluate_files(
    paths: list[str],
    options: EvalOptions,
    *,
    cmi_bench: bool | None = None,
    task: str | None = None,
    summary: StreamSummary | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Score every file on its own and gather one summary: per file its model, task and the
    `evaluate` summary; files that are no eval-mir task (captioning, lyrics) are listed as skipped,
    with the reason. `note` receives the warnings (questions that ask another task, item counts
    that differ between files of the same task)."""
    files, skipped = [], []
    for path in paths:
        with ExitStack() as stack:
            try:
                source = open_result_input(path, stack, cmi_bench=cmi_bench, task=task)
            except CmiBenchError as exc:
                skipped.append({"input": path, "reason": str(exc)})
                continue
            questions: Counter = Counter()
            result = evaluate(source, options, summary=summary, questions=questions)
        entry = {"input": path, "model": model_of(path), **result}
        mismatch = question_mismatch(result, questions)
        if mismatch:
            entry["warnings"] = [mismatch]
            note(f"warning: {path}: {mismatch}")
        files.append(entry)
    for warning in count_mismatches(files):
        note(f"warning: {warning}")
    return {"files": files, "skipped_files": skipped, "bootstrap": files[0]["bootstrap"] if files else None}


def question_mismatch(result: dict[str, Any], questions: Counter) -> str | None:
    """A warning when most questions of a file's one regression task name another task's word."""
    tasks = [t for t in result["tasks"].values() if t["task_type"] == "regression"]
    if len(tasks) != 1 or not questions:
        return None
    own = tasks[0]["task"].lower()
    own_word = next((w for w in QUESTION_WORDS if w in own), None)
    if own_word is None:
        return None
    total = sum(questions.values())
    naming_own = questions[own_word]
    for word in QUESTION_WORDS:
        if word != own_word and questions[word] > total / 2 and naming_own <= total / 2:
            return (f"its questions ask about {word}, not {own_word} ({questions[word]} of {total} name {word}, "
                    f"{naming_own} name {own_word}): is this the {own_word} file?")
    return None


def count_mismatches(files: list[dict[str, Any]]) -> list[str]:
    """A warning per task whose files hold different numbers of items."""
    by_task: dict[str, dict[str, int]] = {}
    for entry in files:
        key = entry.get("cmi_bench_task") or ",".join(sorted(entry["tasks"]))
        by_task.setdefault(key, {})[entry["input"]] = entry["n_records"]
    warnings = []
    for key, counts in by_task.items():
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{Path(path).name} {n}" for path, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            warnings.append(f"the {key} files hold different numbers of items ({listed}): "
                            "their figures are not over the same items")
    return warnings
