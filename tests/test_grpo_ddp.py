"""grpo under torchrun: two CPU processes on gloo take the same steps as one process with twice the
prompts (each completion samples from its own seeded stream; gradients are averaged with each
rank's share of the step's loss; token counts and reward statistics are summed over the ranks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mllm.core.io.records import RecordWriter
from mllm.core.model import save_checkpoint
from mllm.core.train import rewards as rw
from mllm.core.train.grpo import GRPOConfig, setup, train
from test_grpo_loop import records, sft_model, vowels
from tiny_llm import build_tiny_llm

SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from mllm.core.io.records import read_records
from mllm.core.train import distributed
from mllm.core.train import rewards as rw
from mllm.core.train.grpo import GRPOConfig, setup, train
from test_grpo_loop import vowels
rw.COMPONENTS["vowels"] = vowels
config = GRPOConfig(**json.loads(sys.argv[1]))
run = setup(config, list(read_records(sys.argv[2])), reward=rw.Reward.parse("vowels"))
for m in train(run):
    if run.share.main:
        print(json.dumps(m), flush=True)
distributed.stop()
"""


@pytest.fixture(scope="module")
def sft_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grpo-ddp")
    llm = build_tiny_llm(folder / "llm")
    save_checkpoint(sft_model(llm), folder / "sft")
    with RecordWriter(str(folder / "records.jsonl")) as writer:
        for record in records(8):
            writer.write(record)
    return folder


@pytest.mark.parametrize("loss_type, scale_rewards", [("dapo", "group"), ("grpo", "batch")])
def test_two_processes_step_like_one_with_twice_the_prompts(sft_folder, tmp_path, monkeypatch, loss_type, scale_rewards):
    options = dict(checkpoint=str(sft_folder / "sft"), reward="vowels", steps=3, group_size=2, lr=5e-2,
                   max_new_tokens=6, beta=0.05, seed=1, loss_type=loss_type, scale_rewards=scale_rewards)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    ddp_options = {**options, "batch_size": 2, "output": str(tmp_path / "ddp")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
               json.dumps(ddp_options), str(sft_folder / "records.jsonl")]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    monkeypatch.setitem(rw.COMPONENTS, "vowels", vowels)
    single_run = setup(GRPOConfig(**{**options, "batch_size": 4, "output": str(tmp_path / "single")}),
                       records(8), reward=rw.Reward.parse("vowels"))
    single = list(train(single_run))
    assert [m["step"] for m in ddp] == [1, 2, 3]
    for a, b in zip(ddp, single):
        assert a["groups_sampled"] == b["groups_sampled"] == 4
        for key in ("reward_mean", "reward_std", "completion_length", "loss", "kl", "clip_region", "entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    ddp_weights = load_file(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors")
    single_weights = load_file(tmp_path / "single" / "adapter" / "adapter_model.safetensors")
    for name in ddp_weights:
        torch.testing.assert_close(ddp_weights[name], single_weights[name], rtol=1e-3, atol=1e-5)
    assert json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())["world_size"] == 2


def test_the_command_under_torchrun_writes_rank_zeros_metrics_once(sft_folder, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "mllm.cli",
               "grpo", str(sft_folder / "records.jsonl"), "--checkpoint", str(sft_folder / "sft"), "-o",
               str(tmp_path / "g"), "--steps", "2", "--group-size", "2", "--batch-size", "1", "--max-new-tokens", "4",
               "--device", "cpu", "--no-bf16"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["step"] for r in rows] == [1, 2] and all(r["groups_sampled"] == 2 for r in rows)
    assert json.loads((tmp_path / "g" / "trainer_state.json").read_text())["world_size"] == 2
