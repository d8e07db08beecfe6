"""`mllm grpo` end to end: synth -> encode (DSP) -> build-instructions --tasks key -> sft -> grpo on a
tiny LLM; the aligned checkpoint answers through `mllm caption` and is scored by `mllm eval-mir`."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from test_sft_cli import invoke
from tiny_llm import build_tiny_llm



@pytest.fixture(scope="module")
def sft_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """(instruction records with DSP embeddings, an `mllm sft` checkpoint of a tiny LLM on them)."""
    folder = tmp_path_factory.mktemp("grpo-cli")
    invoke("synth", folder / "corpus", "--n", 12, "--seconds", 3, "--sample-rate", 16000, "--seed", 2)
    invoke("encode", folder / "corpus" / "manifest.jsonl", "--encoder", "chroma+onset+loudness", "--frame-rate", 2,
           "-o", folder / "enc.jsonl")
    invoke("build-instructions", folder / "enc.jsonl", "--tasks", "key", "-o", folder / "instructions.jsonl")
    llm = build_tiny_llm(folder / "tiny-llm")
    invoke("sft", folder / "instructions.jsonl", "--llm", llm, "-o", folder / "sft", "--steps", 3, "--batch-size", 4,
           "--lr", 1e-2, "--no-bf16")
    return folder / "instructions.jsonl", folder / "sft"


def test_grpo_writes_metrics_and_a_checkpoint_that_answers(sft_checkpoint, tmp_path):
    records, sft = sft_checkpoint
    result = invoke("grpo", records, "--checkpoint", sft, "-o", tmp_path / "grpo", "--steps", 2, "--group-size", 2,
                    "--batch-size", 2, "--max-new-tokens", 8, "--beta", 0.05, "--lr", 1e-2)
    rows = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward_mean", "reward_std", "reward_task", "reward_format", "parse_rate", "kl", "clip_low",
                "clip_high", "entropy", "completion_length", "truncated", "completions_per_s", "tokens_per_s"):
        assert key in rows[0], key
    assert rows[0]["kl"] == 0.0  # the policy starts as its reference, the SFT policy
    config = json.loads((tmp_path / "grpo" / "config.json").read_text())
    assert config["version"] == 2 and config["extra"]["trainer"] == "grpo" and len(config["merged"]) == 1
    answered = invoke("caption", records, "--model", tmp_path / "grpo", "--split", "test", "--max-new-tokens", 6)
    out = [orjson.loads(line) for line in answered.stdout.splitlines()]
    assert len(out) == sum(1 for _ in open(records)) and all("response" in r for r in out if r["split"] == "test")
    (tmp_path / "answers.jsonl").write_text(answered.stdout)
    summary = json.loads(invoke("eval-mir", tmp_path / "answers.jsonl", "--split", "test", "--bootstrap", "20").stdout)
    assert summary["tasks"]["key"]["n"] == sum(r["split"] == "test" for r in out)


def test_help_and_refusals(sft_checkpoint, tmp_path):
    records, sft = sft_checkpoint
    assert "--loss-type" in invoke("grpo", "--help").stdout
    for args, message in ((["--group-size", 1], "group-size"), (["--loss-type", "ppo"], "loss-type"),
                          (["--reward", "style:1"], "unknown component"), (["--epsilon", 2], "epsilon")):
        result = invoke("grpo", records, "--checkpoint", sft, "-o", tmp_path / "x", *args, expect=2)
        assert message in result.stderr
    result = invoke("grpo", records, "--checkpoint", tmp_path / "nowhere", "-o", tmp_path / "x", expect=2)
    assert "nowhere" in result.stderr
    assert "--checkpoint" in invoke("grpo", records, "-o", tmp_path / "x", expect=2).stderr


def test_resume_trains_further_and_refuses_other_options(sft_checkpoint, tmp_path):
    records, sft = sft_checkpoint
    common = ("--group-size", 2, "--batch-size", 2, "--max-new-tokens", 6)
    invoke("grpo", records, "--checkpoint", sft, "-o", tmp_path / "g", "--steps", 1, *common)
    result = invoke("grpo", records, "--resume", tmp_path / "g", "--steps", 2)
    assert [orjson.loads(line)["step"] for line in result.stdout.splitlines()] == [2]
    assert json.loads((tmp_path / "g" / "trainer_state.json").read_text())["step"] == 2
    refused = invoke("grpo", records, "--resume", tmp_path / "g", "--steps", 3, "--lr", 0.5, expect=2)
    assert "--lr is 0.5" in refused.stderr


def test_audio_records_are_encoded_with_the_checkpoints_encoder(sft_checkpoint, tmp_path):
    records, sft = sft_checkpoint
    rows = [orjson.loads(line) for line in open(records, "rb")]
    assert all("audio" in r for r in rows)
    stripped = tmp_path / "audio-only.jsonl"
    stripped.write_bytes(b"".join(orjson.dumps({k: v for k, v in r.items() if k != "audio_embedding"}) + b"\n"
                                  for r in rows))
    result = invoke("grpo", stripped, "--checkpoint", sft, "-o", tmp_path / "g", "--steps", 1, "--group-size", 2,
                    "--batch-size", 2, "--max-new-tokens", 4, "--cache", tmp_path / "cache")
    assert [orjson.loads(line)["step"] for line in result.stdout.splitlines()] == [1]
    assert any((tmp_path / "cache").rglob("*"))  # the embeddings were computed (and cached)
