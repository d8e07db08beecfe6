"""What every task kind's reading shares: the Reading, where a record's answer is, its question.

The answer is read from the structured `prediction` field when the record has one (as `regress`
writes it, with `parse_ok`), else parsed from the free-text `response` with `core.parse`; how
each kind reads it is in core.evaluation.kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mllm.core.evaluation.tasks import TaskError
from mllm.core.parse.found import Found


@dataclass(frozen=True)
class Reading:
    """What was read from a record's answer."""

    value: Any  # in the kind's form (key string, BPM, times, chords, label(s), number) or None
    parse_ok: bool
    read_from: str  # "prediction", "response" or "none"
    matched: str | None = None  # the text that decided the reading
    reason: str | None = None  # why nothing usable was read ("no key found", "several labels", ...)
    label_scores: dict[str, float] | None = None  # tagging: a score per label, when the prediction gave them


def as_float(value: Any, what: str) -> float:
    """A finite number from a number or a numeric string; TaskError naming `what` otherwise."""
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


def from_found(found: Found | None, form: Callable[[Any], Any], reason: str) -> Reading:
    """The Reading of a free-text parse: its value in `form`, or unparsed for `reason`."""
    if found is None:
        return Reading(None, False, "response", None, reason)
    return Reading(form(found.value), True, "response", found.text)


def answer_value(record: Mapping[str, Any], task: str, read_from: str,
                 field_value: Callable[[Mapping[str, Any]], Any]) -> tuple[str, Any]:
    """Where to read the answer: ("prediction", value), ("response", text) or ("none", None).

    `field_value` takes the task's value out of a structured prediction (Kind.field_value)."""
    prediction = record.get("prediction")
    if read_from in ("auto", "prediction") and prediction is not None:
        if isinstance(prediction, Mapping) and not parsed(prediction, task):
            return "prediction", None
        return "prediction", field_value(prediction)
    if read_from == "prediction":
        return "none", None
    response = record.get("response")
    if response is None:
        return "none", None
    if not isinstance(response, str):
        raise TaskError(f"field 'response' must be text, got {type(response).__name__}")
    return "response", response


def parsed(prediction: Mapping[str, Any], task: str) -> bool:
    """Whether a structured prediction says its value for `task` was read. `parse_ok` is per
    target ({"arousal": true, "valence": false}, as regress writes it): one unread target does
    not drop the others. A plain `false` (older files) holds for targets without a value only."""
    parse_ok = prediction.get("parse_ok")
    if isinstance(parse_ok, Mapping):
        return parse_ok.get(task) is not False
    if parse_ok is False:
        return prediction.get(task) is not None
    return True


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
