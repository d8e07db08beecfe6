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
before the next chunk is read. A span up to STREAMED_SECONDS (60 s) is decoded whole and its
windows are batched with those of the chunk's other records; a longer one is decoded, encoded
and pooled window by window as it streams from the file, so memory holds a batch of windows and
the pooled result, not the span (an hour-long file costs what its [T, D] result costs). Encoders
without a window (wav2vec2-style models take the whole span in one call) refuse spans over
UNWINDOWED_LONGEST_SECONDS (10 minutes): an error record naming the field (`audio`, or `end`)
and the bound, not an out-of-memory kill.

Cache entries are checked against what the record asks: an entry that is not a finite float
[ceil(duration * frame_rate), D] array (one frame at frame rate 0; the duration from the file's
header) is a miss, recomputed and overwritten (cache.py).

Sharing the work (`core.io.shards`). `shard=(i, n)` keeps the records at positions i, i + n,
i + 2n, ... of the input (0-based), so n jobs with i = 0..n-1 cover every record once. Under
`torchrun` the command passes `torchrun_share(shard)`: each rank takes every WORLD_SIZE-th record
of its shard and writes its own output file (`rank_output_path`), to be concatenated afterwards
(`cat out.rank*-of-*.jsonl`). No process talks to another: no process group is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from mllm.core.audio import record_audio_stream, record_path, record_span
from mllm.core.audio.records import RecordAudioStream
from mllm.core.encoders.cache import EmbeddingCache, file_sha256
from mllm.core.encoders.pooling import FramePooler, frame_count
from mllm.core.encoders.registry import Encoder, layer_label
from mllm.core.encoders.windows import embed_clips, encode_clips, stream_windows
from mllm.core.io.errors import Record, StreamSummary, has_error, with_error
from mllm.core.io.shards import take_shard
from mllm.core.options import MAX_FRAME_RATE, check_integer, check_number

__all__ = ["ChunkEncoding", "EncodeOptions", "STAGE", "STORE_DTYPES", "encode_records"]

STAGE = "encode"
STORE_DTYPES = ("float16", "float32")
FLOAT16_MAX = float(np.finfo(np.float16).max)
STREAMED_SECONDS = 60.0  # longer spans are decoded and encoded window by window, one record at a time
STREAMED_BATCH_SECONDS = 300.0  # audio in one batch of a streamed record's windows
UNWINDOWED_LONGEST_SECONDS = 600.0  # the longest span an encoder without a window (wav2vec2-style) takes


@dataclass
class EncodeOptions:
    frame_rate: float = 10.0  # Hz of the stored frames; 0 = one frame, the mean over the clip
    batch_size: int = 8  # windows per forward pass
    store_dtype: str = "float16"  # dtype of `audio_embedding` in the records
    shard: tuple[int, int] = (0, 1)  # (index, count): keep records at positions index mod count
    chunk_records: int | None = None  # records decoded at once; default max(16, 4 * batch_size)

    def check(self) -> EncodeOptions:
        check_number("--frame-rate (0 = one frame per clip)", self.frame_rate, minimum=0, maximum=MAX_FRAME_RATE)
        check_integer("--batch-size", self.batch_size, minimum=1)
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


def _head(blocks: Iterable[np.ndarray], limit: int) -> tuple[list[np.ndarray], Iterator[np.ndarray] | None]:
    """The first blocks of a stream up to just past `limit` samples, and the rest of the stream
    (None when the stream ended within the limit)."""
    iterator = iter(blocks)
    head, size = [], 0
    for block in iterator:
        head.append(block)
        size += block.size
        if size > limit:
            return head, iterator
    return head, None


