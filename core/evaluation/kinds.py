"""The task kinds: for each, how its reference is read, how an answer is read, how one item is
scored and how a corpus is summarised, in one object.

    kind, context = KINDS["tempo"], Context("tempo")
    reference = kind.read_reference(120, context)                           # 120.0
    reading = kind.read_answer("response", "About 121 BPM.", reference, context)
    scored = kind.score(reference, reading, context)                        # scores {"acc1": 1.0, "acc2": 1.0}
    summary = kind.summarise([scored.kept, ...], context)                   # metrics over item indices

    kind            reference (in `reference`, else `answer`)         answer read with      per item          corpus
    key             "A minor" / {"key": "A minor"}                    parse.key             weighted_score,   means
                                                                                            accuracy
    tempo           120 / {"tempo_bpm": 120}                         parse.tempo           acc1, acc2        means
    beats           [0.5, 1.0, ...] / "0.5s,1.0s" / {"beats": [...]}  parse.times           f_measure, cmlt,  means
                                                                                            amlt
    downbeats       as beats, {"downbeats": [...]}                    parse.times           as beats          means
    chords          [[0, 2, "C:maj"], ...] / {"chords": [...]}         parse.chords          one score per     duration-weighted
                                                                                            comparison        over the corpus
    classification  "rock" / ["rock"] / {"genre": "rock"}              parse.labels (one)    accuracy          accuracy, macro P/R/F1
    tagging         ["piano", "drums"] / "piano, drums"               parse.labels (a set)  precision,        P/R/F1 micro, macro,
                                                                                            recall, f1        samples; ROC/PR-AUC
    regression      5.2 / "5.2" / {"arousal": 5.2}                     parse.numbers on the  abs_error         r2, rmse, mae, pearson,
                                                                      scale                                   spearman, ccc

Who reads with it: eval-mir scores every record with its kind (core.evaluation.mir);
build-instructions writes an answer only when its kind reads it back to the structured value
(Kind.reads_back), so every instruction record is scorable as written; regress reads a model's
numbers with the regression kind, so it and eval-mir read one response the same way; the rewards
of `mllm grpo` are a kind's per-item score.

A reading that fails is not an error of the record: it is an unparsed answer, counted and scored
as the metric's convention says (wrong for key/tempo/labels, empty for beats, "no chord" for
chords, left out of the regression metrics). A reference that cannot be read IS an error
(TaskError naming the field): the item cannot be scored.

Task names map to kinds through each kind's `task_names` (KIND_OF_TASK); a record may also say
`task_type` itself, and eval-mir takes `--task-type name=kind` for names it does not know.
Adding a kind: a subclass below (task names, field names, the four steps), an entry in KINDS,
and its tests.

Imports: the metric and parser modules built on mir_eval (beats, chords) are imported inside the
kind that uses them, so that each evaluation loads only what its tasks need (mir_eval imports
scipy.stats: about 1 s). Key, tempo, numeric and label evaluations import neither mir_eval nor
scikit-learn nor scipy.stats, and numba only for large regression samples: `mllm eval-mir` on 100
such answers takes about 0.5-0.7 s, process start included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import math

import numpy as np

from mllm.core.evaluation.options import EvalOptions
from mllm.core.evaluation.readings import Reading, answer_value, as_float, from_found, question_text
from mllm.core.evaluation.tasks import TaskError, record_scale
from mllm.core.metrics import key as key_metrics
from mllm.core.metrics import tempo as tempo_metrics
from mllm.core.parse.key import find_key
from mllm.core.parse.labels import LabelSet, find_labels
from mllm.core.parse.numbers import find_number
from mllm.core.parse.tempo import find_tempo
from mllm.core.parse.times import find_times

__all__ = ["Context", "Scored", "Statistics", "Summary", "Kind", "KINDS", "KIND_OF_TASK", "kind_of",
           "item_context", "answer_source", "reference_labels"]

# Fields of a structured prediction that are bookkeeping, never a task's value.
BOOKKEEPING = ("parse_ok", "read_from", "matched", "scale")


@dataclass(frozen=True)
class Context:
    """What reading and scoring one item may need besides its two values."""

    task: str  # the task's name ("arousal", "genre"): the field a structured value is under
    options: EvalOptions = field(default_factory=EvalOptions)
    label_set: LabelSet | None = None  # classification, tagging: the task's labels
    scale: tuple[float, float] | None = None  # regression: the record's scale
    question: str | None = None  # the prompt the answer replies to
    matcher: Callable[[], Any] | None = None  # --match embedding: loads the EmbeddingMatcher


@dataclass
class Scored:
    """One item's scores (written to its record's `eval.scores`) and what the corpus needs of it."""

    scores: dict[str, Any]
    kept: Any


@dataclass
class Statistics:
    """A corpus's metrics as functions of item indices: the value on `arange(size)`, and the
    percentile bootstrap on resampled indices (one shared bootstrap for all of them)."""

    metrics: dict[str, Callable[[np.ndarray], Any]]
    size: int
    proportions: frozenset[str] = frozenset()  # metrics that also get a Clopper-Pearson interval
    combined: Callable[[np.ndarray], np.ndarray] | None = None  # all metrics at once, in order


@dataclass
class Summary:
    """A task's metric blocks ("metrics", and protocols beside it) and its notes for the summary."""

    blocks: dict[str, Statistics]
    notes: dict[str, Any] = field(default_factory=dict)


