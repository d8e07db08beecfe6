"""encode_records: record fields, error records, crops, the cache, shards, JSONL/Parquet round trips."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import soundfile

from mllm.core.audio import load_audio
from mllm.core.encoders import EmbeddingCache, EncodeOptions, embed_clips, encode_records, load_encoder
from mllm.core.encoders.registry import Encoder
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter, read_records
from mllm.core.io.shards import parse_shard, rank_output_path, take_shard, torchrun_share

SR = 22050


def write_tone(path, seconds, freq=440.0, rate=SR):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return str(path)


@pytest.fixture()
def clips(tmp_path):
    a = write_tone(tmp_path / "a.wav", 3.0)
    b = write_tone(tmp_path / "b.flac", 2.0, 330.0)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file" * 10)
    return [
        {"id": "a", "audio": a, "split": "train", "answer": {"key": "A major"}},
        {"id": "b", "audio": b, "start": 0.5, "end": 1.75},
        {"id": "missing", "audio": str(tmp_path / "nope.wav")},
        {"id": "broken", "audio": str(tmp_path / "broken.wav")},
        {"id": "no-audio"},
        {"id": "upstream", "audio": a, "error": {"stage": "synth", "type": "X", "message": "earlier failure"}},
    ]


class CountingEncoder(Encoder):
    """Wraps an encoder and counts the windows it encodes."""

    def __init__(self, inner):
        self.inner = inner
        self.windows = 0
        for name in ("name", "sample_rate", "native_frame_rate", "dim", "window_seconds", "min_samples", "equal_lengths_only", "layer"):
            setattr(self, name, getattr(inner, name))

    @property
    def fingerprint(self):
        return self.inner.fingerprint

    def encode_batch(self, clips):
        self.windows += len(clips)
        return self.inner.encode_batch(clips)


def test_records_gain_an_embedding_and_keep_their_fields(clips):
    summary = StreamSummary("encode")
    out = list(encode_records(clips, load_encoder("dsp"), EncodeOptions(frame_rate=10), summary=summary))
    assert [r["id"] for r in out] == [r["id"] for r in clips]
    a, b = out[0], out[1]
    assert a["audio_embedding"].shape == (30, 39) and a["audio_embedding"].dtype == np.float16
    assert (a["encoder"], a["layer"], a["frame_rate"]) == ("dsp", None, 10.0)
    assert a["split"] == "train" and a["answer"] == {"key": "A major"} and "error" not in a
    assert b["audio_embedding"].shape == (math.ceil(1.25 * 10), 39)
    cropped = load_audio(clips[1]["audio"], sample_rate=SR, start=0.5, end=1.75).samples
    expected = embed_clips(load_encoder("dsp"), [cropped], frame_rate=10)[0]
    assert np.array_equal(b["audio_embedding"], expected.astype(np.float16))
    errors = {r["id"]: r["error"] for r in out[2:]}
    assert errors["missing"]["stage"] == "encode" and "no such audio file" in errors["missing"]["message"]
    assert "not a readable audio file" in errors["broken"]["message"]
    assert errors["no-audio"]["type"] == "RecordError"
    assert out[5] == clips[5]  # failed upstream: passed through untouched
    assert (summary.records_in, summary.records_out, summary.failed_here, summary.failed_before) == (6, 6, 3, 1)


def test_store_dtype_and_frame_rate_options(clips):
    out = list(encode_records(clips[:1], load_encoder("chroma"), EncodeOptions(frame_rate=0, store_dtype="float32")))
    assert out[0]["audio_embedding"].shape == (1, 12) and out[0]["audio_embedding"].dtype == np.float32
    with pytest.raises(ValueError):
        list(encode_records(clips, load_encoder("dsp"), EncodeOptions(store_dtype="bfloat16")))


def test_values_beyond_float16_fail_the_record(clips):
    class Loud(CountingEncoder):
        def encode_batch(self, clips):
            return [np.full_like(f, 1e6) for f in self.inner.encode_batch(clips)]

    out = list(encode_records(clips[:1], Loud(load_encoder("chroma"))))
    assert "--store-dtype float32" in out[0]["error"]["message"]
    assert "error" not in list(encode_records(clips[:1], Loud(load_encoder("chroma")), EncodeOptions(store_dtype="float32")))[0]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_embeddings_round_trip_through_jsonl_and_parquet(clips, tmp_path, suffix):
    out = list(encode_records(clips, load_encoder("dsp"), EncodeOptions(frame_rate=4)))
    path = tmp_path / f"enc.{suffix}"
    with RecordWriter(path) as writer:
        for record in out:
            writer.write(record)
    back = list(read_records(path))
    assert [r["id"] for r in back] == [r["id"] for r in out]
    for before, after in zip(out, back):
        if "audio_embedding" in before:
            assert after["audio_embedding"].dtype == np.float16
            assert np.array_equal(after["audio_embedding"], before["audio_embedding"])
            assert (after["encoder"], after["frame_rate"]) == ("dsp", 4.0)
        else:
            assert after["error"] == before["error"]


def test_cache_hit_returns_the_same_tensor_without_encoding(clips, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    first_encoder = CountingEncoder(load_encoder("dsp"))
    first = list(encode_records(clips[:2], first_encoder, cache=cache))
    assert first_encoder.windows == 2 and cache.misses == 2 and cache.hits == 0
    again = CountingEncoder(load_encoder("dsp"))
    second = list(encode_records(clips[:2], again, cache=EmbeddingCache(tmp_path / "cache")))
    assert again.windows == 0
    for a, b in zip(first, second):
        assert np.array_equal(a["audio_embedding"], b["audio_embedding"]) and a["audio_embedding"].dtype == b["audio_embedding"].dtype
    # The key is the audio's content: a copy under another name hits, an edited file misses.
    copy = str(shutil.copy(clips[0]["audio"], tmp_path / "renamed.wav"))
    renamed = CountingEncoder(load_encoder("dsp"))
    hit = list(encode_records([{"id": "r", "audio": copy}], renamed, cache=cache))[0]
    assert renamed.windows == 0 and np.array_equal(hit["audio_embedding"], first[0]["audio_embedding"])
    write_tone(copy, 3.0, 441.0)
    edited = CountingEncoder(load_encoder("dsp"))
    miss = list(encode_records([{"id": "r", "audio": copy}], edited, cache=cache))[0]
    assert edited.windows == 1 and "error" not in miss


def test_cache_misses_when_crop_or_frame_rate_or_encoder_change(clips, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    record = clips[0]
    list(encode_records([record], load_encoder("dsp"), cache=cache))
    for changed, encoder, options in [
        (dict(record, end=2.0), load_encoder("dsp"), EncodeOptions()),
        (dict(record, start=0.5), load_encoder("dsp"), EncodeOptions()),
        (record, load_encoder("dsp"), EncodeOptions(frame_rate=5)),
        (record, load_encoder("chroma"), EncodeOptions()),
    ]:
        counting = CountingEncoder(encoder)
        out = list(encode_records([changed], counting, options, cache=cache))
        assert counting.windows == 1 and "error" not in out[0], changed
    base = dict(audio_sha256="ab" * 32, start=None, end=None, encoder="fp", layer=-1, frame_rate=10.0)
    keys = {EmbeddingCache.key(**base)}
    for field, value in [("layer", -2), ("layer", "all"), ("layer", [1, 2]), ("frame_rate", 4.0), ("start", 0.0), ("end", 25.0), ("encoder", "fp2"), ("audio_sha256", "cd" * 32)]:
        keys.add(EmbeddingCache.key(**dict(base, **{field: value})))
    assert len(keys) == 9
    assert EmbeddingCache.key(**base) == EmbeddingCache.key(**dict(base, frame_rate=10))


def test_cache_files_are_safetensors_and_broken_ones_are_rewritten(clips, tmp_path):
    from safetensors import safe_open

    cache = EmbeddingCache(tmp_path / "cache")
    out = list(encode_records(clips[:1], load_encoder("dsp"), EncodeOptions(store_dtype="float32"), cache=cache))
    files = list((tmp_path / "cache").rglob("*.safetensors"))
    assert len(files) == 1 and not list((tmp_path / "cache").rglob("*.tmp"))
    with safe_open(str(files[0]), framework="numpy") as handle:
        assert handle.metadata()["encoder"] == "dsp" and handle.metadata()["audio"] == clips[0]["audio"]
        assert np.array_equal(handle.get_tensor("embedding"), out[0]["audio_embedding"])
    files[0].write_bytes(b"\x00" * 10)
    counting = CountingEncoder(load_encoder("dsp"))
    again = list(encode_records(clips[:1], counting, EncodeOptions(store_dtype="float32"), cache=cache))
    assert counting.windows == 1 and np.array_equal(again[0]["audio_embedding"], out[0]["audio_embedding"])
    assert cache.get(files[0].stem) is not None  # written again


def test_a_cache_that_cannot_be_written_does_not_fail_records(clips, tmp_path):
    import resource

    # The kernel refuses writes past 512 bytes (EFBIG; Python ignores SIGXFSZ), as a full disk
    # refuses them: each entry (30 or 13 frames x 12 float32, and a header) fails half written.
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = load_encoder("chroma")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, hard))
    try:
        out = list(encode_records(clips[:2], encoder, cache=cache))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert all("error" not in r and r["audio_embedding"].shape[1] == 12 for r in out)
    assert cache.write_errors == 2 and "too large" in cache.last_write_error
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # no temporary file left behind
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_shards_cover_every_record_once(clips):
    records = [{"id": str(i), "audio": clips[0]["audio"], "end": 0.5} for i in range(7)]
    encoder = load_encoder("chroma")
    seen = []
    for index in range(3):
        out = list(encode_records(records, encoder, EncodeOptions(shard=(index, 3))))
        assert [r["id"] for r in out] == [str(i) for i in range(index, 7, 3)]
        seen += [r["id"] for r in out]
    assert sorted(seen, key=int) == [str(i) for i in range(7)]


def test_torchrun_ranks_split_their_shard():
    assert torchrun_share((0, 1), {}) == (0, 1)
    assert torchrun_share((0, 1), {"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    positions = range(100)
    for shard in [(0, 1), (1, 3), (2, 3)]:
        for world in (1, 2, 4):
            for rank in range(world):
                index, count = torchrun_share(shard, {"RANK": str(rank), "WORLD_SIZE": str(world)})
                in_shard = [p for p in positions if p % shard[1] == shard[0]]
                assert [p for p in positions if p % count == index] == in_shard[rank::world]
    assert rank_output_path("out/emb.jsonl", 1, 4) == "out/emb.rank1-of-4.jsonl"
    assert rank_output_path("emb.parquet", 0, 1) == "emb.parquet"
    assert list(take_shard(range(10), parse_shard("2/4"))) == [2, 6] and list(take_shard(range(3), None)) == [0, 1, 2]
    for bad in ("4/4", "1", "a/b", "-1/3", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_records_are_read_a_chunk_at_a_time(clips):
    read = []

    def source():
        for i in range(100):
            read.append(i)
            yield {"id": str(i), "audio": clips[0]["audio"], "end": 0.2}

    stream = encode_records(source(), load_encoder("chroma"), EncodeOptions(batch_size=2, chunk_records=5))
    first = next(stream)
    assert first["id"] == "0" and len(read) == 5


# --- the cache never returns a wrong embedding -----------------------------------------------------


def planted(cache, record, encoder, options, value):
    """Store `value` under the key the record's embedding is looked up by."""
    from mllm.core.encoders.encode import ChunkEncoding

    key = ChunkEncoding(encoder, options, cache).cache_key(record)
    safetensors_numpy_save({"embedding": value}, cache.path(key))
    return cache.path(key)


