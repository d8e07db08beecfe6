"""Scoring records by a verifiable reward: the rewards `mllm grpo` trains with (core/train/rewards.py),
read off each record's own answer against its reference.

    reward = Reward.parse("task:1.0,format:0.2", label_sets)
    scored = score_record(record, reward)    # the record + reward {"task": 1.0, "format": 1.0, "total": 1.2}

A record's answer is what eval-mir reads (core.evaluation.kinds.answer_source): its structured
`prediction` when it has one (`mllm regress`), else its `response` text (`mllm caption`). The
reference is its `reference` field, else `answer` (instruction records). An answer that does not
read gets 0 from every component (grpo's rule: the lowest reward), and that is a score, not an
error; a record that cannot be scored at all (no task, no reference, no response nor prediction,
a reference that does not read) raises RecordError naming the field, and becomes an error record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mllm.core.evaluation.kinds import answer_source
from mllm.core.evaluation.tasks import TaskError
from mllm.core.io.errors import Record, RecordError, StreamSummary, map_records
from mllm.core.io.splits import in_split
from mllm.core.train.rewards import COMPONENTS, Judged, Reward

__all__ = ["TOTAL", "score_record", "score_records"]

STAGE = "score"
TOTAL = "total"  # the key of the weighted sum in `reward` (a component cannot be called so)


def score_record(record: Mapping[str, Any], reward: Reward) -> Record:
    """`record` with `reward` = {component: value in [0, 1], ..., "total": weighted sum}."""
    try:
        prepared = reward.prepare(record)
    except TaskError as exc:
        raise RecordError(str(exc), "reference") from None
    kind, context = prepared.kind, prepared.context
    try:
        source, value = answer_source(record, kind, context)
    except TaskError as exc:
        raise RecordError(str(exc), "response") from None
    if source == "none":
        raise RecordError("record has no 'response' (nor 'prediction') to score: run `mllm caption` or "
                          "`mllm regress` first", "response")
    try:
        reading = kind.read_answer(source, value, prepared.reference, context)
        judged = Judged(prepared, value if isinstance(value, str) else "", reading,
                        kind.score(prepared.reference, reading, context))
    except TaskError as exc:
        raise RecordError(f"field {source!r}: {exc}", source) from None
    parts = {name: float(COMPONENTS[name](judged, reward.settings)) for name in reward.weights}
    total = sum(reward.weights[name] * value for name, value in parts.items())
    return {**record, "reward": {**parts, TOTAL: float(total)}}


def score_records(records: Iterable[Record], reward: Reward, *, split: str | None = None,
                  summary: StreamSummary | None = None) -> Iterator[Record]:
    """score_record over a stream: records of other splits (with `split`) and error records pass
    through untouched; a record that cannot be scored comes out as an error record."""

    def process(record: Record) -> Record:
        return score_record(record, reward) if in_split(record, split) else record

    return map_records(records, process, STAGE, summary)