class ChunkEncoding:
    """One run: an encoder, options and an optional cache, applied chunk by chunk."""

    def __init__(self, encoder: Encoder, options: EncodeOptions, cache: EmbeddingCache | None):
        self.encoder, self.options, self.cache = encoder, options, cache
        self.hashes = _AudioHashes()
        # Encoders without a window take a record's whole span in one call: bounded (module docstring).
        self.longest = UNWINDOWED_LONGEST_SECONDS if encoder.window_seconds is None else None

    def audio(self, record: Record) -> RecordAudioStream:
        return record_audio_stream(
            record, sample_rate=self.encoder.sample_rate, longest=self.longest, purpose=f"encoder {self.encoder.name} (no window)"
        )

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

    def expected_shape(self, record: Record, audio: RecordAudioStream) -> tuple[int, int]:
        """[ceil(duration * frame_rate), D] (one frame at frame rate 0) of the record's span: the
        duration from the file's header, or by decoding the span once when the header cannot tell."""
        samples = audio.expected_samples
        if samples is None:
            samples = sum(block.size for block in self.audio(record))
        return frame_count(samples / self.encoder.sample_rate, self.options.frame_rate), self.encoder.dim

    def encode_stream(self, blocks: Iterable[np.ndarray]) -> np.ndarray:
        """Pooled embedding of a clip that arrives in blocks, window by window: memory holds one
        batch of windows (at most `batch_size` windows and STREAMED_BATCH_SECONDS of audio) and
        the pooled result, never the clip (windows.stream_windows, pooling.FramePooler)."""
        rate = self.encoder.sample_rate
        pooler = FramePooler(self.options.frame_rate)
        batch: list[tuple[float, np.ndarray]] = []
        total = 0

        def flush() -> None:
            for (start, _), native in zip(batch, encode_clips(self.encoder, [samples for _, samples in batch], self.options.batch_size)):
                if isinstance(native, Exception):
                    raise native
                pooler.add(native.frames, start + native.times)
            batch.clear()

        for start, samples in stream_windows(blocks, rate, self.encoder.window_seconds):
            batch.append((start, samples))
            total += samples.size
            if len(batch) >= self.options.batch_size or sum(len(s) for _, s in batch) >= STREAMED_BATCH_SECONDS * rate:
                flush()
        if batch:
            flush()
        return pooler.finish(total / rate)

    def chunk(self, records: list[Record]) -> list[tuple[Record, bool]]:
        """(output record, failed here) for each record of the chunk, in order.

        Spans up to STREAMED_SECONDS are decoded whole and their windows batched across the
        chunk; longer ones are encoded at once, streamed (`encode_stream`)."""
        outputs: list[tuple[Record, bool] | None] = [None] * len(records)
        pending: list[tuple[int, str | None, np.ndarray]] = []
        for slot, record in enumerate(records):
            if has_error(record):
                outputs[slot] = (record, False)
                continue
            try:
                audio = self.audio(record)
                key = self.cache_key(record) if self.cache is not None else None
                if key:
                    cached = self.cache.get(key, shape=self.expected_shape(record, audio))
                    if cached is not None:
                        audio.close()
                        outputs[slot] = (_with_embedding(record, cached, self.encoder, self.options), False)
                        continue
                head, rest = _head(audio, int(STREAMED_SECONDS * self.encoder.sample_rate))
                if rest is None:
                    pending.append((slot, key, head[0] if len(head) == 1 else np.concatenate(head)))
                else:
                    outputs[slot] = (self._finished(record, key, self.encode_stream(chain(head, rest))), False)
            except Exception as exc:  # noqa: BLE001 - any failure of one record is that record's error
                outputs[slot] = (with_error(record, STAGE, exc), True)
        embeddings = embed_clips(self.encoder, [samples for _, _, samples in pending], self.options.frame_rate, self.options.batch_size)
        for (slot, key, _), embedding in zip(pending, embeddings):
            record = records[slot]
            try:
                if isinstance(embedding, Exception):
                    raise embedding
                outputs[slot] = (self._finished(record, key, embedding), False)
            except Exception as exc:  # noqa: BLE001
                outputs[slot] = (with_error(record, STAGE, exc), True)
        return [out for out in outputs if out is not None]

    def _finished(self, record: Record, key: str | None, embedding: np.ndarray) -> Record:
        out = _with_embedding(record, embedding, self.encoder, self.options)
        if self.cache is not None and key:
            self.cache.put(key, embedding, self._cache_metadata(record))
        return out

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
