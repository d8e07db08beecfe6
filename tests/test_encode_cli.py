"""`mllm encode` end to end: files and stdin, Parquet, exit codes, a model folder with a cache, torchrun ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile

import encoder_models
from mllm.core.io.records import read_records

ROOT = Path(__file__).resolve().parents[1]


def run(*args, stdin: bytes | None = None, env: dict | None = None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mllm.cli", "encode", *map(str, args)],
        input=stdin, capture_output=True, cwd=cwd or ROOT, env={**os.environ, **(env or {})},
    )


@pytest.fixture()
def clips(tmp_path):
    rate = 16000
    for name, seconds in [("a.wav", 1.5), ("b.wav", 0.8), ("c.wav", 1.0)]:
        t = np.arange(int(seconds * rate)) / rate
        soundfile.write(tmp_path / name, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), rate)
    records = [
        {"id": "a", "audio": "a.wav"},
        {"id": "b", "audio": "b.wav", "start": 0.2},
        {"id": "c", "audio": "c.wav"},
        {"id": "gone", "audio": "gone.wav"},
    ]
    path = tmp_path / "clips.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_jsonl_in_and_out_with_an_error_record(clips, tmp_path):
    result = run(clips.name, "--frame-rate", "4", cwd=tmp_path)
    assert result.returncode == 1, result.stderr.decode()
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in lines] == ["a", "b", "c", "gone"]
    assert lines[0]["audio_embedding"]["shape"] == [6, 39] and lines[0]["audio_embedding"]["dtype"] == "float16"
    assert lines[1]["audio_embedding"]["shape"] == [3, 39]  # 0.6 s at 4 Hz
    assert lines[0]["encoder"] == "dsp" and lines[0]["frame_rate"] == 4.0 and lines[0]["layer"] is None
    assert lines[3]["error"]["stage"] == "encode"
    stderr = result.stderr.decode()
    assert "4 records in, 4 out, 1 failed" in stderr and "gone" in stderr
    assert run(clips.name, "--allow-errors", cwd=tmp_path).returncode == 0


def test_stdin_to_parquet(clips, tmp_path):
    out = tmp_path / "enc.parquet"
    result = run("-", "-o", out, "--encoder", "chroma+onset+loudness", "--allow-errors", stdin=clips.read_bytes(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert out.read_bytes()[:4] == b"PAR1"
    back = list(read_records(out))
    assert back[2]["audio_embedding"].shape == (10, 14) and back[2]["encoder"] == "chroma+onset+loudness"


def test_model_folder_with_layer_and_cache(clips, tmp_path):
    model = encoder_models.hubert(tmp_path / "hubert")
    args = [clips.name, "--encoder", model, "--layer", "1,2", "--cache", tmp_path / "cache", "--batch-size", "2", "--device", "cpu", "--allow-errors"]
    first = run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr.decode()
    assert "0 hits, 3 misses" in first.stderr.decode()
    second = run(*args, cwd=tmp_path)
    assert "3 hits, 0 misses" in second.stderr.decode()
    assert second.stdout == first.stdout
    record = orjson.loads(first.stdout.splitlines()[0])
    assert record["layer"] == [1, 2] and record["encoder"] == str(model) and record["audio_embedding"]["shape"] == [15, 32]


def test_torchrun_ranks_write_their_own_files(clips, tmp_path):
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    result = run(clips.name, "-o", "out/emb.jsonl", "--allow-errors", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    written = list(read_records(tmp_path / "out" / "emb.rank1-of-2.jsonl"))
    assert [r["id"] for r in written] == ["b", "gone"]
    assert run(clips.name, env=env, cwd=tmp_path).returncode == 2  # stdout cannot hold two ranks


@pytest.mark.parametrize(
    "options, message",
    [
        (["--layer", "3"], "no layers"),
        (["--shard", "3/2"], "shard"),
        (["--frame-rate", "-1"], "--frame-rate"),
        (["--store-dtype", "int8"], "store dtype"),
        (["--encoder", "./no-such-model"], "no such model folder"),
        (["--encoder", "mfcc+chroma"], "Hugging Face hub"),
    ],
)
def test_bad_options_exit_2(clips, tmp_path, options, message):
    result = run(clips.name, *options, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and message in result.stderr.decode(), result.stderr.decode()
    assert result.stdout == b""


def test_help_shows_examples():
    result = subprocess.run([sys.executable, "-m", "mllm.cli", "encode", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "mllm encode clips.jsonl" in result.stdout
    assert "encode" in subprocess.run([sys.executable, "-m", "mllm.cli", "--help"], capture_output=True, text=True, cwd=ROOT).stdout
