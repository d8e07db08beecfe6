"""Scoring MIR answers: records in, per-item scores and a per-task summary out.

    evaluator = MirEvaluator(EvalOptions(), label_sets)
    for record in records:
        scored = evaluator.score(record)     # the record + `prediction` (if absent) + `eval`
    summary = evaluator.summary()            # per task: n, parse rate, metrics with 95 % intervals

Each record is read and scored by its task's kind (core.evaluation.kinds, which lists every
kind's readings and metrics; definitions in the `core.metrics` modules): this module keeps what
each kind's summary needs, item by item, and bootstraps the statistics the kind returns.

Splits: `EvalOptions.split` scores the records of one split and passes the others through
unscored (counted); without it every split is scored apart (a task's items of `test` and of
`train` never share a figure), and the summary says the split of every task and figure. Records
marked `in_sample` (`regress --method probe` predictions of the records it was fitted on) are
passed through unscored unless `include_in_sample` is set: an in-sample figure is not a result.

Unparsed answers are counted (`parse_rate`, `unparsed` by reason) and scored as each metric's
convention says: wrong for key, tempo and labels; an empty estimate for beats; "no chord" for
chords; left out of the regression metrics (never replaced by a guess; CMI-Bench's mean
imputation is reported beside them as `metrics_unparsed_as_mean`). Every metric has a
percentile bootstrap interval over items; metrics that are proportions also get LLark's exact
Clopper-Pearson interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mllm.core.evaluation.kinds import Context, Kind, Statistics, answer_source, item_context, kind_of, reference_labels
from mllm.core.evaluation.options import EvalOptions
from mllm.core.evaluation.readings import Reading
from mllm.core.evaluation.tasks import SCORED_ELSEWHERE, TaskError
from mllm.core.io.errors import Record, has_error, with_error
from mllm.core.io.splits import record_split, split_label
from mllm.core.metrics.bootstrap import bootstrap_intervals, clopper_pearson, paired_difference
from mllm.core.parse.labels import LabelSet

__all__ = ["EvalOptions", "LabelSets", "MirEvaluator", "TaskScores", "collect_label_sets", "compare"]

STAGE = "eval-mir"


# ---------------------------------------------------------------- label sets (first pass)


def collect_label_sets(records: Iterable[Record], options: EvalOptions) -> dict[str, LabelSet]:
    """Label set of every classification/tagging task: the one given, else every reference label seen.

    Inferring the set from the references is what CMI-Bench does; give `--labels` when the test
    split does not contain every class.
    """
    seen: dict[str, dict[str, None]] = {}
    for record in records:
        if has_error(record):
            continue
        try:
            name, kind = kind_of(record, options.task_types)
        except TaskError:
            continue
        if not kind.labelled or name in options.labels:
            continue
        if options.split is not None and record.get("split") != options.split:
            continue
        try:
            value = kind.field_value(_reference_value(record, options), Context(name, options), options.reference_field)
            for label in reference_labels(value, None):
                seen.setdefault(name, {})[label] = None
        except TaskError:
            continue
    sets = {name: LabelSet.of(labels, options.synonyms) for name, labels in options.labels.items()}
    for name, labels in seen.items():
        sets.setdefault(name, LabelSet.of(list(labels), options.synonyms))
    return sets


class LabelSets(Mapping):
    """The label sets of `collect_label_sets`, with the pass over the records made only when needed.

    A key, tempo or regression file needs no label set: its records are read once. The first time
    a task without a given set is looked up, every record of `records()` (a fresh iterator over
    the input) is read for its reference labels, as collect_label_sets does. The records scored
    before that are unaffected: a label set belongs to one task, and that task had not come up.
    """

    def __init__(self, records: Callable[[], Iterable[Record]], options: EvalOptions):
        self._records, self._options = records, options
        self._sets = {name: LabelSet.of(labels, options.synonyms) for name, labels in options.labels.items()}
        self._collected = False

    def _collect(self) -> None:
        if not self._collected:
            self._sets = collect_label_sets(self._records(), self._options)
            self._collected = True

    def __getitem__(self, name: str) -> LabelSet:
        if name not in self._sets:
            self._collect()
        return self._sets[name]

    def __iter__(self):
        self._collect()
        return iter(self._sets)

    def __len__(self) -> int:
        self._collect()
        return len(self._sets)


def _reference_value(record: Mapping[str, Any], options: EvalOptions) -> Any:
    if options.reference_field in record:
        return record[options.reference_field]
    if "answer" in record:
        return record["answer"]
    raise TaskError(f"record has no {options.reference_field!r} (nor 'answer') field to score against")


# ---------------------------------------------------------------- per-task accumulation


@dataclass
class TaskScores:
    """Everything kept of one task's items: small per-item values, never whole records."""

    name: str
    kind: Kind
    context: Context  # the first item's (the task's label set and scale)
    split: str | None = None  # the records' `split` (None: records without one)
    ids: list[str] = field(default_factory=list)
    parsed: list[bool] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    kept: list[Any] = field(default_factory=list)  # per item, what kind.summarise takes

    def add(self, record_id: str, reading: Reading, kept: Any) -> None:
        self.ids.append(record_id)
        self.parsed.append(reading.parse_ok)
        if not reading.parse_ok:
            self.reasons[reading.reason or "unparsed"] += 1
        self.kept.append(kept)

    def subset(self, positions: list[int]) -> TaskScores:
        """The same task restricted to some items (in the given order)."""
        subset = TaskScores(self.name, self.kind, self.context, self.split)
        for p in positions:
            subset.ids.append(self.ids[p])
            subset.parsed.append(self.parsed[p])
            subset.kept.append(self.kept[p])
        return subset


