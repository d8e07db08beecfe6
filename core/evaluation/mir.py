"""Scoring MIR answers: records in, per-item scores and a per-task summary out.

    evaluator = MirEvaluator(EvalOptions(), label_sets)
    for record in records:
        scored = evaluator.score(record)     # the record + `prediction` (if absent) + `eval`
    summary = evaluator.summary()            # per task: n, parse rate, metrics with 95 % intervals

Metrics per task kind (definitions in the `core.metrics` modules):

    key             weighted_score (MIREX), accuracy (exact, enharmonics equal)
    tempo           acc1 (within 4 %), acc2 (also x2, x3, x1/2, x1/3)
    beats/downbeats f_measure, cmlt, amlt (mean over items)
    chords          one score per mir_eval comparison, duration-weighted over the corpus
    classification  accuracy, macro precision/recall/F1
    tagging         precision/recall/F1 (micro, macro, samples); ROC-AUC/PR-AUC when scores exist
    regression      r2, rmse, mae, pearson, spearman, ccc over the parsed items

Splits: `EvalOptions.split` scores the records of one split and passes the others through
unscored (counted); without it every split is scored apart (a task's items of `test` and of
`train` never share a figure), and the summary says the split of every task and figure. Records
marked `in_sample` (`regress --method probe` predictions of the records it was fitted on) are
passed through unscored unless `include_in_sample` is set: an in-sample figure is not a result.

Unparsed answers are counted (`parse_rate`, `unparsed` by reason) and scored as each metric's
convention says: wrong for key, tempo and labels; an empty estimate for beats; "no chord" for
chords; left out of the regression metrics (never replaced by a guess). Every metric has a
percentile bootstrap interval over items; metrics that are proportions also get LLark's exact
Clopper-Pearson interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mllm.core.evaluation import readings as rd
from mllm.core.evaluation.tasks import SCORED_ELSEWHERE, TaskError, record_scale, structured_value, task_kind
from mllm.core.io.errors import Record, has_error, with_error
from mllm.core.io.splits import record_split, split_label
from mllm.core.metrics import beats as beat_metrics
from mllm.core.metrics import chords as chord_metrics
from mllm.core.metrics import classification as class_metrics
from mllm.core.metrics import key as key_metrics
from mllm.core.metrics import regression as regression_metrics
from mllm.core.metrics import tempo as tempo_metrics
from mllm.core.metrics.bootstrap import bootstrap_intervals, clopper_pearson, paired_difference
from mllm.core.options import check_integer, check_number
from mllm.core.parse.labels import LabelSet

STAGE = "eval-mir"
LABEL_KINDS = ("classification", "tagging")


@dataclass
class EvalOptions:
    read_from: str = "auto"  # auto | prediction | response
    reference_field: str = "reference"  # falls back to `answer` when the record has no such field
    task_types: Mapping[str, str] = field(default_factory=dict)
    scale: tuple[float, float] | None = None
    clip: bool = True  # numbers outside the scale are clipped to it (and counted)
    standardize: frozenset[str] = frozenset()  # tasks whose references are z-scores (CMI-Bench EMO)
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # task -> label set
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    match: str = "text"  # classification answers: "text" (labels named) or "embedding" (nearest label)
    embedding_model: str | None = None  # local sentence-transformers folder for match="embedding"
    descending_fifths: bool = False
    tag_threshold: float = 0.5  # tagging predictions given as scores: labels scoring at least this
    tempo_tolerance: float = 0.04
    beat_trim: float = 0.0
    chord_comparisons: tuple[str, ...] = ("root", "majmin", "mirex", "thirds", "triads", "sevenths")
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    split: str | None = None  # score only the records of this split (the others pass through)
    include_in_sample: bool = False  # also score records marked `in_sample` (a probe's own training records)

    def check(self) -> EvalOptions:
        """ValueError naming the option when a value is out of range (NaN and infinities included)."""
        check_number("--tag-threshold", self.tag_threshold)
        check_number("--tempo-tolerance", self.tempo_tolerance, above=0, below=1)
        check_number("--beat-trim", self.beat_trim, minimum=0)
        check_integer("--bootstrap", self.n_resamples, minimum=0)
        check_number("--confidence", self.confidence, above=0, below=1)
        if self.scale is not None:
            for bound in self.scale:
                check_number("--scale", bound)
        return self


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
            name, kind = task_kind(record, options.task_types)
        except TaskError:
            continue
        if kind not in LABEL_KINDS or name in options.labels:
            continue
        if options.split is not None and record.get("split") != options.split:
            continue
        try:
            value = structured_value(_reference_value(record, options), name, kind, options.reference_field)
            for label in rd.reference_labels(value, None):
                seen.setdefault(name, {})[label] = None
        except TaskError:
            continue
    sets = {name: LabelSet.of(labels, options.synonyms) for name, labels in options.labels.items()}
    for name, labels in seen.items():
        sets.setdefault(name, LabelSet.of(list(labels), options.synonyms))
    return sets


def _reference_value(record: Mapping[str, Any], options: EvalOptions) -> Any:
    if options.reference_field in record:
        return record[options.reference_field]
    if "answer" in record:
        return record["answer"]
    raise TaskError(f"record has no {options.reference_field!r} (nor 'answer') field to score against")


# ---------------------------------------------------------------- per-task accumulation


@dataclass
class TaskScores:
    """Everything kept of one task's items: small per-item numbers, never whole records."""

    name: str
    kind: str
    ids: list[str] = field(default_factory=list)
    parsed: list[bool] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    item: dict[str, list[float]] = field(default_factory=dict)  # per-item metric values
    weight: dict[str, list[float]] = field(default_factory=dict)  # chords: duration per comparison
    y_true: list[float] = field(default_factory=list)  # regression (nan prediction = unparsed)
    y_pred: list[float] = field(default_factory=list)
    clipped: int = 0
    references: list[Any] = field(default_factory=list)  # classification: label; tagging: labels
    predictions: list[Any] = field(default_factory=list)
    label_scores: list[dict[str, float] | None] = field(default_factory=list)  # tagging: scores per label, if given
    labels: tuple[str, ...] = ()  # tagging: the task's label set
    scale: tuple[float, float] | None = None
    split: str | None = None  # the records' `split` (None: records without one)

    def add(self, record_id: str, reading: rd.Reading, scores: Mapping[str, float]) -> None:
        self.ids.append(record_id)
        self.parsed.append(reading.parse_ok)
        if not reading.parse_ok:
            self.reasons[reading.reason or "unparsed"] += 1
        for name, value in scores.items():
            self.item.setdefault(name, []).append(value)


