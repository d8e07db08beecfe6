"""`mllm sft` under torchrun: two CPU processes on gloo take the same steps as one process with
twice the batch (DistributedDataParallel averages the gradients; the loop sums tokens and losses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mllm.core.io.records import RecordWriter
from mllm.core.train import SFTConfig, setup, train
from test_train_sft import make_records
from tiny_llm import build_tiny_llm

STEPS = 4


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """5 training + 2 valid records; 2 ranks x batch 2 = micro-batches of 4 and 1 record (the
    second leaves rank 1 without data: it must still join the gradient averaging)."""
    folder = tmp_path_factory.mktemp("ddp")
    llm = build_tiny_llm(folder / "llm")
    records = make_records(5, valid=2)
    with RecordWriter(str(folder / "records.jsonl")) as writer:
        for record in records:
            writer.write(record)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "mllm.cli", "sft", str(folder / "records.jsonl"), "--llm", str(llm), "-o", str(folder / "ckpt"),
               "--steps", str(STEPS), "--batch-size", "2", "--lora-rank", "4", "--lora-alpha", "8",
               "--lora-dropout", "0", "--lr", "1e-2", "--seed", "3", "--no-bf16", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, llm, records, done


def test_two_processes_step_like_one_with_twice_the_batch(ddp_run, tmp_path):
    folder, llm, records, done = ddp_run
    ddp_metrics = [json.loads(line) for line in done.stdout.splitlines()]
    assert [m["step"] for m in ddp_metrics] == list(range(1, STEPS + 1))  # rank 0 alone writes metrics

    single = setup(SFTConfig(llm=str(llm), lora_rank=4, lora_alpha=8, lora_dropout=0.0, batch_size=4, lr=1e-2,
                             seed=3, steps=STEPS, output=str(tmp_path / "single")), records)
    single_metrics = list(train(single))
    for a, b in zip(ddp_metrics, single_metrics):
        assert a["epoch"] == b["epoch"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    assert ddp_metrics[-1]["val_loss"] == pytest.approx(single_metrics[-1]["val_loss"], rel=1e-4)
    assert ddp_metrics[0]["loss"] > ddp_metrics[-1]["loss"]

    ddp_weights = load_file(folder / "ckpt" / "adapter" / "adapter_model.safetensors")
    single_weights = load_file(tmp_path / "single" / "adapter" / "adapter_model.safetensors")
    assert ddp_weights.keys() == single_weights.keys()
    for name in ddp_weights:
        torch.testing.assert_close(ddp_weights[name], single_weights[name], rtol=1e-3, atol=1e-5)
    assert not torch.equal(ddp_weights[next(iter(ddp_weights))], torch.zeros(1))


def test_checkpoint_holds_each_rank_and_refuses_another_world_size(ddp_run):
    folder, llm, records, _ = ddp_run
    state = json.loads((folder / "ckpt" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == STEPS
    tensors = load_file(folder / "ckpt" / "trainer_state.safetensors")
    assert {"rng.torch", "rng.torch.rank1"} <= tensors.keys()
    assert not torch.equal(tensors["rng.torch"], tensors["rng.torch.rank1"])  # each rank its own dropout stream
    with pytest.raises(ValueError, match="2 processes"):
        setup(SFTConfig(llm=str(llm), steps=STEPS), records, resume=folder / "ckpt")


def test_stdin_is_refused_under_torchrun(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1"}
    done = subprocess.run([sys.executable, "-m", "mllm.cli", "sft", "-", "--device", "cpu"], input="", env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "stdin" in done.stderr
