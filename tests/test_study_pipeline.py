"""The study of the issue, end to end through the CLI on the labelled corpus with a tiny LLM:
synth -> encode (DSP) -> build-instructions (energy, brightness on 1-9) -> sft -> regress -> eval-mir.
The loss falls, every record gets a prediction (parsed or visibly not), and eval-mir scores them."""

from __future__ import annotations

import json

import numpy as np
import orjson
from typer.testing import CliRunner

from mllm.cli.main import app
from tiny_llm import build_tiny_llm

runner = CliRunner()


def invoke(*args, expect=0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
    return result


def test_encode_instructions_sft_regress_eval(tmp_path):
    invoke("synth", tmp_path / "corpus", "--n", 16, "--seconds", 3, "--sample-rate", 16000, "--seed", 4)
    invoke("encode", tmp_path / "corpus" / "manifest.jsonl", "--encoder", "dsp", "--frame-rate", 1,
           "-o", tmp_path / "enc.jsonl")
    invoke("build-instructions", tmp_path / "enc.jsonl", "--tasks", "energy,brightness", "-o", tmp_path / "instr.jsonl")
    instructions = [orjson.loads(line) for line in (tmp_path / "instr.jsonl").read_bytes().splitlines()]
    assert {r["task"] for r in instructions} == {"energy", "brightness"} and len(instructions) == 32

    llm = build_tiny_llm(tmp_path / "llm")
    result = invoke("sft", tmp_path / "instr.jsonl", "--llm", llm, "-o", tmp_path / "ckpt", "--steps", 40,
                    "--batch-size", 4, "--lr", 1e-2, "--warmup", 2, "--no-bf16", "--device", "cpu")
    losses = [orjson.loads(line)["loss"] for line in result.stdout.splitlines()]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses  # 8.0 -> 5.5 when written

    invoke("regress", tmp_path / "instr.jsonl", "--model", tmp_path / "ckpt", "--targets", "task",
           "--max-new-tokens", 24, "--split", "test", "-o", tmp_path / "pred.jsonl")
    predicted = [orjson.loads(line) for line in (tmp_path / "pred.jsonl").read_bytes().splitlines()]
    assert [r["id"] for r in predicted] == [r["id"] for r in instructions]
    test = [r for r in predicted if r["split"] == "test"]
    assert test and all(r == i for r, i in zip(predicted, instructions) if i["split"] != "test")  # passed through
    for record in test:
        prediction = record["prediction"]
        value = prediction[record["task"]]
        assert (value is None) == (not prediction["parse_ok"][record["task"]])
        assert value is None or 1 <= value <= 9  # clipped to the task's scale

    summary = json.loads(invoke("eval-mir", tmp_path / "pred.jsonl", "--split", "test").stdout)
    assert summary["split"] == "test" and summary["not_scored"]["other_splits"] == {
        split: sum(r["split"] == split for r in instructions) for split in ("train", "valid") if
        any(r["split"] == split for r in instructions)}
    for task in ("energy", "brightness"):
        scores = summary["tasks"][task]
        assert scores["task_type"] == "regression" and scores["split"] == "test"
        assert scores["n"] == sum(r["task"] == task for r in test)
        assert scores["n_parsed"] == sum(r["prediction"]["parse_ok"][task] for r in test if r["task"] == task)
        if scores["n_parsed"] >= 2:
            assert "rmse" in scores["metrics"]
