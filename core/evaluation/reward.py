"""`mllm eval-reward`: records -> readings -> metrics -> summary for reward models.

A MOS record (`mos`, `reward`, `system`) gives, per axis, one (MOS, score) point; a pair record
(`preference`, `reward`/`reward_b` or `predicted_preference`) gives, per axis, the human outcome
and the model's (core.metrics.preference). Items are collected per (dataset, kind, axis, split), a
*task* named "mos/musicality", "preference/alignment", "PAM/mos/musicality" for records with a
`dataset` field (benchmark sets are never pooled: CMI-RewardBench reports each apart), "... [test]"
when several splits are scored; and
summarised with 95 % bootstrap intervals: per clip and per system for MOS
(core.metrics.correlation), accuracy and decided accuracy for pairs; `--by FIELD` breaks every task
down by a field's value (numbers binned with `--bins FIELD=EDGES`, duration by default in
CMI-RewardBench's bins). The summary has eval-mir's shape (core.evaluation.mir): n_records,
n_failed, split, n_scored_by_split, not_scored, bootstrap, tasks, and `comparison` with --compare.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mllm.core.io.errors import Record, RecordError, StreamSummary, has_error, with_error
from mllm.core.io.splits import record_split, split_label
from mllm.core.metrics import correlation, preference
from mllm.core.metrics.bootstrap import bootstrap_intervals, paired_difference
from mllm.core.options import check_integer, check_number

__all__ = ["STAGE", "DURATION_BINS", "RewardOptions", "RewardEvaluator", "evaluate", "compare", "bin_label"]

STAGE = "eval-reward"
# CMI-RewardBench's duration bins (seconds; its Table 17): [10,30) [30,60) [60,120) [120,500]
DURATION_BINS = (10.0, 30.0, 60.0, 120.0, 500.0)
MOS, PAIRS = "mos", "preference"
MISSING = "missing"


@dataclass
class RewardOptions:
    split: str | None = None  # score only the records of this split (the others pass through)
    preference_axis: str = "musicality"  # the axis of a plain-string (holistic) preference
    tie_margin: float = 0.0  # |score_a - score_b| <= margin: the model calls a tie
    by: tuple[str, ...] = ()  # breakdown fields
    bins: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # field -> bin edges
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def check(self) -> RewardOptions:
        """ValueError naming the option when a value is out of range."""
        check_number("--tie-margin", self.tie_margin, minimum=0)
        check_integer("--bootstrap", self.n_resamples, minimum=0)
        check_number("--confidence", self.confidence, above=0, below=1)
        if not self.preference_axis.strip():
            raise ValueError("--preference-axis must name an axis")
        for name, edges in self.bins.items():
            if len(edges) < 2 or any(not math.isfinite(e) for e in edges) or list(edges) != sorted(set(edges)):
                raise ValueError(f"--bins {name}: give at least two increasing finite edges, got {list(edges)}")
        return self

    def edges(self, name: str) -> tuple[float, ...] | None:
        if name in self.bins:
            return tuple(self.bins[name])
        return DURATION_BINS if name == "duration" else None


def bin_label(value: float, edges: tuple[float, ...]) -> str:
    """The bin of `value`: "[a,b)", the last bin closed "[a,b]" (CMI-RewardBench's labels), or
    "outside [first,last]".

    Examples
    --------
    >>> bin_label(29.9, DURATION_BINS), bin_label(500, DURATION_BINS), bin_label(5, DURATION_BINS)
    ('[10,30)', '[120,500]', 'outside [10,500]')
    """
    for i in range(len(edges) - 1):
        low, high = edges[i], edges[i + 1]
        last = i == len(edges) - 2
        if low <= value < high or (last and value == high):
            return f"[{low:g},{high:g}{']' if last else ')'}"
    return f"outside [{edges[0]:g},{edges[-1]:g}]"


# ---------------------------------------------------------------- reading one record


def _score(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"field {field_name!r} must be a finite number, got {value!r}", field_name)
    return float(value)


def _axis_dict(record: Record, name: str, required: bool = True) -> dict | None:
    value = record.get(name)
    if value is None:
        if required:
            raise RecordError(f"no field {name!r} ({name}: {{axis: value}})", name)
        return None
    if not isinstance(value, dict) or not value:
        raise RecordError(f"field {name!r} must be a non-empty object {{axis: value}}, got {value!r}", name)
    return value


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    """A field by dotted path ("features.genre"); None when absent."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _group_value(record: Record, name: str, axis: str, options: RewardOptions) -> str:
    """The breakdown value of `record` for `--by name` on `axis`: the field's value (its `axis`
    entry when it is an object {axis: value}), binned when the field has bin edges."""
    if name == "duration":
        durations = [v for v in (record.get("duration"), record.get("duration_b")) if v is not None]
        if not durations and _lookup(record, "features.duration") is not None:
            durations = [_lookup(record, "features.duration")]
        # a pair: the mean of its two clips (the one given when only one is), as CMI-RewardBench bins
        value: Any = sum(_score(v, name) for v in durations) / len(durations) if durations else None
    else:
        value = _lookup(record, name)
        if isinstance(value, Mapping):
            value = value.get(axis)
    if value is None:
        return MISSING
    edges = options.edges(name)
    if edges is not None:
        return bin_label(_score(value, name), edges)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 3.0 and 3 are one group
    return str(value)


@dataclass
class Reading:
    """What one record gives per axis, for one kind."""

    kind: str
    points: dict[str, tuple]  # axis -> (mos, score) | (human outcome, model outcome, decided_by, difference)
    unscored_axes: list[str]


KNOWN_AXES = ("musicality", "alignment")
# `mllm score --split test` passes the other splits through unscored: the usual cause of a missing score
NOT_SCORED_HINT = "; if `mllm score --split` left this split unscored, give eval-reward the same --split"


def top_level_mos(record: Record) -> dict[str, Any]:
    """The opinion scores a record holds under the axes' own names (`musicality`, `alignment`, or an
    axis of its `reward`), as `mllm build-pairs` and MOS tables write them: {axis: value}."""
    reward = record.get("reward")
    axes = [*KNOWN_AXES, *(k for k in reward if k not in KNOWN_AXES)] if isinstance(reward, dict) else KNOWN_AXES
    return {axis: record[axis] for axis in axes if record.get(axis) is not None}


def read_mos(record: Record) -> Reading:
    """(MOS, score) per axis that both the opinion scores (`mos`, else the axes' own fields) and
    `reward` give."""
    if "mos" in record:
        mos, prefix = _axis_dict(record, "mos"), "mos."
    else:
        mos, prefix = top_level_mos(record), ""
    if record.get("reward") is None:
        raise RecordError(f"no field 'reward' (reward: {{axis: value}}, the model's scores){NOT_SCORED_HINT}", "reward")
    reward = _axis_dict(record, "reward")
    points, unscored = {}, []
    for axis, value in mos.items():
        human = _score(value, f"{prefix}{axis}")
        if axis not in reward:
            unscored.append(axis)
            continue
        points[axis] = (human, _score(reward[axis], f"reward.{axis}"))
    for axis, value in reward.items():
        _score(value, f"reward.{axis}")
    if not points:
        raise RecordError(f"'reward' ({', '.join(map(str, reward))}) scores none of the axes of the opinion "
                          f"scores ({', '.join(map(str, mos))})", "reward")
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise RecordError(f"field 'system' must be text, got {system!r}", "system")
    return Reading(MOS, points, unscored)


def read_pair(record: Record, options: RewardOptions) -> Reading:
    """(human outcome, model outcome, decided by, score difference) per axis of `preference`."""
    for name in ("audio", "audio_b"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise RecordError(f"a pair record needs field {name!r} (the path of clip {'A' if name == 'audio' else 'B'})", name)
    judged = record["preference"]
    if isinstance(judged, str):
        axis = record.get("axis", options.preference_axis)
        if not isinstance(axis, str) or not axis.strip():
            raise RecordError(f"field 'axis' must name the axis the preference is about, got {axis!r}", "axis")
        judged = {axis: judged}
    elif not isinstance(judged, dict) or not judged:
        raise RecordError(f"field 'preference' must be a label or an object {{axis: label}}, got {judged!r}", "preference")
    reward = _axis_dict(record, "reward", required=False)
    reward_b = _axis_dict(record, "reward_b", required=False)
    if (reward is None) != (reward_b is None):
        missing = "reward_b" if reward_b is None else "reward"
        raise RecordError(f"a pair record with {'reward' if missing == 'reward_b' else 'reward_b'} needs field "
                          f"{missing!r} too (the score of clip {'B' if missing == 'reward_b' else 'A'})", missing)
    labels = _axis_dict(record, "predicted_preference", required=False)
    if reward is None and labels is None:
        raise RecordError("a pair record needs the model's scores 'reward' and 'reward_b' (or a judge's "
                          f"'predicted_preference'){NOT_SCORED_HINT}", "reward")
    if reward is not None:
        for axis in set(reward) ^ set(reward_b):
            where = "reward_b" if axis in reward else "reward"
            raise RecordError(f"axis {axis!r} is in {'reward' if where == 'reward_b' else 'reward_b'} but not in {where!r}", where)
    points, unscored = {}, []
    for axis, label in judged.items():
        try:
            human = preference.read_label(label)
        except ValueError as exc:
            raise RecordError(f"field 'preference.{axis}': {exc}", f"preference.{axis}") from None
        if reward is not None and axis in reward:
            a, b = _score(reward[axis], f"reward.{axis}"), _score(reward_b[axis], f"reward_b.{axis}")
            model = int(preference.decide([a], [b], options.tie_margin)[0])
            points[axis] = (human, model, "reward", a - b)
        elif labels is not None and axis in labels:
            try:
                model = preference.read_label(labels[axis])
            except ValueError as exc:
                raise RecordError(f"field 'predicted_preference.{axis}': {exc}", f"predicted_preference.{axis}") from None
            points[axis] = (human, model, "predicted_preference", None)
        else:
            unscored.append(axis)
    if not points:
        given = "reward" if reward is not None else "predicted_preference"
        raise RecordError(f"the model's {given!r} scores none of the axes of 'preference' ({', '.join(map(str, judged))})", given)
    return Reading(PAIRS, points, unscored)


OUTCOME_NAMES = {1: "a", -1: "b", 0: "tie"}


# ---------------------------------------------------------------- the items of one task


@dataclass
class TaskItems:
    kind: str
    axis: str
    split: str | None
    dataset: str | None = None
    ids: list[str] = field(default_factory=list)
    x: list[float] = field(default_factory=list)  # MOS, or the human outcome
    y: list[float] = field(default_factory=list)  # score, or the model outcome
    systems: list[str | None] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)  # --by field -> value per item
    decided_by: Counter = field(default_factory=Counter)

    def arrays(self, positions: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.asarray(self.x, float), np.asarray(self.y, float)
        return (x, y) if positions is None else (x[positions], y[positions])


class RewardEvaluator:
    """Scores records one at a time and keeps what the summary needs (a few numbers per item)."""

    def __init__(self, options: RewardOptions):
        self.options = options
        self.tasks: dict[tuple[str, str, str | None], TaskItems] = {}
        self.n_records = 0
        self.n_failed = 0
        self.outside_split: Counter = Counter()
        self.no_judgement = 0
        self.unscored_axes: Counter = Counter()
        self.scored_by_split: Counter = Counter()  # split -> records scored

    def score(self, record: Record) -> Record:
        """The record with `eval` added, an error record, or the record untouched (not scored here)."""
        self.n_records += 1
        if has_error(record):
            self.n_failed += 1
            return record
        try:
            split = record_split(record)
            if self.options.split is not None and split != self.options.split:
                self.outside_split[split_label(split)] += 1
                return record
            if "mos" in record:
                reading = read_mos(record)
            elif "preference" in record:
                reading = read_pair(record, self.options)
            elif "audio_b" not in record and top_level_mos(record):
                reading = read_mos(record)
            else:
                self.no_judgement += 1
                return record
            dataset = record.get("dataset")
            if dataset is not None and (not isinstance(dataset, str) or not dataset):
                raise RecordError(f"field 'dataset' must be a non-empty text, got {dataset!r}", "dataset")
            groups = {name: {axis: _group_value(record, name, axis, self.options) for axis in reading.points}
                      for name in self.options.by}
        except (RecordError, ValueError) as exc:
            self.n_failed += 1
            return with_error(record, STAGE, exc)
        return self._add(record, reading, split, dataset, groups)

    def _add(self, record: Record, reading: Reading, split: str | None, dataset: str | None, groups: dict) -> Record:
        scores = {}
        for axis, point in reading.points.items():
            key = (dataset, reading.kind, axis, split)
            task = self.tasks.get(key)
            if task is None:
                task = self.tasks[key] = TaskItems(reading.kind, axis, split, dataset)
            task.ids.append(str(record["id"]))
            task.x.append(point[0])
            task.y.append(point[1])
            task.systems.append(record.get("system"))
            for name in self.options.by:
                task.groups.setdefault(name, []).append(groups[name][axis])
            if reading.kind == MOS:
                scores[axis] = {"mos": point[0], "reward": point[1], "squared_error": (point[1] - point[0]) ** 2}
            else:
                human, model, decided_by, difference = point
                task.decided_by[decided_by] += 1
                scores[axis] = {"human": OUTCOME_NAMES[human], "model": OUTCOME_NAMES[model], "decided_by": decided_by,
                                "difference": difference,
                                "credit": float(preference.agreement([human], [model])[0])}
        self.scored_by_split[split_label(split)] += 1
        for axis in reading.unscored_axes:
            self.unscored_axes[_task_name(dataset, reading.kind, axis)] += 1
        out = dict(record)
        out["eval"] = {"kind": reading.kind, "scores": scores,
                       **({"unscored_axes": reading.unscored_axes} if reading.unscored_axes else {})}
        return out

    # -- the summary

    def task_keys(self) -> dict[tuple[str, str, str | None], str]:
        """The summary's name of each task: "kind/axis", with " [split]" when several splits are scored."""
        one_split = len({key[3] for key in self.tasks}) <= 1
        return {key: _task_name(key[0], key[1], key[2]) + ("" if one_split else f" [{split_label(key[3])}]")
                for key in self.tasks}

    def summary(self) -> dict[str, Any]:
        keys = self.task_keys()
        return {
            "n_records": self.n_records,
            "n_failed": self.n_failed,
            "split": self.options.split,
            "n_scored_by_split": dict(self.scored_by_split),
            "not_scored": {
                "other_splits": dict(self.outside_split),
                "no_judgement": self.no_judgement,
                "axes_without_model_score": dict(self.unscored_axes),
            },
            "tie_margin": self.options.tie_margin,
            "bootstrap": {
                "n_resamples": self.options.n_resamples,
                "confidence": self.options.confidence,
                "seed": self.options.seed,
                "method": "percentile bootstrap over items (per-system figures: over systems)",
            },
            "tasks": {keys[key]: self._task_summary(task) for key, task in sorted(self.tasks.items(), key=_order)},
        }

    def _task_summary(self, task: TaskItems) -> dict[str, Any]:
        out: dict[str, Any] = {"task": _task_name(task.dataset, task.kind, task.axis), "dataset": task.dataset,
                               "kind": task.kind, "axis": task.axis, "split": task.split, "n": len(task.ids)}
        if task.kind == MOS:
            out.update(self._mos_summary(task, None))
        else:
            out.update(self._pair_summary(task, None))
            out["decided_by"] = dict(task.decided_by)
        if self.options.by:
            out["by"] = {}
            for name in self.options.by:
                values = task.groups[name]
                block = {}
                for value in sorted(set(values), key=_group_order):
                    positions = [i for i, v in enumerate(values) if v == value]
                    summarise = self._mos_summary if task.kind == MOS else self._pair_summary
                    block[value] = {"n": len(positions), **summarise(task, positions, per_system=False)}
                out["by"][name] = block
        return out

    def _bootstrap_options(self) -> dict:
        return {"n_resamples": self.options.n_resamples, "confidence": self.options.confidence, "seed": self.options.seed}

    def _mos_summary(self, task: TaskItems, positions: list[int] | None, per_system: bool = True) -> dict:
        mos, score = task.arrays(positions)
        out: dict[str, Any] = {"metrics": dict(correlation.clip_intervals(mos, score, **self._bootstrap_options()))}
        if not per_system:
            return out
        with_system = [i for i, s in enumerate(task.systems) if s is not None]
        systems = [task.systems[i] for i in with_system]
        out["n_clips_with_system"] = len(with_system)
        out["n_systems"] = len(set(systems))
        if with_system:
            out["metrics_per_system"] = dict(correlation.system_intervals(systems, mos[with_system], score[with_system],
                                                                          **self._bootstrap_options()))
        return out

    def _pair_summary(self, task: TaskItems, positions: list[int] | None, per_system: bool = True) -> dict:
        human, model = task.arrays(positions)
        human, model = human.astype(int), model.astype(int)
        figures = preference.evaluate(human, model)
        credit, decided = preference.agreement(human, model), (human != 0).astype(float)
        values = [figures["accuracy"], figures["decided_accuracy"]]
        intervals = [None, None]
        if self.options.n_resamples > 0 and credit.size:
            with np.errstate(all="ignore"):
                intervals = bootstrap_intervals(_accuracies, (credit, decided), **self._bootstrap_options())
        metrics = {name: {"value": float(v), "low": i.low if i else None, "high": i.high if i else None}
                   for name, v, i in zip(("accuracy", "decided_accuracy"), values, intervals)}
        return {"metrics": metrics, "n_human_ties": figures["n_human_ties"], "n_model_ties": figures["n_model_ties"]}


def _accuracies(credit: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """(accuracy, decided accuracy) over the last axis: (..., n) -> (2, ...)."""
    n_decided = decided.sum(axis=-1)
    return np.stack([credit.mean(axis=-1), (credit * decided).sum(axis=-1) / n_decided])


def _order(item) -> tuple:
    (dataset, kind, axis, split), _ = item
    return (dataset or "", kind != MOS, axis, split_label(split))


def _task_name(dataset: str | None, kind: str, axis: str) -> str:
    return f"{dataset + '/' if dataset else ''}{kind}/{axis}"


def _group_order(value: str) -> tuple:
    """Breakdown values in a reader's order: numbers and bins by their number, "missing" last."""
    if value == MISSING:
        return (2, 0.0, value)
    text = value.lstrip("[").split(",")[0]
    if value.startswith("outside"):
        return (1, math.inf, value)
    try:
        return (0, float(text), value)
    except ValueError:
        return (1, 0.0, value)


# ---------------------------------------------------------------- a file, and two systems


def evaluate(
    records: Callable[[], Iterable[Record]],
    options: RewardOptions,
    *,
    write: Callable[[Record], None] | None = None,
    other: Callable[[], Iterable[Record]] | None = None,
    summary: StreamSummary | None = None,
    name: str = "-",
    other_name: str | None = None,
) -> dict[str, Any]:
    """Score the records (writing each with `write` when given) and summarise; with `other`, a
    second model's records of the same items are scored too and compared pairwise."""
    evaluator = RewardEvaluator(options)
    for record in records():
        scored = evaluator.score(record)
        if summary is not None:
            summary.records_in += 1
            summary.note(scored, new_failure=has_error(scored) and scored["error"].get("stage") == STAGE
                         and not has_error(record))
        if write is not None:
            write(scored)
    result = {"input": name, **evaluator.summary()}
    if other is not None:
        other_evaluator = RewardEvaluator(options)
        for record in other():
            other_evaluator.score(record)
        result["comparison"] = {
            "other": other_name,
            "other_summary": other_evaluator.summary()["tasks"],
            "tasks": compare(evaluator, other_evaluator),
        }
    return result


def compare(a: RewardEvaluator, b: RewardEvaluator) -> dict[str, Any]:
    """Paired bootstrap of model A against model B on the items (ids) both scored, per task:
    per clip (resampling clips) and per system (resampling systems) for MOS, accuracy for pairs.
    The human judgement is A's (both files should hold the same; items where they differ are
    counted in `n_judgement_differs` and left out); an id met more than once in a task of either
    file is left out too (`n_repeated_ids`: which copy pairs with which is unknown)."""
    out: dict[str, Any] = {}
    names = a.task_keys()
    opts = {"n_resamples": a.options.n_resamples, "confidence": a.options.confidence, "seed": a.options.seed}
    for key, task_a in sorted(a.tasks.items(), key=_order):
        name = names[key]
        task_b = b.tasks.get(key)
        if task_b is None:
            out[name] = {"n_paired": 0, "note": "the other model has no items of this task"}
            continue
        # an id met twice in either file (caption --samples' records, say) cannot say which item
        # is which: such items are left out and counted, never paired with the wrong one
        count_a, count_b = Counter(task_a.ids), Counter(task_b.ids)
        position_b = {item: j for j, item in enumerate(task_b.ids)}
        pairs = [(i, position_b[item]) for i, item in enumerate(task_a.ids) if item in position_b]
        repeated = {item for item in count_a.keys() | count_b.keys() if count_a[item] > 1 or count_b[item] > 1}
        pairs = [(i, j) for i, j in pairs if task_a.ids[i] not in repeated]
        differs = {(i, j) for i, j in pairs if task_a.x[i] != task_b.x[j]}
        pairs = [p for p in pairs if p not in differs]
        entry: dict[str, Any] = {"n_paired": len(pairs), "n_judgement_differs": len(differs),
                                 "n_repeated_ids": len(repeated)}
        if pairs:
            rows_a, rows_b = [i for i, _ in pairs], [j for _, j in pairs]
            x, ya = task_a.arrays(rows_a)
            _, yb = task_b.arrays(rows_b)
            if task_a.kind == MOS:
                entry["metrics"] = dict(correlation.clip_comparison(x, ya, yb, **opts))
                systems = [task_a.systems[i] for i in rows_a]
                keep = [k for k, s in enumerate(systems) if s is not None]
                if keep:
                    entry["metrics_per_system"] = dict(correlation.system_comparison(
                        [systems[k] for k in keep], x[keep], ya[keep], yb[keep], **opts))
            else:
                human = x.astype(int)
                credit_a = preference.agreement(human, ya.astype(int))
                credit_b = preference.agreement(human, yb.astype(int))
                decided = (human != 0).astype(float)
                metrics = {}
                for index, metric in enumerate(("accuracy", "decided_accuracy")):
                    def statistic(credit, decided_items, index=index):
                        return _accuracies(credit, decided_items)[index]
                    with np.errstate(all="ignore"):
                        value_a = float(statistic(credit_a, decided))
                        value_b = float(statistic(credit_b, decided))
                        test = paired_difference(statistic, (credit_a, decided), (credit_b, decided), **opts)
                    metrics[metric] = {"a": value_a, "b": value_b, **test}
                entry["metrics"] = metrics
        out[name] = entry
    return out