class MirEvaluator:
    """Scores records one at a time and keeps what the summary needs."""

    def __init__(self, options: EvalOptions, label_sets: Mapping[str, LabelSet] | None = None):
        self.options = options
        # kept as given (not copied, not tested for emptiness): a LabelSets collects on first lookup
        self.label_sets = {} if label_sets is None else label_sets
        self.tasks: dict[tuple[str, str | None], TaskScores] = {}  # (task, split) -> its items
        self.n_records = 0
        self.n_failed = 0
        self.skipped: Counter = Counter()  # task -> records passed through unscored (scored elsewhere)
        self.outside_split: Counter = Counter()  # split -> records passed through (not --split)
        self.in_sample = 0  # records passed through because they are marked in_sample
        self._matcher = None

    def _load_matcher(self):
        """The embedding matcher of `--match embedding`, loaded on first use (None for text matching)."""
        if self.options.match != "embedding":
            return None
        if self._matcher is None:
            from mllm.core.parse.label_embedding import EmbeddingMatcher

            self._matcher = EmbeddingMatcher(self.options.embedding_model)
        return self._matcher

    # -- one record

    def score(self, record: Record) -> Record:
        """The record with `eval` (and `prediction` if it had none) added, or an error record."""
        self.n_records += 1
        if has_error(record):
            self.n_failed += 1
            return record
        task = record.get("task")
        if isinstance(task, str) and task.lower() in SCORED_ELSEWHERE and task not in self.options.task_types:
            self.skipped[task] += 1
            return record
        try:
            split = record_split(record)
            if self.options.split is not None and split != self.options.split:
                self.outside_split[split_label(split)] += 1
                return record
            if record.get("in_sample") is True and not self.options.include_in_sample:
                self.in_sample += 1
                return record
            return self._score(record)
        except (TaskError, ValueError) as exc:
            self.n_failed += 1
            return with_error(record, STAGE, exc)

    def _score(self, record: Record) -> Record:
        options = self.options
        name, kind = kind_of(record, options.task_types)
        context = item_context(record, name, kind, options, self.label_sets, self._load_matcher)
        reference = kind.read_reference(kind.field_value(_reference_value(record, options), context,
                                                         options.reference_field), context)
        source, value = answer_source(record, kind, context)
        reading = kind.read_answer(source, value, reference, context)
        scored = kind.score(reference, reading, context)
        split = record_split(record)
        task = self.tasks.get((name, split))
        if task is None:
            task = self.tasks[name, split] = TaskScores(name, kind, context, split)
        task.add(record["id"], reading, scored.kept)
        out = dict(record)
        if "prediction" not in out:
            out["prediction"] = {name: _jsonable(reading.value), "parse_ok": reading.parse_ok}
        out["eval"] = {
            "task_type": kind.name,
            "parse_ok": reading.parse_ok,
            "read_from": reading.read_from,
            "matched": reading.matched,
            "reason": reading.reason,
            "scores": scored.scores,
        }
        return out

    # -- the summary

    def task_keys(self) -> dict[tuple[str, str | None], str]:
        """The summary's name of each (task, split): the task's name when every item scored is of
        one split, else "task [split]" for all ("no split" for records without one)."""
        one_split = len({split for _, split in self.tasks}) <= 1
        return {key: key[0] if one_split else f"{key[0]} [{split_label(key[1])}]" for key in self.tasks}

    def summary(self) -> dict[str, Any]:
        keys = self.task_keys()
        splits = Counter()
        for (_, split), task in self.tasks.items():
            splits[split_label(split)] += len(task.ids)
        return {
            "n_records": self.n_records,
            "n_failed": self.n_failed,
            "split": self.options.split,
            "n_scored_by_split": dict(splits),
            "not_scored": {
                "other_splits": dict(self.outside_split),
                "in_sample": self.in_sample,
            },
            "skipped": {task: {"n": n, "score_with": SCORED_ELSEWHERE[task.lower()]} for task, n in self.skipped.items()},
            "bootstrap": {
                "n_resamples": self.options.n_resamples,
                "confidence": self.options.confidence,
                "seed": self.options.seed,
                "method": "percentile bootstrap over items",
            },
            "tasks": {keys[key]: self._task_summary(task) for key, task in self.tasks.items()},
        }

    def _task_summary(self, task: TaskScores) -> dict[str, Any]:
        n = len(task.ids)
        n_parsed = int(sum(task.parsed))
        out: dict[str, Any] = {
            "task": task.name,
            "split": task.split,
            "task_type": task.kind.name,
            "n": n,
            "n_parsed": n_parsed,
            "parse_rate": n_parsed / n if n else float("nan"),
            "unparsed": dict(task.reasons),
        }
        summary = task.kind.summarise(task.kept, task.context)
        out.update(summary.notes)
        for block, statistics in summary.blocks.items():
            out[block] = self._entries(statistics)
        return out

    def _entries(self, statistics: Statistics) -> dict[str, dict]:
        """Every metric of a task with its interval, from ONE bootstrap on shared resamples: the
        intervals k separate bootstraps with the same seed give, with the drawing and look-ups
        done once (`statistics.combined`: all k metrics at once, sharing their counts)."""
        names = list(statistics.metrics)
        if not names:
            return {}
        size = statistics.size
        combined = statistics.combined
        if combined is None:
            parts = [statistics.metrics[name] for name in names]

            def combined(index):
                return np.stack([np.asarray(part(index), dtype=float) for part in parts])

        index = np.arange(size)
        values = combined(index) if size else np.full(len(names), np.nan)
        intervals = [None] * len(names)
        if self.options.n_resamples > 0 and size:
            intervals = bootstrap_intervals(combined, (index,), n_resamples=self.options.n_resamples,
                                            confidence=self.options.confidence, seed=self.options.seed)
        entries = {}
        for name, value, interval in zip(names, values, intervals):
            entry: dict[str, Any] = {"value": float(value), "low": interval.low if interval else None,
                                     "high": interval.high if interval else None}
            if name in statistics.proportions and size:
                successes = int(round(entry["value"] * size))
                entry["clopper_pearson"] = list(clopper_pearson(successes, size, self.options.confidence))
            entries[name] = entry
        return entries


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [list(v) if isinstance(v, tuple) else v for v in value]
    return value