def _mean_of(values: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    array = np.asarray(values, dtype=float)
    return lambda index: array[index].mean(axis=-1)


def _structured(source: str, value: Any, read: Callable[[Any], Any], reason: str) -> Reading:
    """A structured prediction read with `read` (TaskError: unparsed for `reason`); "no answer"
    for a record without one."""
    if source == "prediction" and value is not None:
        try:
            return Reading(read(value), True, "prediction")
        except TaskError:
            return Reading(None, False, source, reason=reason)
    return Reading(None, False, source, reason="no answer")


class Kind:
    """One task kind. Subclasses set the names and implement the four steps."""

    name: str = ""
    task_names: tuple[str, ...] = ()  # task names that are this kind ("bpm" is a tempo task)
    fields: tuple[str, ...] = ()  # field names a structured reference/prediction may use
    labelled = False  # reading needs the task's label set (Context.label_set)
    scaled = False  # reading needs the record's numeric scale (Context.scale)
    reward_metric = ""  # the per-item score that is the item's reward (Kind.reward)

    def field_value(self, value: Any, context: Context, field_name: str, *, only_field: bool = True) -> Any:
        """The task's value out of a reference/prediction that may be a dict like `answer`.

        {"key": "A minor"} -> "A minor": the field named after the task or one of the kind's
        `fields`. With `only_field` (references: an instruction record's `answer` holds its own
        task's answer) the only field besides bookkeeping ones is taken too; predictions must name
        the field (`{"energy": 9}` is no tempo). Any non-dict value is returned as it is.
        """
        if not isinstance(value, Mapping):
            return value
        for candidate in (context.task, *self.fields):
            if candidate in value:
                return value[candidate]
        payload = {k: v for k, v in value.items() if k not in BOOKKEEPING}
        if only_field and len(payload) == 1:
            return next(iter(payload.values()))
        raise TaskError(
            f"field {field_name!r} has no value for task {context.task!r}: expected one of "
            f"{[context.task, *self.fields]}, found {sorted(value)}"
        )

    def read_reference(self, value: Any, context: Context) -> Any:
        """The reference in the kind's form; TaskError naming the field when it cannot be used."""
        raise NotImplementedError

    def read_answer(self, source: str, value: Any, reference: Any, context: Context) -> Reading:
        """The answer read from `source` ("prediction": a structured value, "response": free
        text, "none") in the kind's form; never raises for an unreadable answer."""
        raise NotImplementedError

    def score(self, reference: Any, reading: Reading, context: Context) -> Scored:
        """The item's per-item scores (an unread answer scores as the metric's convention says)."""
        raise NotImplementedError

    def summarise(self, kept: list, context: Context) -> Summary:
        """The corpus metrics of the items' `kept` values (context: the task's first item's)."""
        raise NotImplementedError

    def reward(self, scored: Scored, context: Context) -> float:
        """The item's score as one number in [0, 1], 1 for a right answer (a GRPO reward: `mllm
        grpo` optimises what eval-mir reports). Default: the per-item score `reward_metric`."""
        if not self.reward_metric:
            raise NotImplementedError(f"task kind {self.name!r} defines no reward (set reward_metric or reward())")
        value = float(scored.scores.get(self.reward_metric, 0.0))
        return value if math.isfinite(value) else 0.0

    def pairable(self, kept: Any) -> bool:
        """Whether an item enters a paired comparison of two systems (regression: answered)."""
        return True

    def same(self, reference: Any, value: Any) -> bool:
        return value == reference

    def reads_back(self, text: str, answer: Any, context: Context) -> bool:
        """True when `text` is read as exactly the structured `answer` (build-instructions' check)."""
        reference = self.read_reference(self.field_value(answer, context, "answer"), context)
        reading = self.read_answer("response", text, reference, context)
        return reading.parse_ok and self.same(reference, reading.value)


class MeanKind(Kind):
    """A kind whose corpus metrics are the means of its per-item scores."""

    proportions: frozenset[str] = frozenset()

    def summarise(self, kept: list[dict[str, float]], context: Context) -> Summary:
        names = list(kept[0]) if kept else []
        metrics = {name: _mean_of([scores[name] for scores in kept]) for name in names}
        return Summary({"metrics": Statistics(metrics, len(kept), self.proportions & frozenset(names))})


# ---------------------------------------------------------------- key


@lru_cache(maxsize=4096)
def _key_string(text: str) -> str | None:
    found = find_key(text)
    return str(found.value) if found else None


class KeyKind(MeanKind):
    """Reward: the MIREX weighted score (1 same key, 0.5 a fifth, 0.3 relative, 0.2 parallel)."""

    name = "key"
    task_names = ("key",)
    fields = ("key",)
    proportions = frozenset({"accuracy"})
    reward_metric = "weighted_score"

    def read_reference(self, value, context):
        if isinstance(value, str) and value.strip().lower() == "x":
            return "X"
        key = _key_string(value) if isinstance(value, str) else None
        if key is None:
            raise TaskError(f"field 'reference' is not a key: {value!r} (write it like \"A minor\" or \"F# major\")")
        return key

    def read_answer(self, source, value, reference, context):
        if source == "response":
            return from_found(find_key(value), str, "no key found")
        if source == "prediction" and isinstance(value, str) and _key_string(value):
            return Reading(_key_string(value), True, "prediction")
        return Reading(None, False, source, reason="no key in prediction" if source == "prediction" else "no answer")

    def score(self, reference, reading, context):
        scores = {
            "weighted_score": key_metrics.weighted_score(reference, reading.value, context.options.descending_fifths),
            "accuracy": key_metrics.exact(reference, reading.value),
        }
        return Scored(scores, scores)


# ---------------------------------------------------------------- tempo


class TempoKind(MeanKind):
    """Reward graded by tolerance: 1 within 4 % (Acc1), 0.5 off by a factor 2 or 3 (Acc2 only), else 0."""

    name = "tempo"
    task_names = ("tempo", "bpm")
    fields = ("tempo_bpm", "tempo", "bpm")
    proportions = frozenset({"acc1", "acc2"})

    def reward(self, scored, context):
        return 1.0 if scored.scores["acc1"] else 0.5 if scored.scores["acc2"] else 0.0

    def read_reference(self, value, context):
        if isinstance(value, str):
            found = find_tempo(value)
            if found is not None:
                return found.value
        tempo = as_float(value, "field 'reference' (tempo in BPM)")
        if tempo <= 0:
            raise TaskError(f"field 'reference' (tempo in BPM) must be positive, got {value!r}")
        return tempo

    def read_answer(self, source, value, reference, context):
        if source == "response":
            return from_found(find_tempo(value), float, "no tempo found")
        return _structured(source, value, lambda v: self.read_reference(v, context), "prediction is not a tempo")

    def score(self, reference, reading, context):
        tolerance = context.options.tempo_tolerance
        scores = {
            "acc1": tempo_metrics.acc1(reference, reading.value, tolerance),
            "acc2": tempo_metrics.acc2(reference, reading.value, tolerance),
        }
        return Scored(scores, scores)


# ---------------------------------------------------------------- beats, downbeats


def _times(value: Any, what: str) -> np.ndarray:
    if isinstance(value, str):
        found = find_times(value)
        if found is None:
            raise TaskError(f"{what} holds no times: {value[:80]!r}")
        times = found.value
    elif isinstance(value, Sequence):
        times = [as_float(v, what) for v in value]
    else:
        raise TaskError(f"{what} must be a list of times in seconds, got {type(value).__name__}")
    return np.unique(np.asarray(times, dtype=float))


class TimesKind(MeanKind):
    """Event times in seconds (beats, downbeats), scored with mir_eval's beat metrics. Reward: F-measure."""

    reward_metric = "f_measure"

    def __init__(self, name: str, task_names: tuple[str, ...], fields: tuple[str, ...]):
        self.name, self.task_names, self.fields = name, task_names, fields

    def read_reference(self, value, context):
        times = _times(value, "field 'reference' (times)")
        if times.size == 0:
            raise TaskError("field 'reference' (times) is empty: there is nothing to score against")
        return times

    def read_answer(self, source, value, reference, context):
        if source == "response":
            return from_found(find_times(value), lambda t: np.unique(np.asarray(t, float)), "no times found")
        return _structured(source, value, lambda v: _times(v, "field 'prediction'"), "prediction is not a list of times")

    def score(self, reference, reading, context):
        from mllm.core.metrics import beats as beat_metrics  # (mir_eval)

        estimate = reading.value if reading.parse_ok else np.zeros(0)  # unread: an empty estimate
        scores = dict(beat_metrics.evaluate(reference, estimate, trim_before=context.options.beat_trim))
        return Scored(scores, scores)

    def same(self, reference, value):
        return np.array_equal(reference, value)


# ---------------------------------------------------------------- chords


def _chord_rows(value: Any, what: str) -> list[tuple[float, float, str]]:
    from mllm.core.parse.chords import find_chords, to_harte  # (mir_eval)

    if isinstance(value, str):
        found = find_chords(value)
        if found is None:
            raise TaskError(f"{what} holds no timed chords: {value[:80]!r}")
        return list(found.value)
    rows = []
    if not isinstance(value, Sequence):
        raise TaskError(f"{what} must be a list of [start, end, chord], got {type(value).__name__}")
    for row in value:
        if isinstance(row, Mapping):
            row = (row.get("start"), row.get("end"), row.get("chord") or row.get("label"))
        if not isinstance(row, Sequence) or len(row) != 3:
            raise TaskError(f"{what}: each chord must be [start, end, chord], got {row!r}")
        start, end = as_float(row[0], what), as_float(row[1], what)
        label = to_harte(str(row[2]))
        if label is None:
            raise TaskError(f"{what}: {row[2]!r} is not a chord")
        rows.append((start, end, label))
    return rows


class ChordsKind(Kind):
    """Timed chords; per item one score per mir_eval comparison, the corpus duration-weighted.
    Reward: the item's majmin score (else its first comparison's)."""

    name = "chords"
    task_names = ("chords", "chord")
    fields = ("chords",)

    def read_reference(self, value, context):
        rows = _chord_rows(value, "field 'reference' (chords)")
        if not rows:
            raise TaskError("field 'reference' (chords) is empty")
        return rows

    def read_answer(self, source, value, reference, context):
        if source == "response":
            # A list of chord starts ends at the reference's end, as the excerpt does.
            from mllm.core.parse.chords import find_chords  # (mir_eval)

            duration = max(row[1] for row in reference)
            return from_found(find_chords(value, duration=duration), list, "no timed chords found")
        return _structured(source, value, lambda v: _chord_rows(v, "field 'prediction'"),
                           "prediction is not a list of chords")

    def score(self, reference, reading, context):
        from mllm.core.metrics import chords as chord_metrics  # (mir_eval)

        start, end = min(row[0] for row in reference), max(row[1] for row in reference)
        # An answer with no readable chords counts as "no chord" over the whole excerpt.
        estimate = reading.value if reading.parse_ok and reading.value else [(start, end, "N")]
        per_comparison = chord_metrics.evaluate(
            np.array([[r[0], r[1]] for r in reference]), [r[2] for r in reference],
            np.array([[r[0], r[1]] for r in estimate]), [r[2] for r in estimate],
            comparisons=context.options.chord_comparisons,
        )
        scores = {comparison: score for comparison, (score, _) in per_comparison.items()}
        durations = {comparison: duration for comparison, (_, duration) in per_comparison.items()}
        return Scored({**scores, "duration": durations}, (scores, durations))

    def summarise(self, kept, context):
        metrics = {}
        for comparison in (kept[0][0] if kept else {}):
            score = np.nan_to_num(np.asarray([scores[comparison] for scores, _ in kept], float))
            duration = np.asarray([durations[comparison] for _, durations in kept], float)
            weighted = score * duration

            def statistic(index, weighted=weighted, duration=duration):
                total = duration[index].sum(axis=-1)
                return np.where(total > 0, weighted[index].sum(axis=-1) / np.where(total > 0, total, 1), np.nan)

            metrics[comparison] = statistic
        return Summary({"metrics": Statistics(metrics, len(kept))})

    def reward(self, scored, context):
        comparisons = [c for c in scored.scores if c != "duration"]
        value = scored.scores["majmin" if "majmin" in comparisons else comparisons[0]] if comparisons else 0.0
        return float(value) if value is not None and math.isfinite(value) else 0.0

    def same(self, reference, value):
        return [tuple(row) for row in value] == [tuple(row) for row in reference]


# ---------------------------------------------------------------- labels


def reference_labels(value: Any, label_set: LabelSet | None) -> list[str]:
    """Reference labels, canonical names of the label set when one is given."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [f"{value:g}"]  # a numeric label (a meter of 4)
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, Sequence):
        items = [str(v).strip() for v in value]
    else:
        raise TaskError(f"field 'reference' must be a label or a list of labels, got {type(value).__name__}")
    items = [item for item in items if item]
    if label_set is None:
        return items
    labels = []
    for item in items:
        canonical = label_set.canonical(item)
        if canonical is None:
            raise TaskError(f"field 'reference': {item!r} is not in the task's label set")
        labels.append(canonical)
    return labels


class LabelKind(Kind):
    labelled = True

    @staticmethod
    def label_set(context: Context) -> LabelSet:
        if context.label_set is None:
            raise TaskError(f"task {context.task!r} has no label set: give --labels {context.task}=a,b,c")
        return context.label_set

    @staticmethod
    def _named(source: str, value: Any, label_set: LabelSet) -> tuple[list[str], str | None]:
        """Labels of the set an answer names, in reading order, and the text that named them."""
        if source == "response":
            found = find_labels(value, label_set)
            return [f.value for f in found], "; ".join(f.text for f in found) or None
        raw = [value] if isinstance(value, str) else list(value) if isinstance(value, Sequence) else []
        return [c for c in (label_set.canonical(str(v)) for v in raw) if c is not None], None


class ClassificationKind(LabelKind):
    """One label of a set per item. With --match embedding a free-text answer takes the nearest
    label by text embedding instead (LLark's protocol): every non-empty answer gets a label."""

    name = "classification"
    task_names = ("classification", "genre", "instrument", "mood", "pitch", "technique", "meter")
    fields = ("label",)
    reward_metric = "accuracy"  # 1 for the reference label, else 0

    def read_reference(self, value, context):
        labels = reference_labels(value, self.label_set(context))
        if len(labels) != 1:
            raise TaskError(f"field 'reference' must hold one label for a classification task, got {labels}")
        return labels[0]

    def read_answer(self, source, value, reference, context):
        label_set = self.label_set(context)
        if source == "response" and context.options.match == "embedding" and context.matcher is not None:
            found = context.matcher().nearest(value, label_set)
            if found is None:
                return Reading(None, False, source, reason="empty answer")
            return Reading(found.value, True, source, found.text)
        if source not in ("response", "prediction") or value is None:
            return Reading(None, False, source, reason="no answer")
        labels, matched = self._named(source, value, label_set)
        if len(labels) == 1:  # exactly one label of the set must be named
            return Reading(labels[0], True, source, matched)
        reason = "no label of the set" if not labels else f"several labels ({', '.join(labels)})"
        return Reading(None, False, source, matched, reason)

    def score(self, reference, reading, context):
        return Scored({"accuracy": float(reading.value == reference)}, (reference, reading.value))

    def summarise(self, kept, context):
        # Macro averages over the declared label set (--labels, else every reference label seen),
        # as sklearn's precision_recall_fscore_support(labels=...) computes them; vectorised over
        # resamples in core.metrics.classification.
        from mllm.core.metrics import classification as class_metrics

        references = [reference for reference, _ in kept]
        estimates = [estimate for _, estimate in kept]
        labels = sorted(context.label_set.labels if context.label_set else set(references))
        metrics = class_metrics.single_label_statistics(references, estimates, labels)
        combined = class_metrics.single_label_metrics_over_items(references, estimates, labels)
        statistics = Statistics({name: metrics[name] for name in class_metrics.SINGLE_LABEL_METRICS}, len(kept),
                                frozenset({"accuracy"}), combined)
        return Summary({"metrics": statistics}, {"labels": labels})


class TaggingKind(LabelKind):
    """A set of labels per item. A prediction may give a score per label ({"piano": 0.92,
    "drums": 0.1}, a tagger's output, under the task's field or alone): the labels scoring at
    least --tag-threshold are predicted and the scores give the ranking metrics; keys that are
    no label of the set are ignored."""

    name = "tagging"
    task_names = ("tagging", "tags", "instruments", "moods", "genres")
    fields = ("labels", "tags")
    reward_metric = "f1"  # of the item's labels

    def field_value(self, value, context, field_name, *, only_field=True):
        try:
            return super().field_value(value, context, field_name, only_field=only_field)
        except TaskError:
            # A bare score per label is that task's value: every value a number, at least one key
            # a label of the set (keys that are none are ignored, as under the task's field).
            payload = {k: v for k, v in value.items() if k not in BOOKKEEPING}
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in payload.values())
            if payload and numbers and context.label_set is not None \
                    and any(context.label_set.canonical(str(k)) for k in payload):
                return payload
            raise

    def read_reference(self, value, context):
        return reference_labels(value, self.label_set(context))

    def read_answer(self, source, value, reference, context):
        label_set = self.label_set(context)
        if source == "prediction" and isinstance(value, Mapping):
            scores = {}
            for name, score in value.items():
                canonical = label_set.canonical(str(name))
                if canonical is not None:
                    scores[canonical] = as_float(score, f"field 'prediction' (score of {name!r})")
            labels = [label for label, score in scores.items() if score >= context.options.tag_threshold]
            return Reading(labels, True, source, label_scores=scores)
        if source not in ("response", "prediction") or value is None:
            return Reading(None, False, source, reason="no answer")
        labels, matched = self._named(source, value, label_set)
        if not labels and source == "response":
            # An empty set is a legitimate answer only when it was stated structurally.
            return Reading([], False, source, None, "no label of the set")
        return Reading(labels, True, source, matched)

    def score(self, reference, reading, context):
        predicted = reading.value or []
        hits = len(set(reference) & set(predicted))
        precision = hits / len(predicted) if predicted else 0.0
        recall = hits / len(reference) if reference else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return Scored({"precision": precision, "recall": recall, "f1": f1}, (reference, predicted, reading.label_scores))

    def summarise(self, kept, context):
        from mllm.core.metrics import classification as class_metrics

        n = len(kept)
        # Columns: the label set (so a predicted label no reference holds is a false positive).
        declared = context.label_set.labels if context.label_set else ()
        label_list = sorted(set(declared) | {label for references, _, _ in kept for label in references})
        column = {label: j for j, label in enumerate(label_list)}
        y_true = np.zeros((n, len(label_list)), dtype=int)
        y_pred = np.zeros((n, len(label_list)), dtype=int)
        for i, (references, predicted, _) in enumerate(kept):
            y_true[i, [column[label] for label in references]] = 1
            y_pred[i, [column[label] for label in predicted if label in column]] = 1
        # Ranking metrics from scores only when every item came with scores (a label it did not
        # score counts as 0); otherwise the *_binary AUCs on the 0/1 answers.
        notes: dict[str, Any] = {}
        y_score = None
        if n and all(scores is not None for _, _, scores in kept):
            y_score = np.zeros((n, len(label_list)))
            for i, (_, _, scores) in enumerate(kept):
                for label, score in scores.items():
                    y_score[i, column[label]] = score
            notes["ranking"] = "from the predicted scores"
        # Vectorised over resamples: the report's numbers on each resample without recomputing
        # the report per resample and metric.
        metrics = class_metrics.multilabel_statistics(y_true, y_pred, y_score, labels=label_list)
        combined = None
        if list(metrics) == list(class_metrics.multilabel_metric_names(y_score is not None)):
            combined = class_metrics.multilabel_metrics_over_items(y_true, y_pred, y_score, labels=label_list)
        notes["labels"] = label_list
        return Summary({"metrics": Statistics(metrics, n, combined=combined)}, notes)

    def same(self, reference, value):
        return sorted(value) == sorted(reference)


# ---------------------------------------------------------------- regression


class RegressionKind(Kind):
    """A number on a declared scale. The metrics take the items answered with a number (parsed
    only, never a guess for the others); beside them, CMI-Bench's protocol (unparsed = the mean
    of the parsed) in its own block, so published tables can be compared."""

    name = "regression"
    task_names = ("regression", "arousal", "valence", "energy", "brightness")
    fields = ("value",)
    scaled = True

    def read_reference(self, value, context):
        truth = as_float(value, "field 'reference'")
        scale, options = context.scale, context.options
        if scale is not None and context.task not in options.standardize and not scale[0] <= truth <= scale[1]:
            raise TaskError(f"field {options.reference_field!r}: reference {truth:g} is outside the scale "
                            f"{scale[0]:g}-{scale[1]:g} of task {context.task!r} (give the right one with --scale, "
                            f"or a 'scale' field)")
        return truth

    def read_answer(self, source, value, reference, context):
        """In free text, the number after a mention of the task's name wins, and a response that
        only repeats the question's example scores is no answer (core.parse.numbers)."""
        if source == "response":
            found = find_number(value, context.scale, context.task, question=context.question)
            return from_found(found, float, "no number found")
        return _structured(source, value, lambda v: as_float(v, "field 'prediction'"), "prediction is not a number")

    def score(self, reference, reading, context):
        scale, options = context.scale, context.options
        estimate, clipped, scores = float("nan"), False, {}
        if reading.parse_ok:
            estimate = reading.value
            if options.clip and not scale[0] <= estimate <= scale[1]:
                estimate = min(max(estimate, scale[0]), scale[1])
                clipped = True
                scores["clipped_to"] = estimate
            if context.task not in options.standardize:
                scores["abs_error"] = abs(estimate - reference)
        return Scored(scores, (reference, estimate, clipped))

    def reward(self, scored, context):
        """Closeness on the declared scale, 1 - |y - ŷ| / (high - low) (0 unread; the clipped
        estimate); `mllm grpo --regression-shape` may sharpen it."""
        reference, estimate, _ = scored.kept
        if not np.isfinite(estimate):
            return 0.0
        low, high = context.scale
        return float(max(0.0, 1.0 - abs(estimate - reference) / (high - low)))

    def pairable(self, kept):
        return bool(np.isfinite(kept[1]))

    def arrays(self, kept: list, context: Context, notes: dict[str, Any], impute: bool = False):
        """(y_true, y_pred) of the items answered with a number; predictions z-scored when asked.

        `impute` gives CMI-Bench's protocol instead: every item, an unparsed prediction counted as
        the mean of the parsed ones (its scorer "counts an unparseable answer as the mean"); with
        no parsed item at all there is nothing to take a mean of, and no item is kept."""
        y_true = np.asarray([truth for truth, _, _ in kept], float)
        y_pred = np.asarray([estimate for _, estimate, _ in kept], float)
        keep = np.isfinite(y_pred)
        if impute and keep.any():
            y_pred = np.where(keep, y_pred, y_pred[keep].mean())
        else:
            y_true, y_pred = y_true[keep], y_pred[keep]
        if context.task in context.options.standardize and y_pred.size > 1:
            std = y_pred.std()
            y_pred = (y_pred - y_pred.mean()) / std if std > 0 else y_pred - y_pred.mean()
            notes["prediction_transform"] = "z-score over the parsed predictions (references are z-scores)"
        return y_true, y_pred

    def summarise(self, kept, context):
        from mllm.core.metrics import regression as regression_metrics

        notes: dict[str, Any] = {
            "n_scored": sum(1 for _, estimate, _ in kept if np.isfinite(estimate)),
            "n_clipped": sum(1 for _, _, clipped in kept if clipped),
            "scale": list(context.scale) if context.scale else None,
        }
        blocks = {}
        for block, impute in (("metrics", False), ("metrics_unparsed_as_mean", True)):
            y_true, y_pred = self.arrays(kept, context, notes, impute=impute)
            # One statistic for all six metrics: the intervals of six bootstraps with one seed,
            # about 3 x faster (regression.metrics_over_items).
            blocks[block] = Statistics(regression_metrics.statistics_over_items(y_true, y_pred), int(y_true.size),
                                       combined=regression_metrics.metrics_over_items(y_true, y_pred))
        return Summary(blocks, notes)


# ---------------------------------------------------------------- the registry

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    KeyKind(),
    TempoKind(),
    TimesKind("beats", ("beats", "beat"), ("beats", "beat_times", "times")),
    TimesKind("downbeats", ("downbeats", "downbeat"), ("downbeats", "downbeat_times", "times")),
    ChordsKind(),
    ClassificationKind(),
    TaggingKind(),
    RegressionKind(),
)}

