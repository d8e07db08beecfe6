"""The record contract under bad input and faults (issue 8): outputs that cannot destroy or fake
data, a bad record that fails alone, options refused up front, a broken pipe that ends quietly."""

from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.errors import StreamSummary, map_records
from mllm.core.io.parquet import TENSOR_TYPE
from mllm.core.io.records import RecordStreamError, RecordWriter, check_output_is_not_input, partial_path, read_records

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args, expect=None):
    result = runner.invoke(app, [*map(str, args)])
    if expect is not None:
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def mllm(*args, stdin=None, cwd=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "mllm.cli", *map(str, args)], stdin=stdin, capture_output=True,
                          cwd=cwd or ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, **kwargs)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def tensor(shape, data: bytes = b"\0" * 8) -> dict:
    return {"dtype": "float32", "shape": shape, "b64": base64.b64encode(data).decode()}


@pytest.fixture()
def clips(tmp_path) -> Path:
    rate = 16000
    t = np.arange(rate) / rate
    soundfile.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), rate)
    return write_jsonl(tmp_path / "clips.jsonl", [{"id": f"c{i}", "audio": str(tmp_path / "a.wav")} for i in range(3)])


@pytest.fixture()
def answers(tmp_path) -> Path:
    return write_jsonl(tmp_path / "answers.jsonl", [
        {"id": f"k{i}", "task": "key", "response": f"The key is {key}.", "reference": key}
        for i, key in enumerate(["A minor", "C major", "F# minor", "A minor"])
    ])


# ---------------------------------------------------------------- 1. outputs that cannot destroy or fake data


@pytest.mark.parametrize("command", [
    ["encode", "{clips}", "-o", "{clips}"],
    ["extract-features", "{clips}", "-o", "{clips}"],
    ["eval-mir", "{answers}", "--per-item", "-o", "{answers}"],
    ["eval-mir", "{answers}", "-o", "{answers}"],
    ["eval-mir", "{answers}", "--compare", "{clips}", "-o", "{clips}"],
    ["eval-caption", "{answers}", "--per-item", "-o", "{answers}"],
    ["build-instructions", "{clips}", "--tasks", "key", "-o", "{clips}"],
    ["caption", "{answers}", "--model", "no-model-needed", "-o", "{answers}"],
    ["regress", "{answers}", "--method", "probe", "-o", "{answers}"],
])
def test_output_naming_an_input_is_refused_before_anything_is_opened(command, clips, answers):
    before = {p: p.read_bytes() for p in (clips, answers)}
    args = [part.format(clips=clips, answers=answers) for part in command]
    result = invoke(*args, expect=2)
    assert "is the input" in result.stderr and "destroy" in result.stderr
    assert {p: p.read_bytes() for p in (clips, answers)} == before
    assert not partial_path(clips).exists() and not partial_path(answers).exists()


def test_output_is_input_under_another_name_or_through_stdin(clips, tmp_path):
    os.symlink(clips, tmp_path / "link.jsonl")
    before = clips.read_bytes()
    assert invoke("encode", clips, "-o", tmp_path / "link.jsonl", expect=2)
    assert invoke("encode", tmp_path / "." / "clips.jsonl", "-o", clips, expect=2)
    with open(clips, "rb") as stdin:  # `mllm encode - -o clips.jsonl < clips.jsonl`
        result = mllm("encode", "-", "-o", clips, stdin=stdin)
    assert result.returncode == 2 and b"is the input -" in result.stderr
    with open(clips, "rb") as stdin, open(clips, "ab") as stdout:  # `mllm encode - < clips.jsonl >> clips.jsonl`
        result = subprocess.run([sys.executable, "-m", "mllm.cli", "encode", "-"], stdin=stdin, stdout=stdout,
                                stderr=subprocess.PIPE, cwd=ROOT)
    assert result.returncode == 2 and b"output stdout is the input" in result.stderr
    assert clips.read_bytes() == before
    with pytest.raises(RecordStreamError):
        check_output_is_not_input(str(clips), [str(tmp_path / "link.jsonl")])
    check_output_is_not_input(str(tmp_path / "new.jsonl"), [str(clips), None, "-"])  # no error