# ---------------------------------------------------------------- comparing two systems


def compare(a: MirEvaluator, b: MirEvaluator) -> dict[str, Any]:
    """Paired bootstrap test of system A against system B on the items (ids) both scored.

    For each task and metric: both values on the common items, their difference A - B, its
    percentile interval and a two-sided p-value (see core.metrics.bootstrap.paired_difference).
    Regression metrics are compared on the items that both systems answered with a number.
    """
    out: dict[str, Any] = {}
    names = a.task_keys()
    for key, task_a in a.tasks.items():
        name = names[key]
        task_b = b.tasks.get(key)
        if task_b is None or task_b.kind is not task_a.kind:
            out[name] = {"n_paired": 0, "note": "the other system has no items of this task"}
            continue
        position_b = {record_id: i for i, record_id in enumerate(task_b.ids)}
        pairs = [(i, position_b[record_id]) for i, record_id in enumerate(task_a.ids) if record_id in position_b]
        kind = task_a.kind
        pairs = [(i, j) for i, j in pairs if kind.pairable(task_a.kept[i]) and kind.pairable(task_b.kept[j])]
        sub_a = task_a.subset([i for i, _ in pairs])
        sub_b = task_b.subset([j for _, j in pairs])
        stats_a = kind.summarise(sub_a.kept, sub_a.context).blocks["metrics"]
        stats_b = kind.summarise(sub_b.kept, sub_b.context).blocks["metrics"]
        m = len(pairs)
        metrics = {}
        size_a = stats_a.size
        for metric, statistic_a in stats_a.metrics.items():
            if metric not in stats_b.metrics or m == 0:
                continue
            statistic_b = stats_b.metrics[metric]
            index = np.arange(size_a)
            test = paired_difference(
                _joint(statistic_a, statistic_b, size_a),
                (index,), (index + size_a,),
                n_resamples=a.options.n_resamples, confidence=a.options.confidence, seed=a.options.seed,
            )
            metrics[metric] = {"a": float(statistic_a(index)), "b": float(statistic_b(index)), **test}
        out[name] = {"n_paired": m, "metrics": metrics}
    return out


def _joint(statistic_a, statistic_b, size: int):
    """One statistic over a joint index space: [0, size) are A's items, [size, 2*size) B's."""

    def statistic(index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        if index.size and index.flat[0] >= size:
            return statistic_b(index - size)
        return statistic_a(index)

    return statistic
