"""Records made ready for a MusicLLM's encoder: the embeddings it was trained on, encoded on the fly.

    spec = {"name": "dsp", "layer": None, "frame_rate": 1.0, "dim": 39}   # a checkpoint's "encoder"
    encoder = ModelEncoder(spec, cache=EmbeddingCache("cache/"))
    for record in encoder.embeddings(records):     # records with `audio_embedding`, or error records
        ...
    embedding = encoder(record)                    # one record's [T, D] (raises when it cannot)

A MusicLLM reads `audio_embedding` frames of one encoder (its name, layer and frame rate are in
the checkpoint's config, `encoder`). `mllm sft --encoder`, `mllm caption` and `mllm regress` accept
records in either form:
- a record with `audio_embedding` passes through when it matches the spec (same size D, same frame
  rate, same encoder); one from another encoder becomes an error record, since a projector fed
  another encoder's frames gives fluent nonsense rather than an error;
- a record without one is encoded from its `audio` exactly as `mllm encode` would (encode.py,
  float16 storage): training on the fly and training on `mllm encode`'s output see the same values.
The encoder is loaded on the first record that needs it; if it cannot load (a hub id that is not
cached here), those records become error records that say so and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from mllm.core.encoders.cache import EmbeddingCache
from mllm.core.encoders.encode import STAGE, EncodeOptions, ChunkEncoding
from mllm.core.encoders.registry import Encoder, layer_label, load_encoder, parse_layer
from mllm.core.io.errors import Record, has_error, with_error

__all__ = ["ModelEncoder", "encoder_spec", "same_encoder"]

CHUNK = 32  # records encoded together (memory stays flat)


def same_encoder(a: str | None, b: str | None) -> bool:
    """Two encoder names are the same encoder: equal, or folders that resolve to the same path
    (a missing or "unknown" name matches any)."""
    if a is None or b is None or a == b or "unknown" in (a, b):  # unnamed: records without `encoder`
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def encoder_spec(name: str, layer: str | int | list[int] | None = None, frame_rate: float = 10.0) -> dict:
    """The spec of `mllm encode --encoder NAME --layer L --frame-rate R` (a local folder made absolute,
    so a checkpoint that records it loads from anywhere); its `dim` is known once it has encoded."""
    path = Path(name).expanduser()
    return {"name": str(path.resolve()) if path.exists() else name, "layer": layer_label(parse_layer(layer)),
            "frame_rate": float(frame_rate)}


def _mismatch(record: Record, spec: dict) -> str | None:
    """Why the record's embedding is not what the model reads, or None."""
    embedding = np.asarray(record["audio_embedding"])
    dim = spec.get("dim")
    if dim is not None and (embedding.ndim != 2 or embedding.shape[-1] != int(dim)):
        return f"'audio_embedding' has shape {list(embedding.shape)}, the model reads [T, {dim}]"
    rate, model_rate = record.get("frame_rate"), spec.get("frame_rate")
    if rate is not None and model_rate is not None and float(rate) != float(model_rate):
        return f"'frame_rate' is {rate}, the model was trained at {model_rate}"
    if not same_encoder(record.get("encoder"), spec.get("name")):
        return f"'encoder' is {record.get('encoder')!r}, the model was trained on {spec.get('name')!r}"
    return None


class ModelEncoder:
    """The encoder a model spec names, loaded on first use, over records (see the module docstring).

    `embeddings(records)` gives each record with its embedding or as an error record (chunks
    encoded in batches); `__call__(record)` gives one record's embedding or raises."""

    def __init__(self, spec: dict, *, device: str = "auto", dtype: str = "float32", batch_size: int = 8,
                 cache: EmbeddingCache | None = None, trust_remote_code: bool = False):
        self.spec = spec
        self.load_options = dict(device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        self.options = EncodeOptions(frame_rate=float(spec.get("frame_rate") or 0.0), batch_size=batch_size).check()
        self.cache = cache
        self._encoding: ChunkEncoding | None = None
        self._failure: Exception | None = None

    def encoding(self) -> ChunkEncoding:
        """The loaded encoder (the first call loads it); raises ValueError when it cannot load."""
        if self._encoding is None and self._failure is None:
            spec = self.spec
            try:
                encoder: Encoder = load_encoder(spec["name"], layer=spec.get("layer"), **self.load_options)
                if spec.get("dim") is not None and encoder.dim != int(spec["dim"]):
                    raise ValueError(f"it gives {encoder.dim} values per frame, the model reads {spec['dim']}")
                self._encoding = ChunkEncoding(encoder, self.options, self.cache)
            except Exception as exc:  # noqa: BLE001 - reported on every record that needs it
                self._failure = ValueError(f"cannot load the model's encoder {spec.get('name')!r}: {exc}")
        if self._failure is not None:
            raise self._failure
        return self._encoding

    def check(self, record: Record) -> None:
        """Raise unless the record's `audio_embedding` is what the model reads."""
        why = _mismatch(record, self.spec)
        if why:
            raise ValueError(f"record {record.get('id')!r}: {why}")

    def __call__(self, record: Record) -> np.ndarray:
        """The record's embedding: its own (checked) or encoded from its `audio`."""
        if "audio_embedding" in record:
            self.check(record)
            return record["audio_embedding"]
        if "audio" not in record:
            raise KeyError(f"record {record.get('id')!r} has neither 'audio_embedding' nor 'audio'")
        out, _ = self.encoding().chunk([record])[0]
        if has_error(out):
            raise ValueError(out["error"]["message"])
        return out["audio_embedding"]

    def embeddings(self, records: Iterable[Record]) -> Iterator[Record]:
        """Each record with an `audio_embedding` the model reads, or as an error record, in input order."""
        chunk: list[Record] = []
        for record in records:
            chunk.append(record)
            if len(chunk) >= CHUNK:
                yield from self._chunk(chunk)
                chunk = []
        if chunk:
            yield from self._chunk(chunk)

    def _chunk(self, chunk: list[Record]) -> list[Record]:
        outputs: list[Record | None] = [None] * len(chunk)
        needed: list[int] = []
        for slot, record in enumerate(chunk):
            if has_error(record):
                outputs[slot] = record
            elif "audio_embedding" in record or "audio" not in record:
                try:
                    outputs[slot] = {**record, "audio_embedding": self(record)}
                except (KeyError, ValueError) as exc:
                    outputs[slot] = with_error(record, STAGE, exc)
            else:
                needed.append(slot)
        if needed:
            try:
                encoded = [out for out, _ in self.encoding().chunk([chunk[slot] for slot in needed])]
            except ValueError as exc:
                encoded = [with_error(chunk[slot], STAGE, exc) for slot in needed]
            for slot, out in zip(needed, encoded):
                outputs[slot] = out
        return outputs