def test_a_failed_writer_leaves_the_previous_file_and_no_partial(tmp_path):
    dest = tmp_path / "out.jsonl"
    dest.write_bytes(b'{"id": "old"}\n')
    with pytest.raises(RuntimeError):
        with RecordWriter(dest) as writer:
            writer.write({"id": "new"})
            assert partial_path(dest).exists() and dest.read_bytes() == b'{"id": "old"}\n'
            raise RuntimeError("the command failed half way")
    assert dest.read_bytes() == b'{"id": "old"}\n' and not partial_path(dest).exists()
    with RecordWriter(dest, keep_partial=True) as writer:
        writer.write({"id": "a"})
        writer.abandon()  # a resumable command keeps its partial output
    assert partial_path(dest).read_bytes() == b'{"id":"a"}\n' and dest.read_bytes() == b'{"id": "old"}\n'
    with RecordWriter(dest) as writer:
        writer.write({"id": "new"})
    assert dest.read_bytes() == b'{"id":"new"}\n' and not partial_path(dest).exists()


def test_a_second_writer_of_the_same_file_is_refused(tmp_path):
    with RecordWriter(tmp_path / "out.jsonl") as first:
        first.write({"id": "a"})
        with pytest.raises(RecordStreamError, match="another process is writing"):
            RecordWriter(tmp_path / "out.jsonl")
    assert [r["id"] for r in read_records(tmp_path / "out.jsonl")] == ["a"]


