"""`mllm encode` as a library: records with audio in, records with `audio_embedding` out.

    encoder = load_encoder("dsp")
    records = read_records("clips.jsonl")
    for record in encode_records(records, encoder, EncodeOptions(frame_rate=10), cache=EmbeddingCache("cache/")):
        ...   # record["audio_embedding"]: float16 [T, D]; record["encoder"], ["layer"], ["frame_rate"]

Each record's `audio` (between its `start` and `end`, when given) is decoded by `core.audio` at the
encoder's sample rate, encoded (windows.py) and pooled to `frame_rate` Hz (pooling.py), giving
`[ceil(duration * frame_rate), D]`. The record gains `audio_embedding` (a tensor field: float16
by default, float32 with `store_dtype="float32"`), `encoder` (the name, hub id or folder as given),
`layer` (an int, a list of ints, "all", "projection"; null for DSP encoders) and `frame_rate`.
A record whose audio is missing or broken becomes an error record (stage `encode`); records that
failed upstream pass through.

Memory is flat: records are read in chunks (4 batches by default), decoded, encoded and written
before the next chunk is read. A record's crop is decoded whole, so an hour-long file without
`start`/`end` costs an hour of samples while it is encoded.

Sharing the work (`core.io.shards`). `shard=(i, n)` keeps the records at positions i, i + n,
i + 2n, ... of the input (0-based), so n jobs with i = 0..n-1 cover every record once. Under
`torchrun` the command passes `torchrun_share(shard)`: each rank takes every WORLD_SIZE-th record
of its shard and writes its own output file (`rank_output_path`), to be concatenated afterwards
(`cat out.rank*-of-*.jsonl`). No process talks to another: no process group is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mllm.core.audio import record_audio, record_path, record_span
from mllm.core.encoders.cache import EmbeddingCache, file_sha256
from mllm.core.encoders.registry import Encoder, layer_label
from mllm.core.encoders.windows import embed_clips
from mllm.core.io.errors import Record, StreamSummary, has_error, with_error
from mllm.core.io.shards import take_shard

__all__ = ["ChunkEncoding", "EncodeOptions", "STAGE", "STORE_DTYPES", "encode_records"]

STAGE = "encode"
STORE_DTYPES = ("float16", "float32")
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class EncodeOptions:
    frame_rate: float = 10.0  # Hz of the stored frames; 0 = one frame, the mean over the clip
    batch_size: int = 8  # windows per forward pass
    store_dtype: str = "float16"  # dtype of `audio_embedding` in the records
    shard: tuple[int, int] = (0, 1)  # (index, count): keep records at positions index mod count
    chunk_records: int | None = None  # records decoded at once; default max(16, 4 * batch_size)

    def check(self) -> EncodeOptions:
        if not self.frame_rate >= 0:
            raise ValueError(f"frame rate must be >= 0 (0 = one frame per clip), got {self.frame_rate}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.store_dtype not in STORE_DTYPES:
            raise ValueError(f"store dtype must be one of {', '.join(STORE_DTYPES)}, got {self.store_dtype!r}")
        index, count = self.shard
        if not (count >= 1 and 0 <= index < count):
            raise ValueError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
        return self


class _AudioHashes:
    """sha256 of audio files, remembered by (path, size, mtime) for records that share a file."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.known: dict[tuple[str, int, int], str] = {}

    def __call__(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self.known:
            if len(self.known) >= self.size:
                self.known.pop(next(iter(self.known)))
            self.known[key] = file_sha256(path)
        return self.known[key]


def _with_embedding(record: Record, embedding: np.ndarray, encoder: Encoder, options: EncodeOptions) -> Record:
    if options.store_dtype == "float16" and np.abs(embedding).max(initial=0.0) > FLOAT16_MAX:
        raise ValueError(
            f"embedding values reach {np.abs(embedding).max():.3g}, beyond float16; use --store-dtype float32"
        )
    out = dict(record)
    out["audio_embedding"] = embedding.astype(options.store_dtype)
    out["encoder"] = encoder.name
    out["layer"] = layer_label(encoder.layer)
    out["frame_rate"] = float(options.frame_rate)
    return out


class ChunkEncoding:
    """One run: an encoder, options and an optional cache, applied chunk by chunk."""

    def __init__(self, encoder: Encoder, options: EncodeOptions, cache: EmbeddingCache | None):
        self.encoder, self.options, self.cache = encoder, options, cache
        self.hashes = _AudioHashes()

    def cache_key(self, record: Record) -> str | None:
        """The record's cache key, or None when its audio cannot be hashed (decoding will say why)."""
        start, end = record_span(record)
        try:
            audio_sha256 = self.hashes(record_path(record))
        except OSError:
            return None
        return EmbeddingCache.key(
            audio_sha256=audio_sha256, start=start, end=end, encoder=self.encoder.fingerprint,
            layer=layer_label(self.encoder.layer), frame_rate=self.options.frame_rate,
        )

    def chunk(self, records: list[Record]) -> list[tuple[Record, bool]]:
        """(output record, failed here) for each record of the chunk, in order."""
        outputs: list[tuple[Record, bool] | None] = [None] * len(records)
        pending: list[tuple[int, str | None, np.ndarray]] = []
        for slot, record in enumerate(records):
            if has_error(record):
                outputs[slot] = (record, False)
                continue
            try:
                key = self.cache_key(record) if self.cache is not None else None
                cached = self.cache.get(key) if self.cache is not None and key else None
                if cached is not None:
                    outputs[slot] = (_with_embedding(record, cached, self.encoder, self.options), False)
                    continue
                pending.append((slot, key, record_audio(record, sample_rate=self.encoder.sample_rate).samples))
            except Exception as exc:  # noqa: BLE001 - any failure of one record is that record's error
                outputs[slot] = (with_error(record, STAGE, exc), True)
        embeddings = embed_clips(self.encoder, [samples for _, _, samples in pending], self.options.frame_rate, self.options.batch_size)
        for (slot, key, _), embedding in zip(pending, embeddings):
            record = records[slot]
            try:
                if isinstance(embedding, Exception):
                    raise embedding
                out = _with_embedding(record, embedding, self.encoder, self.options)
                if self.cache is not None and key:
                    self.cache.put(key, embedding, self._cache_metadata(record))
                outputs[slot] = (out, False)
            except Exception as exc:  # noqa: BLE001
                outputs[slot] = (with_error(record, STAGE, exc), True)
        return [out for out in outputs if out is not None]

    def _cache_metadata(self, record: Record) -> dict:
        return {
            "encoder": self.encoder.name, "layer": layer_label(self.encoder.layer), "frame_rate": self.options.frame_rate,
            "audio": record.get("audio"), "start": record.get("start"), "end": record.get("end"),
        }


def encode_records(
    records: Iterable[Record],
    encoder: Encoder,
    options: EncodeOptions | None = None,
    *,
    cache: EmbeddingCache | None = None,
    summary: StreamSummary | None = None,
) -> Iterator[Record]:
    """Records of this shard with their embeddings, in input order (see the module docstring)."""
    options = (options or EncodeOptions()).check()
    run = ChunkEncoding(encoder, options, cache)
    size = options.chunk_records or max(16, 4 * options.batch_size)
    chunk: list[Record] = []

    def flush() -> Iterator[Record]:
        for out, failed_here in run.chunk(chunk):
            if summary is not None:
                summary.note(out, new_failure=failed_here)
            yield out
        chunk.clear()

    for record in take_shard(records, options.shard):
        if summary is not None:
            summary.records_in += 1
        chunk.append(record)
        if len(chunk) >= size:
            yield from flush()
    if chunk:
        yield from flush()