KIND_OF_TASK: dict[str, str] = {task: kind.name for kind in KINDS.values() for task in kind.task_names}


def kind_of(record: Mapping[str, Any], overrides: Mapping[str, str]) -> tuple[str, Kind]:
    """(task name, kind) of a record; raises TaskError naming the field when it cannot tell."""
    name = record.get("task")
    if not isinstance(name, str) or not name:
        raise TaskError("record has no 'task' field (say which task it is, e.g. \"task\": \"key\")")
    kind = overrides.get(name) or record.get("task_type") or KIND_OF_TASK.get(name.lower())
    if kind is None:
        raise TaskError(
            f"unknown task {name!r} in field 'task': give its kind with --task-type {name}=KIND "
            f"or a 'task_type' field (kinds: {', '.join(KINDS)})"
        )
    if kind not in KINDS:
        raise TaskError(f"unknown task kind {kind!r} for task {name!r} (kinds: {', '.join(KINDS)})")
    return name, KINDS[kind]


def item_context(record: Mapping[str, Any], name: str, kind: Kind, options: EvalOptions,
                 label_sets: Mapping[str, LabelSet], matcher: Callable[[], Any] | None = None) -> Context:
    """The Context of one record: its task's label set (label kinds; TaskError when there is none),
    its scale (numeric kinds), the question its answer replies to."""
    label_set = None
    if kind.labelled:
        label_set = label_sets.get(name)
        if label_set is None:
            raise TaskError(f"task {name!r} has no label set: give --labels {name}=a,b,c")
    scale = record_scale(record, name, options.scale) if kind.scaled else None
    return Context(name, options, label_set=label_set, scale=scale, question=question_text(record), matcher=matcher)


def answer_source(record: Mapping[str, Any], kind: Kind, context: Context) -> tuple[str, Any]:
    """Where to read a record's answer: ("prediction", value), ("response", text) or ("none", None)."""
    return answer_value(record, context.task, context.options.read_from,
                        lambda prediction: kind.field_value(prediction, context, "prediction", only_field=False))