def test_special_destinations_are_written_in_place(tmp_path):
    with RecordWriter(os.devnull) as writer:  # a rename would replace /dev/null itself
        writer.write({"id": "a"})
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert not partial_path(os.devnull).exists()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_sigkill_while_writing_never_leaves_a_file_that_reads_as_complete(suffix, tmp_path):
    """A killed `mllm encode -o out` leaves out as it was (absent here), its records so far in out.partial."""
    rate = 16000
    soundfile.write(tmp_path / "a.wav", np.zeros(rate // 4, dtype=np.float32), rate)
    write_jsonl(tmp_path / "clips.jsonl", [{"id": f"c{i}", "audio": "a.wav"} for i in range(20000)])
    out = tmp_path / f"out{suffix}"
    process = subprocess.Popen([sys.executable, "-m", "mllm.cli", "encode", "clips.jsonl", "--encoder", "loudness",
                                "--frame-rate", "1", "-o", out.name], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    partial = partial_path(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 0):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert partial.exists() and partial.stat().st_size > 0, "the run ended before it was killed: make it longer"
    assert not out.exists()
    if suffix == ".parquet":  # a Parquet file without its footer is refused as a whole, never read as 0 records
        with pytest.raises(RecordStreamError, match="not a complete Parquet file"):
            list(read_records(partial))


def test_outputs_get_the_users_permissions(tmp_path, answers):
    labelled = write_jsonl(tmp_path / "labelled.jsonl", [
        {"id": f"x{i}", "audio": f"x{i}.wav", "labels": {"key": "A minor"}} for i in range(3)])
    old = os.umask(0o022)
    try:
        invoke("eval-mir", answers, "--per-item", "--bootstrap", "0", "-o", tmp_path / "scored.jsonl", expect=0)
        invoke("eval-mir", answers, "--bootstrap", "0", "-o", tmp_path / "summary.json", expect=0)
        invoke("build-instructions", labelled, "--tasks", "key", "-o", tmp_path / "instructions.jsonl", expect=0)
    finally:
        os.umask(old)
    for name in ("scored.jsonl", "summary.json", "instructions.jsonl"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


# ---------------------------------------------------------------- 2. reading: one bad record fails alone


@pytest.mark.parametrize("shape", [[-4, -39], [2**32, 2**32], [4.7, 39], [2.0, 1], [True, 2], "2x1", None])
def test_bad_tensor_shapes_are_error_records_naming_record_and_field(tmp_path, shape):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "before", "x": 1}, {"id": "bad", "audio_embedding": tensor(shape)}, {"id": "after", "x": 2}])
    records = list(read_records(path))
    assert [r["id"] for r in records] == ["before", "bad", "after"]
    assert "error" not in records[0] and "error" not in records[2]
    error = records[1]["error"]
    assert error["stage"] == "read" and error["type"] == "BadTensor"
    assert "'bad'" in error["message"] and "audio_embedding" in error["message"] and "in.jsonl:2" in error["message"]


def test_bad_tensor_shapes_in_parquet_fail_alone(tmp_path):
    cells = [{"dtype": "float32", "shape": [2, 1], "data": b"\0" * 8},
             {"dtype": "float32", "shape": [-4, -39], "data": b"\0" * 8},
             {"dtype": "float32", "shape": [2**32, 2**32], "data": b"\0" * 8}]
    pq.write_table(pa.table({"id": ["ok", "negative", "huge"], "audio_embedding": pa.array(cells, TENSOR_TYPE)}),
                   tmp_path / "in.parquet")
    records = list(read_records(tmp_path / "in.parquet"))
    assert [r["id"] for r in records] == ["ok", "negative", "huge"]
    assert records[0]["audio_embedding"].shape == (2, 1) and "error" not in records[0]
    for record in records[1:]:
        assert record["error"]["type"] == "BadTensor" and "audio_embedding" in record["error"]["message"]
        assert repr(record["id"]) in record["error"]["message"]


def test_parquet_ids_must_be_strings_and_extra_must_be_an_object(tmp_path):
    pq.write_table(pa.table({"id": [1, 2, 3], "_extra": [None, "[1, 2]", '{"note": "kept"}']}), tmp_path / "in.parquet")
    records = list(read_records(tmp_path / "in.parquet"))
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert records[0]["error"]["type"] == "BadId" and "must be a string" in records[0]["error"]["message"]
    assert records[1]["error"]["type"] == "ValueError" and "'_extra'" in records[1]["error"]["message"]
    assert records[2]["note"] == "kept" and records[2]["error"]["type"] == "BadId"
    pq.write_table(pa.table({"id": ["a"], "_extra": ['{"emb": ' + orjson.dumps(tensor([2, 1])).decode() + "}"]}),
                   tmp_path / "extra.parquet")
    (record,) = read_records(tmp_path / "extra.parquet")  # a tensor kept in _extra is decoded as in JSONL
    assert isinstance(record["emb"], np.ndarray) and record["emb"].shape == (2, 1)


def test_byte_order_mark_and_python_json_constants(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "first", "x": 1}\n'
                     b'{"id": "nan", "prediction": {"arousal": NaN}}\n'
                     b'{"id": "inf", "score": -Infinity, "big": 123456789012345678901234567890}\n'
                     b'{"id": "last"}\n')
    records = list(read_records(path))
    assert [r["id"] for r in records] == ["first", "nan", "inf", "last"]
    assert records[0] == {"id": "first", "x": 1}
    assert records[1]["error"]["type"] == "UnportableNumber" and "prediction.arousal" in records[1]["error"]["message"]
    assert "score" in records[2]["error"]["message"] and "big" in records[2]["error"]["message"]
    assert records[1]["raw"] == '{"id": "nan", "prediction": {"arousal": NaN}}'  # the line is kept
    array = tmp_path / "array.json"
    array.write_bytes(b'\xef\xbb\xbf[{"id": "a"}, {"id": "b"}]')
    assert [r["id"] for r in read_records(array)] == ["a", "b"]


def test_summary_names_the_failed_records_with_their_reason(tmp_path, answers):
    lines = answers.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(lines[0] + b'{"id": "upstream", "task": "key", "error": {"stage": "caption", "type": "OOM", '
                       b'"message": "out of memory"}}\n' + b"not json\n" + b"".join(lines[1:]))
    result = invoke("eval-mir", broken, "--bootstrap", "0", expect=1)
    stderr = " ".join(result.stderr.split())
    assert "2 failed (1 here, 1 passed through)" in stderr
    assert "upstream: caption (from an earlier stage): OOM: out of memory" in stderr
    assert "broken.jsonl:3: read: JSONDecodeError" in stderr


