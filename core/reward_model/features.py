"""What a reward model reads from a record: pooled audio vectors and prompt embeddings.

    inputs = RewardInputs(ModelEncoder(spec), TextEmbedder.load("smollm2"))
    rows, failed = inputs.rows(records, side="a")    # side "b": the second audio of pair records

Fields read (docs/reward.md):
- side "a": `audio_embedding` (from `mllm encode`, checked against the model's encoder) when the
  record has one, else `audio` (a path, with `start`/`end`) encoded by the model's encoder;
- side "b" (pairs): `audio_b_embedding`, else `audio_b` (the whole file);
- the prompt: `prompt`, else `caption`, else `labels.caption` (text; none: the model's empty prompt);
- a reference audio (the audio a generation was asked to follow), when the record has one:
  `reference_audio_embedding`, else `reference_audio` (a path, the whole file); the same on both
  sides of a pair.

An audio is encoded once however many records name it (kept by path and span). A record whose
audio cannot be read or encoded, or whose prompt is not text, is in `failed` with the reason,
naming the field; the others are scored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mllm.core.encoders.for_model import ModelEncoder
from mllm.core.io.errors import RecordError, has_error
from mllm.core.reward_model.model import pool_frames
from mllm.core.reward_model.text import TextEmbedder

__all__ = ["Rows", "RewardInputs", "record_prompt", "SIDE_FIELDS"]

# side -> (embedding field, audio field)
SIDE_FIELDS = {"a": ("audio_embedding", "audio"), "b": ("audio_b_embedding", "audio_b")}
PROMPT_FIELDS = ("prompt", "caption", "labels.caption")


def record_prompt(record: Mapping[str, Any]) -> str:
    """The prompt text of a record ("" when it has none); RecordError naming a field that is not text."""
    for name in PROMPT_FIELDS:
        holder, key = (record.get("labels"), "caption") if name == "labels.caption" else (record, name)
        if not isinstance(holder, Mapping) or holder.get(key) is None:
            continue
        value = holder[key]
        if not isinstance(value, str):
            raise RecordError(f"field {name!r} must be the prompt's text, got {type(value).__name__}", name)
        return value
    return ""


@dataclass
class Rows:
    """Model inputs of records, row i for the i-th record that did not fail (`index` says which)."""

    index: list[int]  # positions in the records given
    audio: np.ndarray  # (N, audio_dim)
    text: np.ndarray  # (N, text_dim)
    has_text: np.ndarray  # (N,) 0 or 1
    reference: np.ndarray  # (N, audio_dim)
    has_reference: np.ndarray  # (N,)

    def tensors(self, device="cpu") -> dict:
        import torch

        return {name: torch.as_tensor(getattr(self, name), dtype=torch.float32, device=device)
                for name in ("audio", "text", "has_text", "reference", "has_reference")}


class RewardInputs:
    """Model inputs of records. Each audio (path, start, end) is encoded once and its pooled vector
    kept, since pairs share clips; `max_cached` bounds what is kept (the least recently used go
    first), so that `mllm score` on a long stream runs in flat memory; training keeps them all."""

    def __init__(self, encoder: ModelEncoder, text: TextEmbedder, max_cached: int | None = None):
        self.encoder, self.text = encoder, text
        self.max_cached = max_cached
        self._vectors: OrderedDict[tuple, np.ndarray | Exception] = OrderedDict()

    @property
    def audio_dim(self) -> int | None:
        dim = self.encoder.spec.get("dim")
        return None if dim is None else 2 * int(dim)

    def _encode(self, items: dict[tuple, dict]) -> None:
        """Pooled vectors of the audio items not known yet (pseudo-records {"id", "audio", start, end})."""
        todo = [(key, item) for key, item in items.items() if key not in self._vectors]
        for (key, _), out in zip(todo, self.encoder.embeddings([item for _, item in todo])):
            if has_error(out):  # the stand-in record's field is `audio`: the caller names the record's own
                self._vectors[key] = ValueError(out["error"]["message"].removeprefix("field 'audio': "))
                continue
            try:
                self._vectors[key] = pool_frames(out["audio_embedding"])
            except ValueError as exc:
                self._vectors[key] = exc
            if self.encoder.spec.get("dim") is None:  # known once it has encoded
                self.encoder.spec["dim"] = int(np.asarray(out["audio_embedding"]).shape[-1])

    def _audio_key(self, record: Mapping[str, Any], field: str, whole: bool) -> tuple[tuple, dict]:
        path = record.get(field)
        if not isinstance(path, str) or not path:
            raise RecordError(f"field {field!r} must be an audio path", field)
        span = (None, None) if whole else (record.get("start"), record.get("end"))
        item = {"id": f"{record.get('id')}:{field}", "audio": path}
        if span[0] is not None:
            item["start"] = span[0]
        if span[1] is not None:
            item["end"] = span[1]
        return (path, *span), item

    def rows(self, records: Sequence[Mapping[str, Any]], side: str = "a") -> tuple[Rows, dict[int, str]]:
        """(the model inputs of each usable record, {position: why} for those that failed)."""
        embedding_field, audio_field = SIDE_FIELDS[side]
        failed: dict[int, str] = {}
        wanted: dict[int, tuple[tuple | None, tuple | None, np.ndarray | None, str]] = {}
        items: dict[tuple, dict] = {}
        for i, record in enumerate(records):
            try:
                own = None
                if embedding_field in record:
                    if side == "a":
                        self.encoder.check(record)
                    own = pool_frames(record[embedding_field])
                    key = None
                    if self.encoder.spec.get("dim") is None:  # the model reads what it was given
                        self.encoder.spec["dim"] = own.shape[0] // 2
                else:
                    key, item = self._audio_key(record, audio_field, whole=side == "b")
                    items[key] = item
                reference = None
                if "reference_audio_embedding" in record:
                    reference = pool_frames(record["reference_audio_embedding"])
                elif record.get("reference_audio") is not None:
                    reference, item = self._audio_key(record, "reference_audio", whole=True)
                    items[reference] = item
                wanted[i] = (key, reference, own, record_prompt(record))
            except (RecordError, ValueError) as exc:
                failed[i] = str(exc)
        self._encode(items)
        for key in items:
            self._vectors.move_to_end(key)  # used now: the last to be dropped
        index, audio, reference_rows, has_reference, prompts = [], [], [], [], []
        for i, (key, reference, own, prompt) in wanted.items():
            vector = own if key is None else self._vectors[key]
            ref = reference if reference is None or isinstance(reference, np.ndarray) else self._vectors[reference]
            bad = next((v for v in (vector, ref) if isinstance(v, Exception)), None)
            if bad is not None:
                field = audio_field if isinstance(vector, Exception) else "reference_audio"
                failed[i] = f"field {field!r}: {bad}"
                continue
            if self.audio_dim is not None and vector.shape[0] != self.audio_dim:
                failed[i] = (f"field {embedding_field!r}: pooled to {vector.shape[0]} values, the model reads "
                             f"{self.audio_dim} (another encoder?)")
                continue
            index.append(i)
            audio.append(vector)
            reference_rows.append(np.zeros_like(vector) if ref is None else ref)
            has_reference.append(0.0 if ref is None else 1.0)
            prompts.append(prompt)
        while self.max_cached is not None and len(self._vectors) > self.max_cached:
            self._vectors.popitem(last=False)
        width = self.audio_dim or 0
        text = self.text(prompts)
        return Rows(index=index, audio=np.stack(audio) if audio else np.zeros((0, width), np.float32), text=text,
                    has_text=np.array([1.0 if p else 0.0 for p in prompts], np.float32),
                    reference=np.stack(reference_rows) if reference_rows else np.zeros((0, width), np.float32),
                    has_reference=np.array(has_reference, np.float32)), failed