def safetensors_numpy_save(tensors, path):
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))


@pytest.mark.parametrize(
    "frame_rate, value, reason",
    [
        (10.0, np.ones((29, 39), dtype=np.float32), "shape [29, 39]"),  # a frame short: another crop's entry
        (10.0, np.ones((31, 39), dtype=np.float32), "shape [31, 39]"),
        (10.0, np.ones((30, 12), dtype=np.float32), "shape [30, 12]"),  # another encoder's width
        (0.0, np.ones((30, 39), dtype=np.float32), "shape [30, 39]"),  # frame rate 0 asks for one frame
        (10.0, np.ones((30, 39), dtype=np.int32), "not a float array"),
        (10.0, np.ones((30, 39, 1), dtype=np.float32), "not [T, D]"),
        (10.0, np.full((30, 39), np.nan, dtype=np.float32), "NaN"),
    ],
    ids=["short", "long", "width", "rate-0", "int", "3-d", "nan"],
)
def test_a_wrong_cache_entry_is_a_miss_recomputed_and_overwritten(clips, tmp_path, frame_rate, value, reason):
    record = clips[0]  # 3 s: [30, 39] at 10 Hz, [1, 39] at frame rate 0
    encoder, options = load_encoder("dsp"), EncodeOptions(frame_rate=frame_rate, store_dtype="float32")
    expected = list(encode_records([record], encoder, options))[0]["audio_embedding"]
    cache = EmbeddingCache(tmp_path / "cache")
    path = planted(cache, record, encoder, options, value)
    counting = CountingEncoder(encoder)
    out = list(encode_records([record], counting, options, cache=cache))[0]
    assert counting.windows == 1 and np.array_equal(out["audio_embedding"], expected)
    assert (cache.hits, cache.misses, cache.rejected) == (0, 1, 1) and reason in cache.last_rejection
    from safetensors.numpy import load_file

    assert np.array_equal(load_file(str(path))["embedding"], expected)  # overwritten with the right one
    again = CountingEncoder(encoder)
    assert np.array_equal(list(encode_records([record], again, options, cache=cache))[0]["audio_embedding"], expected)
    assert again.windows == 0 and cache.hits == 1


def test_a_cached_crop_is_checked_against_the_crop(clips, tmp_path):
    record = dict(clips[0], start=0.5, end=2.25)  # 1.75 s: 18 frames at 10 Hz
    encoder, options = load_encoder("chroma"), EncodeOptions(frame_rate=10)
    cache = EmbeddingCache(tmp_path / "cache")
    planted(cache, record, encoder, options, np.zeros((30, 12), dtype=np.float32))  # the whole file's length
    out = list(encode_records([record], encoder, options, cache=cache))[0]
    assert out["audio_embedding"].shape == (18, 12) and cache.rejected == 1


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_cache_files_get_the_users_normal_permissions(clips, tmp_path, umask, mode):
    import os

    previous = os.umask(umask)
    try:
        cache = EmbeddingCache(tmp_path / "cache")
        list(encode_records(clips[:1], load_encoder("chroma"), cache=cache))
    finally:
        os.umask(previous)
    files = list((tmp_path / "cache").rglob("*.safetensors"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == mode