def test_a_read_error_counts_as_a_failure_of_this_command():
    records = [{"id": "a", "x": 1}, *read_records_from_bytes(b'{"id": "b", "e": {"dtype": "float32", "shape": [-1], "b64": ""}}\n')]
    summary = StreamSummary("test")
    list(map_records(records, lambda r: r, "test", summary))
    assert (summary.failed_here, summary.failed_before) == (1, 0)


def read_records_from_bytes(data: bytes) -> list[dict]:
    import io

    from mllm.core.io.jsonl import read_jsonl

    return list(read_jsonl(io.BufferedReader(io.BytesIO(data)), "mem"))


def test_broken_pipe_ends_quietly(answers, tmp_path):
    big = write_jsonl(tmp_path / "big.jsonl", [
        {"id": f"k{i}", "task": "key", "response": "The key is A minor.", "reference": "A minor"} for i in range(20000)])
    script = f"'{sys.executable}' -m mllm.cli eval-mir '{big}' --per-item --bootstrap 0 | head -n 1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, cwd=ROOT)
    assert orjson.loads(result.stdout)["id"] == "k0"
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr and b"Exception" not in result.stderr
    assert result.returncode != 0  # the output is not complete, and the exit code says so


# ---------------------------------------------------------------- 3. options refused up front


@pytest.mark.parametrize("args, named", [
    (["eval-mir", "{answers}", "--confidence", "2"], "--confidence"),
    (["eval-mir", "{answers}", "--confidence", "nan"], "--confidence"),
    (["eval-mir", "{answers}", "--bootstrap", "-5"], "--bootstrap"),
    (["eval-mir", "{answers}", "--tempo-tolerance", "-1"], "--tempo-tolerance"),
    (["eval-mir", "{answers}", "--tempo-tolerance", "inf"], "--tempo-tolerance"),
    (["eval-mir", "{answers}", "--beat-trim", "nan"], "--beat-trim"),
    (["eval-mir", "{answers}", "--scale", "1,inf"], "--scale"),
    (["eval-mir", "{answers}", "--task", "no_such_task"], "--task"),
    (["eval-caption", "{answers}", "--bootstrap", "-1"], "--bootstrap"),
    (["eval-caption", "{answers}", "--confidence", "1"], "--confidence"),
    (["caption", "{answers}", "--model", "x", "--temperature", "nan"], "--temperature"),
    (["caption", "{answers}", "--model", "x", "--top-p", "0"], "--top-p"),
    (["regress", "{answers}", "--model", "x", "--temperature", "-1"], "--temperature"),
    (["encode", "{answers}", "--frame-rate", "inf"], "--frame-rate"),
    (["encode", "{answers}", "--frame-rate", "1e9"], "--frame-rate"),
    (["encode", "{answers}", "--frame-rate", "nan"], "--frame-rate"),
    (["encode", "{answers}", "--batch-size", "0"], "--batch-size"),
    (["synth", "{tmp}/corpus", "--seconds", "inf"], "--seconds"),
    (["synth", "{tmp}/corpus", "--scores-fraction", "nan"], "--scores-fraction"),
    (["build-instructions", "{answers}", "--generator", "http://127.0.0.1:9", "--generator-timeout", "nan"],
     "--generator-timeout"),
])
def test_bad_numeric_options_exit_2_naming_the_option(args, named, answers, tmp_path):
    result = invoke(*[a.format(answers=answers, tmp=tmp_path) for a in args], expect=2)
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "corpus").exists()


def test_sft_with_an_encoder_that_cannot_load_stops_at_once(clips, tmp_path):
    result = invoke("sft", clips, "--encoder", tmp_path / "no-such-model", "-o", tmp_path / "ckpt", expect=2)
    assert "no-such-model" in result.stderr and not (tmp_path / "ckpt").exists()
