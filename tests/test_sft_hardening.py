"""`mllm sft` and its checkpoints under bad input, end to end through the CLI (issue 8):
a diverging run stops with exit 3 and leaves only finite checkpoints; numeric options are refused
up front by name; error records stop training unless --allow-errors; a resume refuses options it
would not honour and carries over the ones it may change; --extend-to is the way to train longer;
damaged checkpoints give exit 2 naming the file, in `mllm caption --model` and `mllm sft --resume`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import orjson
import pytest
import torch
from safetensors.torch import load_file, save_file

from mllm.core.model import load_checkpoint
from mllm.core.train import lr_factor
from test_sft_cli import invoke, metrics, pipeline  # noqa: F401 - the module's fixture: synth -> encode -> build-instructions, tiny LLM

TRAIN = ("--batch-size", 4, "--no-bf16", "--device", "cpu")


@pytest.fixture(scope="module")
def trained(pipeline, tmp_path_factory) -> Path:  # noqa: F811
    """A healthy 4-step checkpoint (validation and saves every 2 steps)."""
    records, llm = pipeline
    folder = tmp_path_factory.mktemp("trained") / "ckpt"
    invoke("sft", records, "--llm", llm, "-o", folder, "--steps", 4, "--val-every", 2, "--save-every", 2,
           "--lr", 1e-2, *TRAIN)
    return folder


def copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def test_a_diverging_run_exits_3_and_keeps_the_last_finite_checkpoint(pipeline, tmp_path):  # noqa: F811
    records, llm = pipeline
    out = tmp_path / "run"
    # lr 1000 (finite, so accepted): the gradient norm turns NaN within a few steps on the tiny model
    result = invoke("sft", records, "--llm", llm, "-o", out, "--steps", 6, "--lr", 1000, "--save-every", 1,
                    "--val-every", 1, "--keep-best", *TRAIN, expect=3)
    rows = metrics(result.stdout)
    stderr = " ".join(result.stderr.split())
    assert 1 <= len(rows) < 6 and all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in rows)
    assert f"diverged at step {len(rows) + 1}" in stderr and "--lr" in stderr
    assert f"holds the checkpoint of step {len(rows)}" in stderr
    assert json.loads((out / "trainer_state.json").read_text())["step"] == len(rows)  # the last good step
    for folder in (out, out.with_name("run-best")):
        if folder.exists():
            load_checkpoint(folder)  # refuses non-finite weights
    assert not list(tmp_path.glob(".run*"))  # no half-written folder left


def test_caption_refuses_a_checkpoint_with_nan_weights(pipeline, trained, tmp_path):  # noqa: F811
    bad = copy(trained, tmp_path)
    weights = bad / "projector.safetensors"
    save_file({k: torch.full_like(v, math.nan) for k, v in load_file(weights).items()}, weights)
    result = invoke("caption", pipeline[0], "--model", bad, "--max-new-tokens", 4, expect=2)
    assert str(weights) in "".join(result.stderr.split())  # Rich wraps long paths
    assert "non-finite" in result.stderr and not result.stdout


@pytest.mark.parametrize("args, option", [
    (("--lr", "inf"), "--lr"), (("--lr", "nan"), "--lr"), (("--lr", "0"), "--lr"),
    (("--max-grad-norm", "nan"), "--max-grad-norm"), (("--max-grad-norm", "-1"), "--max-grad-norm"),
    (("--weight-decay", "nan"), "--weight-decay"), (("--epochs", "nan"), "--epochs"), (("--epochs", "0"), "--epochs"),
    (("--lora-dropout", "1"), "--lora-dropout"), (("--lora-dropout", "nan"), "--lora-dropout"),
    (("--lora-alpha", "0"), "--lora-alpha"),
    (("--encoder", "dsp", "--frame-rate", "inf"), "--frame-rate"), (("--encoder", "dsp", "--frame-rate", "1e9"), "--frame-rate"),
    (("--encoder", "dsp", "--frame-rate", "nan"), "--frame-rate"), (("--encoder", "dsp", "--frame-rate", "-1"), "--frame-rate"),
    (("--frame-rate", "2"), "--frame-rate"),  # without --encoder it would be ignored
    (("--extend-to", "10"), "--extend-to"),  # without --resume
])
def test_numeric_options_are_refused_up_front_by_name(pipeline, tmp_path, args, option):  # noqa: F811
    records, llm = pipeline
    result = invoke("sft", records, "--llm", llm, "-o", tmp_path / "x", "--steps", 1, *TRAIN, *args, expect=2)
    assert option in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def with_error_record(records: Path, tmp_path: Path) -> tuple[Path, str]:
    rows = [orjson.loads(line) for line in records.read_text().splitlines()]
    failed = next(r for r in rows if r.get("split", "train") == "train")
    failed["error"] = {"stage": "encode", "type": "ValueError", "message": "cannot decode clip.wav"}
    path = tmp_path / "with-error.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path, failed["id"]


def test_error_records_stop_sft_before_training_unless_allowed(pipeline, tmp_path):  # noqa: F811
    records, llm = pipeline
    path, failed_id = with_error_record(records, tmp_path)
    refused = invoke("sft", path, "--llm", llm, "-o", tmp_path / "a", "--steps", 1, *TRAIN, expect=1)
    stderr = " ".join(refused.stderr.split())
    assert failed_id in stderr and "cannot decode clip.wav" in stderr and "--allow-errors" in stderr
    assert not refused.stdout and not (tmp_path / "a").exists()  # not a step trained
    allowed = invoke("sft", path, "--llm", llm, "-o", tmp_path / "b", "--steps", 1, "--allow-errors", *TRAIN)
    assert "leaving out 1 error records" in " ".join(allowed.stderr.split())
    whole = sum(1 for line in records.read_text().splitlines() if orjson.loads(line).get("split", "train") == "train")
    assert json.loads((tmp_path / "b" / "trainer_state.json").read_text())["data"]["train"] == whole - 1


def test_resume_refuses_other_options_and_carries_over_the_changeable_ones(pipeline, trained, tmp_path):  # noqa: F811
    records, llm = pipeline
    folder = copy(trained, tmp_path)
    longer = invoke("sft", records, "--llm", llm, "--resume", folder, "--steps", 8, expect=2)
    assert "--steps is 8, the checkpoint's is 4" in " ".join(longer.stderr.split()) and "--extend-to" in longer.stderr
    for args, option in ((("--lr", 1), "--lr"), (("--lora-rank", 2), "--lora-rank"), (("--encoder", "dsp"), "--encoder"),
                         (("--encoder", "chroma+onset+loudness", "--frame-rate", 5), "--frame-rate"),  # trained at 2
                         (("--extend-to", 4), "--extend-to")):
        result = invoke("sft", records, "--llm", llm, "--resume", folder, *args, expect=2)
        assert option in result.stderr and not result.stdout
    # the same value as the checkpoint's is not a change; --val-every/--save-every come from the checkpoint
    result = invoke("sft", records, "--llm", llm, "--resume", folder, "--lr", 1e-2, "--extend-to", 8)
    rows = metrics(result.stdout)
    assert [r["step"] for r in rows] == [5, 6, 7, 8]
    assert [r["step"] for r in rows if "val_loss" in r] == [6, 8]  # --val-every 2 carried over (not dropped to 0)
    for r in rows:  # the cosine of an 8-step run from step 5 on
        assert r["lr"] == pytest.approx(1e-2 * lr_factor(r["step"] - 1, 0, 8))
    state = json.loads((folder / "trainer_state.json").read_text())  # written back into the resumed folder
    assert (state["step"], state["total_steps"], state["config"]["steps"], state["config"]["val_every"]) == (8, 8, 8, 2)


DAMAGE = {  # what to break -> the file the message must name
    "empty projector": ("projector.safetensors", lambda f: f.write_bytes(b"")),
    "truncated projector": ("projector.safetensors", lambda f: f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])),
    "garbage adapter": ("adapter/adapter_model.safetensors", lambda f: f.write_bytes(b"\x80\x04not safetensors" * 8)),
    "truncated adapter": ("adapter/adapter_model.safetensors", lambda f: f.write_bytes(f.read_bytes()[:-64])),
    "projector of another size": ("projector.safetensors", lambda f: save_file(
        {k: torch.zeros([s + 1 for s in v.shape]) for k, v in load_file(f).items()}, f)),
    "pickled adapter only": ("adapter/adapter_model.safetensors", lambda f: f.rename(f.with_suffix(".bin"))),
    "corrupt config.json": ("config.json", lambda f: f.write_text('{"format": "mllm-musicllm", ')),
}
RESUME_DAMAGE = {
    "corrupt trainer_state.json": ("trainer_state.json", lambda f: f.write_text('{"step": 4,')),
    "truncated trainer_state.safetensors": ("trainer_state.safetensors", lambda f: f.write_bytes(f.read_bytes()[:100])),
    "empty trainer_state.safetensors": ("trainer_state.safetensors", lambda f: f.write_bytes(b"")),
}


@pytest.mark.parametrize("case", [*DAMAGE, *RESUME_DAMAGE, "only a pickle"])
def test_unreadable_checkpoints_exit_2_naming_the_file(pipeline, trained, tmp_path, case):  # noqa: F811
    records, llm = pipeline
    bad = copy(trained, tmp_path, "bad")
    if case == "only a pickle":
        shutil.rmtree(bad)
        bad.mkdir()
        (bad / "model.pt").write_bytes(b"\x80\x04pickled weights")
        name = "model.pt"
    else:
        name, damage = {**DAMAGE, **RESUME_DAMAGE}[case]
        damage(bad / name)
    commands = [("sft", records, "--llm", llm, "--resume", bad, "-o", tmp_path / "out")]
    if case not in RESUME_DAMAGE:
        commands.append(("caption", records, "--model", bad, "--max-new-tokens", 4))
    for command in commands:
        result = invoke(*command, expect=2)
        stderr = "".join(result.stderr.split())  # Rich wraps long paths
        assert name in stderr and str(bad).replace(" ", "") in stderr, (case, command[0], result.stderr)
        assert "Traceback" not in result.stderr and not result.stdout
