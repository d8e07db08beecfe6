"""Reading a record's reference and its answer into the form the metrics take, per task kind.

The answer is read from the structured `prediction` field when the record has one (as `regress`
writes it, with `parse_ok`), else parsed from the free-text `response` with `core.parse`. A
reading that fails is not an error of the record: it is an unparsed answer, counted and scored
as the metric's convention says (wrong for key/tempo/labels, empty for beats/chords, left out of
regression metrics). A reference that cannot be read IS an error: the item cannot be scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from mllm.core.evaluation.tasks import TaskError, structured_value
from mllm.core.parse.chords import find_chords, to_harte
from mllm.core.parse.found import Found
from mllm.core.parse.key import find_key
from mllm.core.parse.labels import LabelSet, find_labels
from mllm.core.parse.numbers import find_number
from mllm.core.parse.tempo import find_tempo
from mllm.core.parse.times import find_times


@dataclass(frozen=True)
class Reading:
    """What was read from a record's answer."""

    value: Any  # in the kind's form (key string, BPM, times, chords, label(s), number) or None
    parse_ok: bool
    read_from: str  # "prediction", "response" or "none"
    matched: str | None = None  # the text that decided the reading
    reason: str | None = None  # why nothing usable was read ("no key found", "several labels", ...)
    label_scores: dict[str, float] | None = None  # tagging: a score per label, when the prediction gave them


# ---------------------------------------------------------------- references