class MirEvaluator:
    """Scores records one at a time and keeps what the summary needs."""

    def __init__(self, options: EvalOptions, label_sets: Mapping[str, LabelSet] | None = None):
        self.options = options
        self.label_sets = dict(label_sets or {})
        self.tasks: dict[tuple[str, str | None], TaskScores] = {}  # (task, split) -> its items
        self.n_records = 0
        self.n_failed = 0
        self.skipped: Counter = Counter()  # task -> records passed through unscored (scored elsewhere)
        self.outside_split: Counter = Counter()  # split -> records passed through (not --split)
        self.in_sample = 0  # records passed through because they are marked in_sample
        self._matcher = None

    @property
    def matcher(self):
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
        name, kind = task_kind(record, options.task_types)
        reference = structured_value(_reference_value(record, options), name, kind, options.reference_field)
        source, value = rd.answer_source(record, name, kind, options.read_from)
        split = record_split(record)
        task = self.tasks.get((name, split))
        if task is None:
            task = self.tasks[name, split] = TaskScores(name, kind, split=split)
        scorer = getattr(self, f"_score_{kind}")
        reading, scores, extra = scorer(task, record, reference, source, value)
        task.add(record["id"], reading, scores)
        out = dict(record)
        if "prediction" not in out:
            out["prediction"] = {name: _jsonable(reading.value), "parse_ok": reading.parse_ok}
        out["eval"] = {
            "task_type": kind,
            "parse_ok": reading.parse_ok,
            "read_from": reading.read_from,
            "matched": reading.matched,
            "reason": reading.reason,
            "scores": {**scores, **extra},
        }
        return out

    def _score_key(self, task, record, reference, source, value):
        ref = rd.reference_key(reference)
        reading = rd.read_key_answer(source, value)
        scores = {
            "weighted_score": key_metrics.weighted_score(ref, reading.value, self.options.descending_fifths),
            "accuracy": key_metrics.exact(ref, reading.value),
        }
        return reading, scores, {}

    def _score_tempo(self, task, record, reference, source, value):
        ref = rd.reference_tempo(reference)
        reading = rd.read_tempo_answer(source, value)
        tolerance = self.options.tempo_tolerance
        scores = {
            "acc1": tempo_metrics.acc1(ref, reading.value, tolerance),
            "acc2": tempo_metrics.acc2(ref, reading.value, tolerance),
        }
        return reading, scores, {}

    def _score_times(self, task, record, reference, source, value):
        ref = rd.reference_times(reference)
        reading = rd.read_times_answer(source, value)
        estimate = reading.value if reading.parse_ok else np.zeros(0)
        scores = beat_metrics.evaluate(ref, estimate, trim_before=self.options.beat_trim)
        return reading, dict(scores), {}

    _score_beats = _score_times
    _score_downbeats = _score_times

    def _score_chords(self, task, record, reference, source, value):
        ref_rows = rd.reference_chords(reference)
        end = max(row[1] for row in ref_rows)
        start = min(row[0] for row in ref_rows)
        reading = rd.read_chords_answer(source, value, duration=end)
        # An answer with no readable chords counts as "no chord" over the whole excerpt.
        est_rows = reading.value if reading.parse_ok and reading.value else [(start, end, "N")]
        per_comparison = chord_metrics.evaluate(
            np.array([[r[0], r[1]] for r in ref_rows]),
            [r[2] for r in ref_rows],
            np.array([[r[0], r[1]] for r in est_rows]),
            [r[2] for r in est_rows],
            comparisons=self.options.chord_comparisons,
        )
        scores, durations = {}, {}
        for comparison, (score, duration) in per_comparison.items():
            scores[comparison] = score
            durations[comparison] = duration
            task.weight.setdefault(comparison, []).append(duration)
        return reading, scores, {"duration": durations}

    def _label_set(self, name: str) -> LabelSet:
        label_set = self.label_sets.get(name)
        if label_set is None:
            raise TaskError(f"task {name!r} has no label set: give --labels {name}=a,b,c")
        return label_set

    def _score_classification(self, task, record, reference, source, value):
        label_set = self._label_set(task.name)
        refs = rd.reference_labels(reference, label_set)
        if len(refs) != 1:
            raise TaskError(f"field 'reference' must hold one label for a classification task, got {refs}")
        reading = rd.read_labels_answer(source, value, label_set, single=True, matcher=self.matcher)
        task.labels = task.labels or label_set.labels
        task.references.append(refs[0])
        task.predictions.append(reading.value)
        return reading, {"accuracy": float(reading.value == refs[0])}, {}

    def _score_tagging(self, task, record, reference, source, value):
        label_set = self._label_set(task.name)
        refs = rd.reference_labels(reference, label_set)
        reading = rd.read_labels_answer(source, value, label_set, single=False, threshold=self.options.tag_threshold)
        predicted = reading.value or []
        task.labels = task.labels or label_set.labels
        task.references.append(refs)
        task.predictions.append(predicted)
        task.label_scores.append(reading.label_scores)
        hits = len(set(refs) & set(predicted))
        precision = hits / len(predicted) if predicted else 0.0
        recall = hits / len(refs) if refs else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return reading, {}, {"precision": precision, "recall": recall, "f1": f1}

    def _score_regression(self, task, record, reference, source, value):
        scale = record_scale(record, task.name, self.options.scale)
        task.scale = task.scale or scale
        truth = rd.reference_number(reference)
        if task.name not in self.options.standardize and not scale[0] <= truth <= scale[1]:
            raise TaskError(f"field {self.options.reference_field!r}: reference {truth:g} is outside the scale "
                            f"{scale[0]:g}-{scale[1]:g} of task {task.name!r} (give the right one with --scale, "
                            f"or a 'scale' field)")
        reading = rd.read_number_answer(source, value, scale, task.name, question=rd.question_text(record))
        estimate = float("nan")
        extra: dict[str, float] = {}
        if reading.parse_ok:
            estimate = reading.value
            if self.options.clip and not scale[0] <= estimate <= scale[1]:
                estimate = min(max(estimate, scale[0]), scale[1])
                task.clipped += 1
                extra["clipped_to"] = estimate
            if task.name not in self.options.standardize:
                extra["abs_error"] = abs(estimate - truth)
        task.y_true.append(truth)
        task.y_pred.append(estimate)
        return reading, {}, extra

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
            "task_type": task.kind,
            "n": n,
            "n_parsed": n_parsed,
            "parse_rate": n_parsed / n if n else float("nan"),
            "unparsed": dict(task.reasons),
        }
        statistics, proportions, notes = task_statistics(task, self.options)
        combined = notes.pop("_combined", None)
        if task.kind == "regression":
            out["n_scored"] = int(np.isfinite(np.asarray(task.y_pred, float)).sum())
            out["n_clipped"] = task.clipped
            out["scale"] = list(task.scale) if task.scale else None
        out.update(notes)
        out["metrics"] = {}
        if task.kind == "regression":
            out["metrics"] = self._regression_entries(task)
            # CMI-Bench's protocol beside it, never mixed in: every item, unparsed = the mean
            out["metrics_unparsed_as_mean"] = self._regression_entries(task, impute=True)
            return out
        out["metrics"] = self._entries(statistics, proportions, combined)
        return out

    def _entries(self, statistics: dict, proportions: set, combined=None) -> dict[str, dict]:
        """Every metric of a task with its interval, from ONE bootstrap on shared resamples: the
        intervals k separate bootstraps with the same seed give, with the drawing and look-ups
        done once (`combined`: a statistic giving all k metrics at once, sharing their counts)."""
        names = list(statistics)
        if not names:
            return {}
        size = statistics[names[0]][1]
        if combined is None:
            parts = [statistics[name][0] for name in names]

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
            if name in proportions and size:
                successes = int(round(entry["value"] * size))
                entry["clopper_pearson"] = list(clopper_pearson(successes, size, self.options.confidence))
            entries[name] = entry
        return entries

    def _regression_entries(self, task: TaskScores, impute: bool = False) -> dict[str, dict]:
        """The six regression metrics with intervals from ONE bootstrap on shared resamples.

        Same intervals as six separate bootstraps with the same seed, about 3 x faster
        (regression.metrics_over_items). `impute`: over every item, unparsed predictions
        replaced by the mean (see regression_arrays).
        """
        y_true, y_pred = regression_arrays(task, self.options, {}, impute=impute)
        statistic = regression_metrics.metrics_over_items(y_true, y_pred)
        index = np.arange(y_true.size)
        values = statistic(index) if y_true.size else np.full(len(regression_metrics.METRICS), np.nan)
        intervals = [None] * len(values)
        if self.options.n_resamples > 0:
            intervals = bootstrap_intervals(
                statistic, (index,), n_resamples=self.options.n_resamples,
                confidence=self.options.confidence, seed=self.options.seed,
            ) if y_true.size else [None] * len(values)
        entries = {}
        for metric, value, interval in zip(regression_metrics.METRICS, values, intervals):
            entries[metric] = {
                "value": float(value),
                "low": interval.low if interval else None,
                "high": interval.high if interval else None,
            }
        return entries

