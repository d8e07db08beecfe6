"""The record stream contract: JSONL/Parquet round trips with tensors, error records, counts."""

from __future__ import annotations

import io
import sys
import tracemalloc

import numpy as np
import orjson
import pytest

from mllm.core.io.errors import StreamSummary, has_error, map_records
from mllm.core.io.jsonl import read_jsonl
from mllm.core.io.parquet import ParquetRecordWriter
from mllm.core.io.records import RecordStreamError, RecordWriter, output_format, read_records
from mllm.core.io.tensors import TensorCodecError, decode_tensor, encode_tensor


def sample_records(n: int = 5) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "id": f"clip-{i}",
            "audio": f"/data/clip-{i}.wav",
            "start": 30.0 + i,
            "n_beats": i,
            "ok": i % 2 == 0,
            "answer": {"key": "A minor", "arousal": 5.2 + i},
            "messages": [{"role": "user", "content": "<audio> What key?"}],
            "audio_embedding": rng.standard_normal((3 + i, 4)).astype(np.float16),
            "frame_rate": 10,
        }
        for i in range(n)
    ]


def assert_same_records(expected: list[dict], actual: list[dict]) -> None:
    assert len(expected) == len(actual)
    for a, b in zip(expected, actual):
        assert set(a) == set(b), (sorted(a), sorted(b))
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                assert isinstance(b[key], np.ndarray)
                assert b[key].dtype == value.dtype and b[key].shape == value.shape
                np.testing.assert_array_equal(b[key], value)
            else:
                assert b[key] == value, key


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip_with_tensors(tmp_path, suffix):
    records = sample_records()
    path = tmp_path / f"out{suffix}"
    with RecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    assert writer.count == len(records)
    assert_same_records(records, list(read_records(path)))


def test_format_is_detected_from_bytes_not_name(tmp_path):
    records = sample_records(2)
    path = tmp_path / "misleading.jsonl"
    with RecordWriter(path, fmt="parquet") as writer:
        for record in records:
            writer.write(record)
    assert path.read_bytes()[:4] == b"PAR1"
    assert_same_records(records, list(read_records(path)))


def test_output_format_from_extension():
    assert output_format("x.parquet") == "parquet"
    assert output_format("x.PQ") == "parquet"
    assert output_format("x.jsonl") == "jsonl"
    assert output_format("-") == "jsonl"
    assert output_format("x.jsonl", "parquet") == "parquet"
    with pytest.raises(RecordStreamError):
        output_format("x", "csv")


def test_tensor_json_form_and_dtypes():
    for dtype in ("float16", "float32", "float64", "int64", "uint8", "bool"):
        array = (np.arange(12).reshape(3, 4) % 2).astype(dtype)
        encoded = encode_tensor(array)
        assert encoded["dtype"] == dtype and encoded["shape"] == [3, 4]
        decoded = decode_tensor(encoded)
        assert decoded.dtype == array.dtype
        np.testing.assert_array_equal(decoded, array)
    # the bytes are little-endian even for a big-endian array
    big = np.arange(3, dtype=">f4")
    np.testing.assert_array_equal(decode_tensor(encode_tensor(big)), big)
    with pytest.raises(TensorCodecError, match="needs 24 bytes"):
        decode_tensor({"dtype": "float32", "shape": [2, 3], "b64": encode_tensor(np.zeros(5, "float32"))["b64"]})
    with pytest.raises(TensorCodecError):
        encode_tensor(np.array(["a", "b"]))


def test_parquet_schema_drift_keeps_every_field(tmp_path):
    """Later batches with new fields, other types and explicit nulls round-trip through `_extra`."""
    first = [{"id": f"a{i}", "x": i, "name": "s", "emb": np.ones((2, 2), np.float32)} for i in range(3)]
    later = [
        {"id": "b0", "x": "not an int", "name": None, "new": {"deep": [1, 2]}, "emb": [[1, 2]]},
        {"id": "b1", "x": 7, "error": {"stage": "encode", "type": "X", "message": "m"}},
    ]
    path = tmp_path / "drift.parquet"
    with open(path, "wb") as sink:
        writer = ParquetRecordWriter(sink, batch_size=3)
        for record in first + later:
            writer.write(record)
        writer.close()
    assert_same_records(first + later, list(read_records(path)))


def test_bad_lines_become_error_records(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"id": "a", "x": 1}\n'
        "this is not json\n"
        "\n"
        '{"x": 2}\n'
        "[1, 2]\n"
        '{"id": 17}\n'
        '{"id": "t", "emb": {"dtype": "float32", "shape": [9], "b64": "AAAA"}}\n'
        '{"id": "b", "x": 3}\n'
    )
    records = list(read_records(path))
    assert [r["id"] for r in records] == ["a", f"{path}:2", f"{path}:4", f"{path}:5", "17", "t", "b"]
    errors = [r for r in records if has_error(r)]
    assert len(errors) == 5
    assert errors[0]["raw"] == "this is not json"
    assert f"{path}:2" in errors[0]["error"]["message"] and "not valid JSON" in errors[0]["error"]["message"]
    assert "no 'id'" in errors[1]["error"]["message"] and errors[1]["x"] == 2
    assert "expected a JSON object" in errors[2]["error"]["message"]
    assert "must be a string" in errors[3]["error"]["message"]
    assert "field 'emb'" in errors[4]["error"]["message"]
    assert all(e["error"]["stage"] == "read" for e in errors)


