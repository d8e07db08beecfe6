"""Scoring records by a trained reward model (`mllm train-reward`): `reward` = {axis: score}.

    scorer = ModelScorer.load("runs/rm")
    for record in score_records(records, scorer, split="test"):
        ...   # + reward {"alignment": 0.7, "musicality": 1.9}; pairs also reward_b (their `audio_b`)

The model's frozen towers are those its checkpoint names (config.json `encoder`, `text_encoder`):
a record's audio is encoded as in training (its `audio_embedding` when it has one from the same
encoder, else its `audio`), its prompt embedded by the same text model (features.py). Scores are
the head's raw outputs, one per axis, on the scale training gave them (Bradley-Terry fixes only
differences: compare scores of one axis, not across axes or models); MOS training's affine map
is not applied. A record whose audio cannot be read or encoded is an error record naming the
field; records of other splits (with `split`) and earlier error records pass through untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from mllm.core.encoders.cache import EmbeddingCache
from mllm.core.encoders.for_model import ModelEncoder
from mllm.core.io.errors import Record, StreamSummary, has_error, with_error
from mllm.core.io.splits import in_split
from mllm.core.reward_model.features import RewardInputs
from mllm.core.reward_model.model import RewardModel, load_reward_model
from mllm.core.reward_model.records import is_pair
from mllm.core.reward_model.text import TextEmbedder

__all__ = ["ModelScorer", "score_records"]

STAGE = "score"
CHUNK = 64  # records scored together (memory stays flat)
MAX_CACHED_AUDIO = 65_536  # pooled audio vectors kept for pairs that share clips (least recently used dropped)


@dataclass
class ModelScorer:
    model: RewardModel
    inputs: RewardInputs
    folder: str

    @classmethod
    def load(cls, folder: str, device: str = "cpu", cache: str | None = None) -> ModelScorer:
        """ValueError (CheckpointError) naming the file, or the text model that cannot load."""
        model, config = load_reward_model(folder, device=device)
        encoder = ModelEncoder(dict(config["encoder"]), device=device, cache=EmbeddingCache(cache) if cache else None)
        return cls(model, RewardInputs(encoder, TextEmbedder.load(config["text_encoder"], device=device),
                                       max_cached=MAX_CACHED_AUDIO), str(folder))

    @torch.no_grad()
    def scores(self, records: list[Record], side: str) -> tuple[dict[int, dict[str, float]], dict[int, str]]:
        """({position: {axis: score}}, {position: why it failed}) for one side of `records`."""
        rows, failed = self.inputs.rows(records, side)
        if not rows.index:
            return {}, failed
        values = self.model(**rows.tensors(device=self.model.audio_mean.device)).cpu().numpy()  # (N, K)
        return {i: {axis: float(v) for axis, v in zip(self.model.axes, row)} for i, row in zip(rows.index, values)}, failed


def _score_chunk(chunk: list[Record], scorer: ModelScorer, split: str | None) -> list[Record]:
    todo = [i for i, r in enumerate(chunk) if not has_error(r) and in_split(r, split)]
    records = [chunk[i] for i in todo]
    side_a, failed = scorer.scores(records, "a")
    pairs = [j for j, r in enumerate(records) if is_pair(r)]  # side b: the k-th pair is records[pairs[k]]
    scored_b, failed_b = scorer.scores([records[j] for j in pairs], "b")
    side_b = {pairs[k]: scores for k, scores in scored_b.items()}
    for k, why in failed_b.items():
        failed.setdefault(pairs[k], why)
    out = list(chunk)
    for j, record in enumerate(records):
        if j in failed:
            out[todo[j]] = with_error(record, STAGE, failed[j])
            continue
        scored = {**record, "reward": side_a[j]}
        if j in side_b:
            scored["reward_b"] = side_b[j]
        out[todo[j]] = scored
    return out


def score_records(records: Iterable[Record], scorer: ModelScorer, *, split: str | None = None,
                  summary: StreamSummary | None = None) -> Iterator[Record]:
    """Each record with `reward` (and `reward_b` for pairs), or as an error record, in input order."""
    chunk: list[Record] = []

    def flush() -> Iterator[Record]:
        for before, after in zip(chunk, _score_chunk(chunk, scorer, split)):
            if summary is not None:
                summary.records_in += 1
                summary.note(after, new_failure=has_error(after) and not has_error(before))
            yield after

    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()