# ---------------------------------------------------------------- statistics over item indices


def _mean_of(values: Iterable[float]) -> Callable[[np.ndarray], np.ndarray]:
    array = np.asarray(list(values), dtype=float)
    return lambda index: array[index].mean(axis=-1)


def regression_arrays(task: TaskScores, options: EvalOptions, notes: dict[str, Any],
                      impute: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) of the items answered with a number; predictions z-scored when asked.

    `impute` gives CMI-Bench's protocol instead: every item, an unparsed prediction counted as the
    mean of the parsed ones (its scorer "counts an unparseable answer as the mean"); with no parsed
    item at all there is nothing to take a mean of, and no item is kept."""
    y_true = np.asarray(task.y_true, float)
    y_pred = np.asarray(task.y_pred, float)
    keep = np.isfinite(y_pred)
    if impute and keep.any():
        y_pred = np.where(keep, y_pred, y_pred[keep].mean())
    else:
        y_true, y_pred = y_true[keep], y_pred[keep]
    if task.name in options.standardize and y_pred.size > 1:
        std = y_pred.std()
        y_pred = (y_pred - y_pred.mean()) / std if std > 0 else y_pred - y_pred.mean()
        notes["prediction_transform"] = "z-score over the parsed predictions (references are z-scores)"
    return y_true, y_pred


def task_statistics(task: TaskScores, options: EvalOptions):
    """Metric name -> (statistic over item indices, number of items), the proportions, and notes."""
    notes: dict[str, Any] = {}
    n = len(task.ids)
    if task.kind in ("key", "tempo", "beats", "downbeats"):
        stats = {metric: (_mean_of(values), n) for metric, values in task.item.items()}
        proportions = {"accuracy", "acc1", "acc2"} & set(stats)
        return stats, proportions, notes
    if task.kind == "chords":
        stats = {}
        for comparison, values in task.item.items():
            score = np.nan_to_num(np.asarray(values, float))
            duration = np.asarray(task.weight[comparison], float)
            weighted = score * duration

            def statistic(index, weighted=weighted, duration=duration):
                total = duration[index].sum(axis=-1)
                return np.where(total > 0, weighted[index].sum(axis=-1) / np.where(total > 0, total, 1), np.nan)

            stats[comparison] = (statistic, n)
        return stats, set(), notes
    if task.kind == "classification":
        # Macro averages over the declared label set (--labels, else every reference label seen),
        # as sklearn's precision_recall_fscore_support(labels=...) computes them.
        labels = sorted(task.labels or set(task.references))  # macro averages do not depend on the order
        by_metric = class_metrics.single_label_statistics(task.references, task.predictions, labels)
        stats = {"accuracy": (_mean_of(task.item["accuracy"]), n)}
        for metric in ("precision_macro", "recall_macro", "f1_macro"):
            stats[metric] = (by_metric[metric], n)
        notes["labels"] = labels
        return stats, {"accuracy"}, notes
    if task.kind == "tagging":
        # Columns: the label set (so a predicted label no reference holds is a false positive).
        label_list = sorted(set(task.labels) | {label for refs in task.references for label in refs})
        column = {label: j for j, label in enumerate(label_list)}
        y_true = np.zeros((n, len(label_list)), dtype=int)
        y_pred = np.zeros((n, len(label_list)), dtype=int)
        for i, (refs, preds) in enumerate(zip(task.references, task.predictions)):
            y_true[i, [column[label] for label in refs]] = 1
            y_pred[i, [column[label] for label in preds if label in column]] = 1
        # Ranking metrics from scores only when every item came with scores (a label it did not
        # score counts as 0); otherwise the *_binary AUCs on the 0/1 answers.
        y_score = None
        if n and all(scores is not None for scores in task.label_scores):
            y_score = np.zeros((n, len(label_list)))
            for i, scores in enumerate(task.label_scores):
                for label, score in scores.items():
                    y_score[i, column[label]] = score
            notes["ranking"] = "from the predicted scores"
        # Vectorised over resamples (core.metrics.classification): the report's numbers on each
        # resample without recomputing the report per resample and metric.
        by_metric = class_metrics.multilabel_statistics(y_true, y_pred, y_score, labels=label_list)
        stats = {metric: (statistic, n) for metric, statistic in by_metric.items()}
        names = class_metrics.multilabel_metric_names(y_score is not None)
        if list(stats) == list(names):  # all metrics at once, their counts shared (the summary's bootstrap)
            notes["_combined"] = class_metrics.multilabel_metrics_over_items(y_true, y_pred, y_score, labels=label_list)
        notes["labels"] = label_list
        return stats, set(), notes
    if task.kind == "regression":
        y_true, y_pred = regression_arrays(task, options, notes)
        by_metric = regression_metrics.statistics_over_items(y_true, y_pred)
        stats = {metric: (by_metric[metric], int(y_true.size)) for metric in regression_metrics.METRICS}
        return stats, set(), notes
    raise TaskError(f"unknown task kind {task.kind!r}")


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
        if task_b is None or task_b.kind != task_a.kind:
            out[name] = {"n_paired": 0, "note": "the other system has no items of this task"}
            continue
        position_b = {record_id: i for i, record_id in enumerate(task_b.ids)}
        pairs = [(i, position_b[record_id]) for i, record_id in enumerate(task_a.ids) if record_id in position_b]
        if task_a.kind == "regression":
            pa_ok = np.isfinite(np.asarray(task_a.y_pred, float))
            pb_ok = np.isfinite(np.asarray(task_b.y_pred, float))
            pairs = [(i, j) for i, j in pairs if pa_ok[i] and pb_ok[j]]
        sub_a = _subset(task_a, [i for i, _ in pairs])
        sub_b = _subset(task_b, [j for _, j in pairs])
        stats_a, _, _ = task_statistics(sub_a, a.options)
        stats_b, _, _ = task_statistics(sub_b, b.options)
        m = len(pairs)
        metrics = {}
        for metric, (statistic_a, size_a) in stats_a.items():
            if metric not in stats_b or m == 0:
                continue
            statistic_b = stats_b[metric][0]
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


def _subset(task: TaskScores, positions: list[int]) -> TaskScores:
    """The same task restricted to some items (in the given order)."""
    pick = lambda values: [values[p] for p in positions]  # noqa: E731
    return TaskScores(
        name=task.name,
        kind=task.kind,
        ids=pick(task.ids),
        parsed=pick(task.parsed),
        item={k: pick(v) for k, v in task.item.items()},
        weight={k: pick(v) for k, v in task.weight.items()},
        y_true=pick(task.y_true) if task.y_true else [],
        y_pred=pick(task.y_pred) if task.y_pred else [],
        references=pick(task.references) if task.references else [],
        predictions=pick(task.predictions) if task.predictions else [],
        label_scores=pick(task.label_scores) if task.label_scores else [],
        labels=task.labels,
        scale=task.scale,
        split=task.split,
    )