def test_json_array_input(tmp_path):
    path = tmp_path / "array.jsonl"
    path.write_text('  [{"id": "a"}, {"id": "b", "v": [1]}]')
    assert [r["id"] for r in read_records(path)] == ["a", "b"]
    path.write_text("[{broken")
    with pytest.raises(RecordStreamError, match="not a valid JSON array"):
        list(read_records(path))


def test_truncated_parquet_names_the_file(tmp_path):
    path = tmp_path / "good.parquet"
    with RecordWriter(path) as writer:
        for record in sample_records(20):
            writer.write(record)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RecordStreamError, match=r"cut\.parquet: not a complete Parquet file"):
        list(read_records(cut))


def test_missing_file():
    with pytest.raises(RecordStreamError, match="cannot open /no/such/file.jsonl"):
        list(read_records("/no/such/file.jsonl"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_stdin_and_stdout(monkeypatch, fmt, tmp_path):
    records = sample_records(3)
    path = tmp_path / f"x.{fmt}"
    with RecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(path.read_bytes()))))
    got = list(read_records("-"))
    assert_same_records(records, got)

    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    with RecordWriter("-", fmt=fmt) as writer:
        for record in got:
            writer.write(record)
    assert buffer.getvalue() == path.read_bytes() or fmt == "parquet"
    if fmt == "parquet":
        out = tmp_path / "from_stdout.parquet"
        out.write_bytes(buffer.getvalue())
        assert_same_records(records, list(read_records(out)))


def test_map_records_keeps_counts_and_passes_errors_through():
    def process(record):
        if record["x"] == 2:
            raise ValueError("field 'x': two is not allowed")
        return {**record, "y": record["x"] * 10}

    records = [{"id": str(i), "x": i} for i in range(5)]
    records[4]["error"] = {"stage": "earlier", "type": "E", "message": "m"}
    summary = StreamSummary("test")
    out = list(map_records(records, process, "test", summary))
    assert len(out) == 5
    assert [r.get("y") for r in out] == [0, 10, None, 30, None]
    assert out[2]["error"] == {"stage": "test", "type": "ValueError", "message": "field 'x': two is not allowed"}
    assert out[4]["error"]["stage"] == "earlier"  # passed through untouched
    assert (summary.records_in, summary.records_out, summary.failed_here, summary.failed_before) == (5, 5, 1, 1)
    assert "5 records in, 5 out, 2 failed (1 here, 1 passed through)" in summary.describe()


def test_reading_streams_in_flat_memory(tmp_path):
    """Memory while reading does not grow with the number of records."""
    line = orjson.dumps({"id": "x" * 20, "response": "The key is F# minor." * 5, "reference": {"key": "F# minor"}})

    def peak_while_reading(n: int) -> int:
        path = tmp_path / f"n{n}.jsonl"
        path.write_bytes((line + b"\n") * n)
        tracemalloc.start()
        count = sum(1 for _ in read_records(path))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == n
        return peak

    small, large = peak_while_reading(2_000), peak_while_reading(40_000)
    assert large < 2 * small + 200_000, (small, large)


def test_read_jsonl_without_peek_support():
    """A plain stream (no peek) is wrapped, so detection still works."""

    class Plain(io.RawIOBase):
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            chunk = self.data.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    stream = io.BufferedReader(Plain(b'{"id": "a"}\n{"id": "b"}\n'))
    assert [r["id"] for r in read_jsonl(stream, "plain")] == ["a", "b"]


def test_count_records_is_what_read_records_yields(tmp_path, monkeypatch):
    from mllm.core.io.records import count_records

    jsonl = tmp_path / "a.jsonl"
    # blank lines, a malformed line (an error record, so it counts), no final newline
    jsonl.write_bytes(b'{"id": "a"}\n\n   \n{"id": "b"}\nnot json\n{"id": "c", "x": "' + b"y" * 100 + b'"}')
    assert count_records(jsonl) == len(list(read_records(jsonl))) == 4
    with_bom = tmp_path / "bom.jsonl"
    with_bom.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n{"id": "b"}\n')
    assert count_records(with_bom) == len(list(read_records(with_bom))) == 2
    parquet = tmp_path / "b.parquet"
    with RecordWriter(str(parquet)) as writer:
        for i in range(7):
            writer.write({"id": f"r{i}", "v": i})
    assert count_records(parquet) == 7
    array = tmp_path / "c.json"
    array.write_text('[{"id": "a"}, {"id": "b"}]')
    assert count_records(array) is None  # a JSON array is not counted without parsing it
    assert count_records("-") is None and count_records(tmp_path / "missing.jsonl") is None
    assert count_records(tmp_path) is None
    from mllm.core.io import records

    monkeypatch.setattr(records, "COUNT_LINES_UP_TO", jsonl.stat().st_size - 1)  # too large to count in passing
    assert count_records(jsonl) is None and count_records(parquet) == 7


def test_record_total_counts_only_when_a_bar_is_drawn(tmp_path, monkeypatch):
    from rich.console import Console

    from mllm.cli import common

    path = tmp_path / "a.jsonl"
    path.write_text("".join(f'{{"id": "r{i}"}}\n' for i in range(10)))
    monkeypatch.setattr(common, "console", Console(file=io.StringIO(), force_terminal=True))
    assert common.record_total(str(path)) == 10
    assert common.record_total(str(path), skip=3) == 7
    assert common.record_total(str(path), shard=(1, 4)) == 3  # records 1, 5, 9
    assert common.record_total("-") is None
    monkeypatch.setattr(common, "console", Console(file=io.StringIO(), force_terminal=False))
    assert common.record_total(str(path)) is None
