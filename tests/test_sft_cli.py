"""`mllm sft` end to end: synth -> encode (DSP) -> build-instructions --tasks key -> sft on a tiny LLM;
Ctrl-C saves a checkpoint and exits 130; --resume continues with the losses of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from tiny_llm import build_tiny_llm

runner = CliRunner()


def invoke(*args, expect=0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> tuple[Path, Path]:
    """(instruction records with DSP embeddings, tiny LLM folder)."""
    folder = tmp_path_factory.mktemp("sft-cli")
    invoke("synth", folder / "corpus", "--n", 12, "--seconds", 3, "--sample-rate", 16000, "--seed", 1)
    invoke("encode", folder / "corpus" / "manifest.jsonl", "--encoder", "chroma+onset+loudness", "--frame-rate", 2,
           "-o", folder / "enc.jsonl")
    invoke("build-instructions", folder / "enc.jsonl", "--tasks", "key", "-o", folder / "instructions.jsonl")
    return folder / "instructions.jsonl", build_tiny_llm(folder / "tiny-llm")


def metrics(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_sft_writes_metrics_and_a_checkpoint(pipeline, tmp_path):
    records, llm = pipeline
    result = invoke("sft", records, "--llm", llm, "-o", tmp_path / "ckpt", "--steps", 4, "--batch-size", 4,
                    "--val-every", 2, "--lr", 1e-2, "--no-bf16")
    rows = metrics(result.stdout)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all({"step", "epoch", "loss", "lr", "tokens_per_s"} <= set(r) for r in rows)
    assert "val_loss" in rows[1] and "val_loss" in rows[3]
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["encoder"]["name"] == "chroma+onset+loudness" and config["llm"] == str(llm.resolve())
    assert (tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "ckpt" / "trainer_state.json").read_text())["step"] == 4


def test_help_and_bad_input(pipeline, tmp_path):
    help_text = invoke("sft", "--help").stdout
    assert "mllm sft" in help_text and "--extend-to" in help_text
    assert "--resume runs/key --steps" not in help_text  # refused now: the example would fail
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"id": "a", "messages": []}\n')
    result = invoke("sft", plain, "--llm", pipeline[1], expect=2)
    assert "audio_embedding" in result.stderr


def test_ctrl_c_saves_and_resume_matches_an_uninterrupted_run(pipeline, tmp_path):
    records, llm = pipeline
    common = [sys.executable, "-m", "mllm.cli", "sft", str(records), "--llm", str(llm), "--steps", "300",
              "--batch-size", "2", "--lr", "1e-3", "--no-bf16", "--seed", "5"]
    whole = subprocess.run(common + ["-o", str(tmp_path / "whole")], capture_output=True, text=True, check=True)
    expected = {r["step"]: r["loss"] for r in metrics(whole.stdout)}
    process = subprocess.Popen(common + ["-o", str(tmp_path / "cut")], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    seen = []
    for line in process.stdout:
        seen.append(orjson.loads(line))
        if seen[-1]["step"] == 20:
            process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    stopped = json.loads((tmp_path / "cut" / "trainer_state.json").read_text())["step"]
    assert 20 <= stopped < 300 and seen[-1]["step"] == stopped
    resumed = subprocess.run(common + ["-o", str(tmp_path / "cut"), "--resume", str(tmp_path / "cut")],
                             capture_output=True, text=True, check=True)
    rows = metrics(resumed.stdout)
    assert rows[0]["step"] == stopped + 1 and rows[-1]["step"] == 300
    np.testing.assert_allclose([r["loss"] for r in rows], [expected[r["step"]] for r in rows], rtol=1e-4, atol=1e-5)
