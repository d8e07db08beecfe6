"""The record contract, fuzzed: malformed streams through every subcommand, in process.

Hypothesis writes a stream whose lines mix good records (with real audio, real embeddings, real
answers) with the ways a stream goes wrong: text that is not JSON, JSON that is not an object, no
id or a non-string id, tensors with negative, fractional, huge or mismatched shapes, bad base64,
NaN/Infinity, integers past 64 bits, a byte order mark, blank lines, records that failed upstream.
Each command must then keep the contract of docs/records.md:
- it runs (the file exists and the options are good, so exit 2 would be a stream given up on
  because of one record) and exits 1 exactly when some record came out with an `error`, else 0;
- stdout parses as records, one per record in (blank lines are not records), in order, with their
  ids (a line without one gets `<file>:<line>`); no traceback on stderr.
sft, which writes metrics rather than records, exits 1 on error records (without --allow-errors)
and 2 when no record is left to train on.
"""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import orjson
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.records import read_records
from tiny_llm import build_tiny_llm

runner = CliRunner()
DIM = 6  # embedding width of the tiny checkpoint
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with a short wav and a tiny trained checkpoint whose encoder is 6 wide."""
    from mllm.core.train import SFTConfig, setup, train

    folder = tmp_path_factory.mktemp("contract")
    rate = 16000
    t = np.arange(rate // 2) / rate
    soundfile.write(folder / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    llm = build_tiny_llm(folder / "llm")
    rng = np.random.default_rng(0)
    train_records = [{"id": f"t{i}", "split": "train", "encoder": "dsp", "frame_rate": 1.0,
                      "audio_embedding": rng.normal(size=(2, DIM)).astype(np.float32),
                      "messages": [{"role": "user", "content": "<audio>\nWhat key?"},
                                   {"role": "assistant", "content": "The key is A minor."}]} for i in range(4)]
    for _ in train(setup(SFTConfig(llm=str(llm), lora_rank=2, lora_alpha=4, batch_size=2, steps=1,
                                   output=str(folder / "ckpt")), train_records)):
        pass
    return folder


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()


@st.composite
def good_record(draw, index: int) -> dict:
    frames = draw(st.integers(1, 3))
    embedding = np.full((frames, DIM), 0.5, dtype=np.float32)
    key = draw(st.sampled_from(["A minor", "C major", "F# minor"]))
    split = draw(st.sampled_from(["train", "test"]))
    record = {"id": f"g{index}", "audio": "a.wav", "task": "key", "split": split, "encoder": "dsp",
              "frame_rate": 1.0, "labels": {"key": key},
              "audio_embedding": {"dtype": "float32", "shape": [frames, DIM], "b64": b64(embedding)},
              "messages": [{"role": "user", "content": "<audio>\nWhat key is this?"},
                           {"role": "assistant", "content": f"The key is {key}."}],
              "response": draw(st.sampled_from([f"The key is {key}.", "no idea", ""])),
              "reference": key}
    if draw(st.booleans()):
        record["error"] = {"stage": "earlier", "type": "E", "message": "failed upstream"}
    return record


def bad_tensor(draw) -> dict:
    shape = draw(st.sampled_from([[-4, -39], [2**32, 2**32], [4.7, DIM], [1, DIM + 1], "x", None, [True, DIM]]))
    data = draw(st.sampled_from([b64(np.zeros((1, DIM), np.float32)), "not base64!", 7]))
    dtype = draw(st.sampled_from(["float32", "complex64", 3]))
    return {"dtype": dtype, "shape": shape, "b64": data}


@st.composite
def stream(draw) -> tuple[bytes, list[str]]:
    """(the bytes of a JSONL stream, the id each record must come out with)"""
    lines, ids = [], []
    for index in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["good", "good", "good", "not json", "not object", "no id", "int id",
                                     "bad tensor", "nan", "big int", "blank"]))
        where = f"stream.jsonl:{index + 1}"
        if kind == "good":
            record = draw(good_record(index))
            lines.append(orjson.dumps(record))
            ids.append(record["id"])
        elif kind == "not json":
            lines.append(draw(st.sampled_from([b"{", b'{"id": "x",', b"\xff\xfe garbage", b"nul\x00l"])))
            ids.append(where)
        elif kind == "not object":
            # (a stream that opens with `[` is read as one JSON array: CMI-Bench's result files)
            lines.append(draw(st.sampled_from([b'"text"', b"42", b"null", *([b"[1, 2]"] if ids else [])])))
            ids.append(where)
        elif kind == "no id":
            lines.append(b'{"audio": "a.wav", "task": "key"}')
            ids.append(where)
        elif kind == "int id":
            lines.append(b'{"id": 17, "audio": "a.wav"}')
            ids.append("17")
        elif kind == "bad tensor":
            record = {**draw(good_record(index)), "audio_embedding": bad_tensor(draw)}
            lines.append(orjson.dumps(record))
            ids.append(record["id"])
        elif kind == "nan":
            lines.append(json.dumps({"id": f"n{index}", "task": "arousal", "response": "5", "reference": float("nan")}).encode())
            ids.append(f"n{index}")
        elif kind == "big int":
            lines.append(json.dumps({"id": f"b{index}", "frame_rate": 2**70}).encode())
            ids.append(f"b{index}")
        else:
            lines.append(b"   ")
    data = b"\n".join(lines) + b"\n"
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data, ids


def check_contract(result, ids: list[str]) -> None:
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    out = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["id"] for r in out] == ids
    failed = any(r.get("error") for r in out)
    assert result.exit_code == (1 if failed else 0), (result.exit_code, [r.get("error") for r in out])


def run_on(world, data: bytes, *args):
    (world / "stream.jsonl").write_bytes(data)
    return runner.invoke(app, [*args[:1], "stream.jsonl", *map(str, args[1:])],  # the cwd is `world`
                         env={"MLLM_THREADS": "1"})


@pytest.fixture()
def in_world(world, monkeypatch):
    monkeypatch.chdir(world)  # records name their audio "a.wav"
    return world


@SETTINGS
@given(case=stream())
def test_encode(in_world, case):
    data, ids = case
    check_contract(run_on(in_world, data, "encode", "--encoder", "loudness", "--frame-rate", 2), ids)


@SETTINGS
@given(case=stream())
def test_extract_features(in_world, case):
    data, ids = case
    check_contract(run_on(in_world, data, "extract-features"), ids)


@SETTINGS
@given(case=stream())
def test_caption(in_world, case):
    data, ids = case
    check_contract(run_on(in_world, data, "caption", "--model", in_world / "ckpt", "--max-new-tokens", 3), ids)


@SETTINGS
@given(case=stream())
def test_regress(in_world, case):
    data, ids = case
    check_contract(run_on(in_world, data, "regress", "--model", in_world / "ckpt", "--targets", "arousal",
                          "--max-new-tokens", 3), ids)


@SETTINGS
@given(case=stream())
def test_eval_mir_per_item(in_world, case):
    data, ids = case
    check_contract(run_on(in_world, data, "eval-mir", "--per-item", "--bootstrap", 0), ids)


@SETTINGS
@given(case=stream())
def test_eval_caption_per_item(in_world, case):
    data, ids = case
    check_contract(run_on(in_world, data, "eval-caption", "--per-item", "--metrics", "bleu,rouge", "--bootstrap", 0), ids)


@SETTINGS
@given(case=stream())
def test_eval_mir_summary_counts_every_record(in_world, case):
    data, ids = case
    result = run_on(in_world, data, "eval-mir", "--bootstrap", 0)
    assert result.exit_code in (0, 1) and "Traceback" not in result.stderr, (result.exit_code, result.stderr)
    orjson.loads(result.stdout)  # one JSON document
    assert f"{len(ids)} records in, {len(ids)} out" in " ".join(result.stderr.split())


@SETTINGS
@given(case=stream())
def test_build_instructions(in_world, case):
    """One input record may give several instruction records, or none (no label for the task):
    every input id appears, failed records once, and the exit code follows the errors."""
    data, ids = case
    result = run_on(in_world, data, "build-instructions", "--tasks", "key", "--leakage-check", "off")
    assert result.exit_code in (0, 1) and "Traceback" not in result.stderr, (result.exit_code, result.stderr)
    out = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    failed = [r for r in out if r.get("error")]
    assert result.exit_code == (1 if failed else 0)
    assert {r["id"] for r in failed} <= set(ids)


@SETTINGS
@given(case=stream())
def test_sft_refuses_or_trains(in_world, case, tmp_path_factory):
    """sft writes metrics, not records: it stops before training with exit 1 when input records
    carry errors (unless --allow-errors), exit 2 when no training record is left, and trains
    otherwise; never a traceback."""
    data, ids = case
    output = tmp_path_factory.mktemp("sft") / "ckpt"
    (in_world / "stream.jsonl").write_bytes(data)
    records = list(read_records(in_world / "stream.jsonl"))
    failed = any(r.get("error") for r in records)
    usable = [r for r in records if not r.get("error")]
    incomplete = any("audio_embedding" not in r or "messages" not in r for r in usable)  # exit 2: say what is missing
    trains = 0 if not incomplete and any(r.get("split") == "train" for r in usable) else 2
    for extra, expected in (([], 1 if failed else trains), (["--allow-errors"], trains)):
        result = run_on(in_world, data, "sft", "--llm", in_world / "llm", "-o", output, "--steps", 1,
                        "--batch-size", 2, "--lora-rank", 2, "--no-bf16", *extra)
        assert result.exit_code == expected, (extra, result.exit_code, result.stderr, result.exception)
        assert "Traceback" not in result.stderr
        assert (output / "config.json").is_file() == (expected == 0)
        shutil.rmtree(output, ignore_errors=True)