def _as_float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise TaskError(f"{what} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise TaskError(f"{what} must be a number, got {value!r}") from None
    else:
        raise TaskError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(number):
        raise TaskError(f"{what} must be finite, got {value!r}")
    return number


@lru_cache(maxsize=4096)
def _key_string(text: str) -> str | None:
    found = find_key(text)
    return str(found.value) if found else None


def reference_key(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() == "x":
        return "X"
    key = _key_string(value) if isinstance(value, str) else None
    if key is None:
        raise TaskError(f"field 'reference' is not a key: {value!r} (write it like \"A minor\" or \"F# major\")")
    return key


def reference_tempo(value: Any) -> float:
    if isinstance(value, str):
        found = find_tempo(value)
        if found is not None:
            return found.value
    tempo = _as_float(value, "field 'reference' (tempo in BPM)")
    if tempo <= 0:
        raise TaskError(f"field 'reference' (tempo in BPM) must be positive, got {value!r}")
    return tempo


def _times(value: Any, what: str) -> np.ndarray:
    if isinstance(value, str):
        found = find_times(value)
        if found is None:
            raise TaskError(f"{what} holds no times: {value[:80]!r}")
        times = found.value
    elif isinstance(value, Sequence):
        times = [_as_float(v, what) for v in value]
    else:
        raise TaskError(f"{what} must be a list of times in seconds, got {type(value).__name__}")
    return np.unique(np.asarray(times, dtype=float))


def reference_times(value: Any) -> np.ndarray:
    times = _times(value, "field 'reference' (times)")
    if times.size == 0:
        raise TaskError("field 'reference' (times) is empty: there is nothing to score against")
    return times


def _chord_rows(value: Any, what: str) -> list[tuple[float, float, str]]:
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
        start, end = _as_float(row[0], what), _as_float(row[1], what)
        label = to_harte(str(row[2]))
        if label is None:
            raise TaskError(f"{what}: {row[2]!r} is not a chord")
        rows.append((start, end, label))
    return rows


def reference_chords(value: Any) -> list[tuple[float, float, str]]:
    rows = _chord_rows(value, "field 'reference' (chords)")
    if not rows:
        raise TaskError("field 'reference' (chords) is empty")
    return rows


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


def reference_number(value: Any) -> float:
    return _as_float(value, "field 'reference'")


# ---------------------------------------------------------------- answers


def answer_source(record: Mapping[str, Any], name: str, kind: str, read_from: str) -> tuple[str, Any]:
    """Where to read the answer: ("prediction", value), ("response", text) or ("none", None)."""
    prediction = record.get("prediction")
    if read_from in ("auto", "prediction") and prediction is not None:
        if isinstance(prediction, Mapping) and not _parsed(prediction, name):
            return "prediction", None
        return "prediction", structured_value(prediction, name, kind, "prediction", only_field=False)
    if read_from == "prediction":
        return "none", None
    response = record.get("response")
    if response is None:
        return "none", None
    if not isinstance(response, str):
        raise TaskError(f"field 'response' must be text, got {type(response).__name__}")
    return "response", response


def question_text(record: Mapping[str, Any]) -> str | None:
    """The question a record's answer replies to: its `question` (CMI-Bench), else the text of the
    last user turn of its `messages` (instruction records), else None."""
    question = record.get("question")
    if isinstance(question, str):
        return question
    messages = record.get("messages")
    if isinstance(messages, list):
        for turn in reversed(messages):
            if isinstance(turn, Mapping) and turn.get("role") == "user" and isinstance(turn.get("content"), str):
                return turn["content"]
    return None


def _parsed(prediction: Mapping[str, Any], name: str) -> bool:
    """Whether a structured prediction says its value for task `name` was read. `parse_ok` is per
    target ({"arousal": true, "valence": false}, as regress writes it): one unread target does
    not drop the others. A plain `false` (older files) holds for targets without a value only."""
    parse_ok = prediction.get("parse_ok")
    if isinstance(parse_ok, Mapping):
        return parse_ok.get(name) is not False
    if parse_ok is False:
        return prediction.get(name) is not None
    return True


def _from_found(found: Found | None, form, reason: str) -> Reading:
    if found is None:
        return Reading(None, False, "response", None, reason)
    return Reading(form(found.value), True, "response", found.text)


def read_key_answer(source: str, value: Any) -> Reading:
    if source == "response":
        return _from_found(find_key(value), str, "no key found")
    if source == "prediction" and isinstance(value, str) and _key_string(value):
        return Reading(_key_string(value), True, "prediction")
    return Reading(None, False, source, reason="no key in prediction" if source == "prediction" else "no answer")


def read_tempo_answer(source: str, value: Any) -> Reading:
    if source == "response":
        return _from_found(find_tempo(value), float, "no tempo found")
    if source == "prediction" and value is not None:
        try:
            return Reading(reference_tempo(value), True, "prediction")
        except TaskError:
            return Reading(None, False, source, reason="prediction is not a tempo")
    return Reading(None, False, source, reason="no answer")


def read_times_answer(source: str, value: Any) -> Reading:
    if source == "response":
        return _from_found(find_times(value), lambda t: np.unique(np.asarray(t, float)), "no times found")
    if source == "prediction" and value is not None:
        try:
            return Reading(_times(value, "field 'prediction'"), True, "prediction")
        except TaskError:
            return Reading(None, False, source, reason="prediction is not a list of times")
    return Reading(None, False, source, reason="no answer")


def read_chords_answer(source: str, value: Any, duration: float | None) -> Reading:
    if source == "response":
        found = find_chords(value, duration=duration)
        return _from_found(found, list, "no timed chords found")
    if source == "prediction" and value is not None:
        try:
            return Reading(_chord_rows(value, "field 'prediction'"), True, "prediction")
        except TaskError:
            return Reading(None, False, source, reason="prediction is not a list of chords")
    return Reading(None, False, source, reason="no answer")


def read_labels_answer(
    source: str, value: Any, label_set: LabelSet, *, single: bool, matcher=None, threshold: float = 0.5
) -> Reading:
    """Labels of the set named in the answer. For a single-label task exactly one must be named.

    A tagging prediction may be a mapping label -> score: the labels scoring >= `threshold` are
    predicted and the scores are kept (`label_scores`) for the ranking metrics.

    With `matcher` (an EmbeddingMatcher), a single-label free-text answer takes the nearest label
    by text embedding instead (LLark's protocol): every non-empty answer gets a label.
    """
    if source == "response" and single and matcher is not None:
        found = matcher.nearest(value, label_set)
        if found is None:
            return Reading(None, False, source, reason="empty answer")
        return Reading(found.value, True, source, found.text)
    if source == "response":
        found = find_labels(value, label_set)
        labels = [f.value for f in found]
        matched = "; ".join(f.text for f in found) or None
    elif source == "prediction" and isinstance(value, Mapping) and not single:
        # {"piano": 0.92, "drums": 0.10}: scores per label (a tagger's output); the labels are
        # those scoring at least `threshold`, the scores feed ROC-AUC / PR-AUC.
        scores = {}
        for name, score in value.items():
            canonical = label_set.canonical(str(name))
            if canonical is not None:
                scores[canonical] = _as_float(score, f"field 'prediction' (score of {name!r})")
        labels = [label for label, score in scores.items() if score >= threshold]
        return Reading(labels, True, source, label_scores=scores)
    elif source == "prediction" and value is not None:
        raw = [value] if isinstance(value, str) else list(value) if isinstance(value, Sequence) else []
        labels = [c for c in (label_set.canonical(str(v)) for v in raw) if c is not None]
        matched = None
    else:
        return Reading(None, False, source, reason="no answer")
    if single:
        if len(labels) == 1:
            return Reading(labels[0], True, source, matched)
        reason = "no label of the set" if not labels else f"several labels ({', '.join(labels)})"
        return Reading(None, False, source, matched, reason)
    if not labels and source == "response":
        # An empty set is a legitimate multi-label answer only when it was stated structurally.
        return Reading([], False, source, None, "no label of the set")
    return Reading(labels, True, source, matched)


def read_number_answer(source: str, value: Any, scale: tuple[float, float], name: str | None = None, *,
                       question: str | None = None) -> Reading:
    """A number on `scale`; in free text, the number after a mention of `name` (the task) wins, and
    a response that only repeats the `question`'s example scores is no answer (core.parse.numbers)."""
    if source == "response":
        return _from_found(find_number(value, scale, name, question=question), float, "no number found")
    if source == "prediction" and value is not None:
        try:
            return Reading(_as_float(value, "field 'prediction'"), True, "prediction")
        except TaskError:
            return Reading(None, False, source, reason="prediction is not a number")
    return Reading(None, False, source, reason="no answer")
