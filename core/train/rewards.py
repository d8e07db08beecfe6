"""Verifiable rewards for `mllm grpo`: a weighted sum of small components, each a function of one
completion read against its record's reference.

    reward = Reward.parse("task:1.0,format:0.2", label_sets)
    item = reward.prepare(record)                     # once per prompt (TaskError: an error record)
    total, parts = reward(item, "The key is A minor.")    # 1.2, {"task": 1.0, "format": 1.0}

Components (each in [0, 1]; an answer that cannot be read gets 0 from every one, the lowest reward):

    task    the per-item score of the record's task, from its kind (core.evaluation.kinds,
            Kind.reward), so GRPO optimises what eval-mir reports:
              key             MIREX weighted score: 1 same key, 0.5 a fifth, 0.3 relative, 0.2 parallel
              tempo           1 within 4 % (Acc1), 0.5 off by a factor 2 or 3 (Acc2 only), else 0
              beats/downbeats F-measure (70 ms)
              chords          the item's majmin score
              classification  1 for the reference label, else 0
              tagging         F1 of the item's labels
              regression      shaped closeness c = 1 - |y - ŷ| / (high - low) on the declared scale
                              (--regression-shape, below)
    format  1 when the answer reads as an answer of its task's kind (eval-mir's parse_ok), else 0

Regression shapes (c as above): `linear` c; `gaussian` exp(-(1 - c)^2 / (2 * 0.1^2)), i.e. a
Gaussian of the error with sigma = 10 % of the scale: 0.61 at 10 % off, 0.14 at 20 %, so answers
near the target are told apart where the linear shape gives a group spread of a few hundredths.

Adding a component: one function `(Judged, RewardSettings) -> float` and its name in COMPONENTS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mllm.core.evaluation.kinds import Context, Kind, Scored, answer_source, item_context, kind_of
from mllm.core.evaluation.options import EvalOptions
from mllm.core.evaluation.readings import Reading
from mllm.core.evaluation.tasks import TaskError
from mllm.core.parse.labels import LabelSet

__all__ = ["COMPONENTS", "REGRESSION_SHAPES", "Prepared", "Judged", "RewardSettings", "Reward", "parse_components"]

GAUSSIAN_SIGMA = 0.1  # of the scale's width

REGRESSION_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda closeness: closeness,
    "gaussian": lambda closeness: math.exp(-((1.0 - closeness) ** 2) / (2 * GAUSSIAN_SIGMA ** 2)),
}


@dataclass(frozen=True)
class Prepared:
    """One prompt's record, ready to judge completions: its kind, context and reference."""

    record_id: str
    kind: Kind
    context: Context
    reference: Any


@dataclass(frozen=True)
class Judged:
    """One completion read and scored against its prompt's reference."""

    prepared: Prepared
    text: str  # the completion
    reading: Reading
    scored: Scored


@dataclass(frozen=True)
class RewardSettings:
    regression_shape: str = "linear"

    def __post_init__(self):
        if self.regression_shape not in REGRESSION_SHAPES:
            raise ValueError(f"--regression-shape must be one of {', '.join(REGRESSION_SHAPES)}, "
                             f"got {self.regression_shape!r}")


def task_reward(judged: Judged, settings: RewardSettings) -> float:
    if not judged.reading.parse_ok:
        return 0.0
    kind, context = judged.prepared.kind, judged.prepared.context
    value = kind.reward(judged.scored, context)
    if kind.scaled:
        value = REGRESSION_SHAPES[settings.regression_shape](value)
    return value


def format_reward(judged: Judged, settings: RewardSettings) -> float:
    return 1.0 if judged.reading.parse_ok else 0.0


COMPONENTS: dict[str, Callable[[Judged, RewardSettings], float]] = {
    "task": task_reward,
    "format": format_reward,
}


def parse_components(text: str) -> dict[str, float]:
    """ "task:1.0,format:0.2" -> {"task": 1.0, "format": 0.2}; a bare name weighs 1. ValueError
    naming --reward for an unknown component or a weight that is not a finite number."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight = part.partition(":")
        name = name.strip()
        if name not in COMPONENTS:
            raise ValueError(f"--reward: unknown component {name!r} (components: {', '.join(COMPONENTS)})")
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"--reward: the weight of {name!r} must be a number, got {weight!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"--reward: the weight of {name!r} must be finite, got {weight!r}")
        weights[name] = value
    if not weights:
        raise ValueError("--reward names no component (e.g. --reward task:1.0,format:0.2)")
    return weights


@dataclass
class Reward:
    """The weighted reward of completions; `prepare` each prompt's record once."""

    weights: Mapping[str, float]
    label_sets: Mapping[str, LabelSet] = field(default_factory=dict)
    options: EvalOptions = field(default_factory=EvalOptions)
    settings: RewardSettings = field(default_factory=RewardSettings)

    @classmethod
    def parse(cls, text: str, label_sets: Mapping[str, LabelSet] | None = None, **kwargs) -> Reward:
        return cls(parse_components(text), dict(label_sets or {}), **kwargs)

    def prepare(self, record: Mapping[str, Any]) -> Prepared:
        """The record's kind, context and reference; TaskError naming the field when it cannot be
        scored (no task, no reference, a reference off its scale): such a prompt is not trained on."""
        name, kind = kind_of(record, self.options.task_types)
        context = item_context(record, name, kind, self.options, self.label_sets)
        if "reference" in record:
            value = record["reference"]
        elif "answer" in record:
            value = record["answer"]
        else:
            raise TaskError("record has no 'reference' (nor 'answer') field to reward against")
        reference = kind.read_reference(kind.field_value(value, context, "answer"), context)
        return Prepared(str(record.get("id")), kind, context, reference)

    def prepare_all(self, records: Sequence[Mapping[str, Any]], what: str = "records") -> list[Prepared]:
        """`prepare` of every record; one ValueError naming the first few that cannot be scored."""
        prepared, failed = [], []
        for record in records:
            try:
                prepared.append(self.prepare(record))
            except (TaskError, ValueError) as exc:
                failed.append(f"{record.get('id')!r}: {exc}")
        if failed:
            raise ValueError(f"{len(failed)} {what} cannot be scored, e.g. {'; '.join(failed[:3])}")
        return prepared

    def judge(self, prepared: Prepared, completion: str) -> Judged:
        source, value = answer_source({"response": completion}, prepared.kind, prepared.context)
        reading = prepared.kind.read_answer(source, value, prepared.reference, prepared.context)
        return Judged(prepared, completion, reading, prepared.kind.score(prepared.reference, reading, prepared.context))

    def rate(self, prepared: Prepared, completion: str) -> tuple[float, dict[str, float], Judged]:
        """(weighted total, each component's value, the judged completion)."""
        judged = self.judge(prepared, completion)
        parts = {name: COMPONENTS[name](judged, self.settings) for name in self.weights}
        return sum(self.weights[name] * value for name, value in parts.items()), parts, judged

    def __call__(self, prepared: Prepared, completion: str) -> tuple[float, dict[str, float]]:
        """(weighted total, each component's value) of one completion."""
        total, parts, _ = self.rate(prepared, completion)
        return total, parts
