"""Reward model training (core/train/reward.py, core/reward_model/model.py, `mllm train-reward`): the
Bradley-Terry objective, learning a separable toy preference on both axes (the prompt tower a tiny
LLM), MOS regression, checkpoint round trip, --resume giving the losses of an unbroken run."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest
import torch
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.jsonl import dumps
from mllm.core.reward_model.model import RewardModel, RewardModelConfig, load_reward_model, pool_frames
from mllm.core.train.reward import (RewardConfig, bradley_terry_loss, evaluate, pairwise_accuracy, resolve_config,
                                    setup, train)
from tiny_llm import build_tiny_llm

runner = CliRunner()
PROMPTS = {"fast": "A fast rock song with drums.", "slow": "A slow calm piano piece."}


def clip(rng, quality: float, tempo: str) -> np.ndarray:
    """[T, D] frames: column 0 carries the quality, column 1 the tempo (+1 fast, -1 slow), 2-3 noise."""
    frames = rng.normal(0, 0.3, size=(6, 4)).astype(np.float32)
    frames[:, 0] += quality
    frames[:, 1] += 1.0 if tempo == "fast" else -1.0
    return frames


def toy_records(n: int = 120, seed: int = 0) -> list[dict]:
    """Musicality pairs (the higher quality preferred, by a margin), alignment pairs (the audio whose tempo the
    prompt names preferred) and MOS records (musicality = 1 + 4 quality, quality uniform in [0, 1]); 3/4 train, 1/4 valid."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        split = "train" if i % 4 else "valid"
        tempo = ["fast", "slow"][int(rng.integers(2))]
        other = "slow" if tempo == "fast" else "fast"
        q1, q2 = rng.uniform(0, 0.4), rng.uniform(0.6, 1.0)  # separable: a margin of 0.2 at least
        a_first = bool(rng.integers(2))
        preferred, worse = clip(rng, max(q1, q2), tempo), clip(rng, min(q1, q2), tempo)
        out.append({"id": f"m{i}", "axis": "musicality", "split": split, "prompt": PROMPTS[tempo],
                    "audio_embedding": preferred if a_first else worse, "audio_b_embedding": worse if a_first else preferred,
                    "preference": "a" if a_first else "b"})
        q = rng.uniform(0, 1)
        matching, mismatching = clip(rng, q, tempo), clip(rng, q, other)
        out.append({"id": f"a{i}", "axis": "alignment", "split": split, "prompt": PROMPTS[tempo],
                    "audio_embedding": matching if a_first else mismatching,
                    "audio_b_embedding": mismatching if a_first else matching, "preference": "a" if a_first else "b"})
        rated = rng.uniform(0, 1)
        out.append({"id": f"s{i}", "split": split, "prompt": PROMPTS[tempo], "musicality": 1 + 4 * rated,
                    "audio_embedding": clip(rng, rated, tempo), "system": f"q{int(rated * 4)}"})
    out.append({"id": "tie", "axis": "musicality", "split": "train", "audio_embedding": clip(rng, 0.5, "fast"),
                "audio_b_embedding": clip(rng, 0.5, "fast"), "preference": "both"})
    return out


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return str(build_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny"))


def write(path, records):
    path.write_bytes(b"".join(dumps(r) for r in records))
    return path


def test_bradley_terry_loss_and_pairwise_accuracy_follow_their_definitions():
    a, b = torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 0.5, 1.0])
    y = torch.tensor([1.0, 0.0, 1.0])
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(1 / (1 + math.exp(-0.5))) + math.log(0.5)) / 3
    assert float(bradley_terry_loss(a, b, y)) == pytest.approx(expected, rel=1e-6)
    smoothed = bradley_terry_loss(a[:1], b[:1], y[:1], label_smoothing=0.2)  # target 0.9
    p = 1 / (1 + math.exp(-1.0))
    assert float(smoothed) == pytest.approx(-(0.9 * math.log(p) + 0.1 * math.log(1 - p)), rel=1e-6)
    assert pairwise_accuracy(a, b, y).tolist() == [1.0, 1.0, 0.5]  # equal scores: half right


def test_pooling_and_absent_inputs():
    frames = np.array([[0.0, 2.0], [2.0, 2.0]], np.float32)
    assert pool_frames(frames).tolist() == [1.0, 2.0, 1.0, 0.0]  # means, then standard deviations
    with pytest.raises(ValueError, match="T >= 1"):
        pool_frames(np.zeros((0, 3)))
    model = RewardModel(RewardModelConfig(audio_dim=4, text_dim=3)).eval()
    audio = torch.randn(2, 4)
    # a prompt flagged absent counts as no prompt at all, whatever its vector
    assert torch.equal(model(audio, torch.randn(2, 3), torch.zeros(2)), model(audio))


def test_learns_a_separable_toy_preference_on_both_axes(tiny_llm, tmp_path):
    config = RewardConfig(text_encoder=tiny_llm, epochs=40, lr=3e-3, val_every=40, output=str(tmp_path / "rm"))
    run = setup(config, toy_records())
    assert run.skipped == {"ties": 1}  # a tie is left out of training, and counted
    before = evaluate(run)
    metrics = list(train(run))
    losses = [m["loss"] for m in metrics]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])  # the loss goes down
    after = metrics[-1]
    assert after["val_accuracy.musicality"] >= 0.9 and after["val_accuracy.alignment"] >= 0.9, (before, after)
    assert after["val_srcc.musicality"] > 0.8
    # the alignment axis reads the prompt: under the other tempo's prompt a pair's order flips
    model, saved = load_reward_model(tmp_path / "rm")
    assert saved["text_encoder"] == tiny_llm and saved["encoder"]["dim"] == 4
    examples = run.valid_examples
    alignment = examples.pair_axis == 0
    a, b = ({k: v[alignment] for k, v in rows.items()} for rows in (examples.pair_a, examples.pair_b))
    first = a["text"][0]
    second = next(t for t in a["text"] if not torch.equal(t, first))  # the two prompts' embeddings
    other = torch.stack([second if torch.equal(t, first) else first for t in a["text"]])
    with torch.no_grad():
        own = model(**a)[:, 0] - model(**b)[:, 0]
        swapped = model(**{**a, "text": other})[:, 0] - model(**{**b, "text": other})[:, 0]
    assert float(((own > 0) != (swapped > 0)).float().mean()) >= 0.9


def test_checkpoint_round_trip_and_score_cli(tmp_path):
    records = toy_records(40)
    run = setup(RewardConfig(text_encoder="none", steps=20, output=str(tmp_path / "rm")), records)
    list(train(run))
    model, config = load_reward_model(tmp_path / "rm")
    assert config["model"]["axes"] == ["alignment", "musicality"] and config["format"] == "mllm-reward-model"
    assert sorted(p.name for p in (tmp_path / "rm").iterdir()) == [
        "config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors"]  # no pickle
    run.model.eval()
    rows = run.train_examples.pair_a
    assert torch.allclose(model(**rows), run.model(**rows))
    source = write(tmp_path / "pairs.jsonl", records[:6])
    out = [orjson.loads(line) for line in runner.invoke(app, ["score", str(source), "--model", str(tmp_path / "rm")]).stdout.splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in records[:6]]
    expected = model(torch.tensor(np.stack([pool_frames(r["audio_embedding"]) for r in records[:6]])))
    for record, row in zip(out, expected.tolist()):
        assert record["reward"] == pytest.approx(dict(zip(["alignment", "musicality"], row)), rel=1e-5)
        assert ("reward_b" in record) == ("audio_b_embedding" in record)


def test_resume_continues_with_the_losses_of_an_unbroken_run(tmp_path):
    records = toy_records(40)
    whole = setup(RewardConfig(text_encoder="none", steps=16, output=str(tmp_path / "whole")), records)
    unbroken = [m["loss"] for m in train(whole)]
    first = setup(RewardConfig(text_encoder="none", steps=16, output=str(tmp_path / "half")), records)
    losses = []
    for metrics in train(first):
        losses.append(metrics["loss"])
        if metrics["step"] == 7:
            first.stop_requested = True  # as Ctrl-C does: the loop saves after this step
    assert len(losses) == 7
    resumed = setup(RewardConfig(text_encoder="none", steps=16), records, resume=tmp_path / "half", given=set())
    assert resumed.state.step == 7
    losses += [m["loss"] for m in train(resumed)]
    assert losses == pytest.approx(unbroken, rel=1e-6)
    with pytest.raises(ValueError, match="--lr"):
        resolve_config(RewardConfig(text_encoder="none", lr=0.5), resume=tmp_path / "half", given={"lr"})
    with pytest.raises(ValueError, match="other data"):
        setup(RewardConfig(text_encoder="none"), toy_records(40, seed=1), resume=tmp_path / "half", given=set())


def test_train_reward_cli(tmp_path):
    records = toy_records(40)
    bad = {**records[0], "id": "bad", "preference": "maybe"}
    source = write(tmp_path / "pairs.jsonl", records)
    result = runner.invoke(app, ["train-reward", str(source), "-o", str(tmp_path / "rm"), "--text-encoder", "none",
                                 "--steps", "12", "--val-every", "6", "--threads", "1"])
    assert result.exit_code == 0, result.stderr
    metrics = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 13)) and "val_accuracy" in metrics[5]
    assert "options.yaml" in {p.name for p in (tmp_path / "rm").iterdir()}
    again = runner.invoke(app, ["train-reward", str(source), "-o", str(tmp_path / "rm"), "--text-encoder", "none"])
    assert again.exit_code == 2 and "exists" in again.stderr
    longer = runner.invoke(app, ["train-reward", str(source), "--resume", str(tmp_path / "rm"), "--extend-to", "15"])
    assert longer.exit_code == 0, longer.stderr
    assert [json.loads(line)["step"] for line in longer.stdout.splitlines()] == [13, 14, 15]
    broken = runner.invoke(app, ["train-reward", str(write(tmp_path / "bad.jsonl", [bad, *records])), "-o",
                                 str(tmp_path / "rm2"), "--text-encoder", "none"])
    assert broken.exit_code == 2 and "'bad'" in broken.stderr and "preference" in broken.stderr


def test_judgements_in_eval_reward_forms():
    from mllm.core.io.errors import RecordError
    from mllm.core.reward_model.records import mos_of, pair_judgements

    axes = ["alignment", "musicality"]
    pair = {"audio": "x", "audio_b": "y", "preference": {"musicality": "model_a", "alignment": "both", "lyrics": "b"}}
    assert pair_judgements(pair, axes) == [("musicality", "a"), ("alignment", "both")]  # unknown axes left out
    assert pair_judgements({"audio_b": "y", "axis": "alignment", "preference": " B "}, axes) == [("alignment", "b")]
    with pytest.raises(RecordError, match="'axis'"):
        pair_judgements({"audio_b": "y", "preference": "a"}, axes)
    with pytest.raises(RecordError, match="'preference.musicality'"):
        pair_judgements({"audio_b": "y", "preference": {"musicality": "maybe"}}, axes)
    assert mos_of({"mos": {"musicality": 3.5}, "musicality": 1.0}, axes) == {"musicality": 3.5}
    assert mos_of({"alignment": 2}, axes) == {"alignment": 2.0}
    with pytest.raises(RecordError, match="'mos.alignment'"):
        mos_of({"mos": {"alignment": float("nan")}}, axes)
    records = [{**r, "preference": {"musicality": r["preference"], "alignment": "neither"}} if r["id"].startswith("m")
               else r for r in toy_records(20)]
    run = setup(RewardConfig(text_encoder="none", steps=1, output="/dev/null/never-written"), records)
    assert run.skipped["ties"] == 1 + sum(r["id"].startswith("m") and r["split"] == "train" for r in records)


def test_a_reference_audio_is_read_by_the_head(tmp_path):
    """Alignment to a reference audio: the preferred clip is the one whose column 0 has the
    reference's sign; without the reference the pairs are not separable (accuracy near chance)."""
    rng = np.random.default_rng(5)
    records = []
    for i in range(160):
        sign = 1.0 if rng.integers(2) else -1.0
        reference, near, far = (clip(rng, 0.0, "fast") for _ in range(3))
        reference[:, 0] += sign
        near[:, 0] += sign
        far[:, 0] -= sign
        a_first = bool(rng.integers(2))
        records.append({"id": f"r{i}", "axis": "alignment", "split": "train" if i % 4 else "valid",
                        "reference_audio_embedding": reference, "audio_embedding": near if a_first else far,
                        "audio_b_embedding": far if a_first else near, "preference": "a" if a_first else "b"})
    run = setup(RewardConfig(text_encoder="none", epochs=30, lr=3e-3, output=str(tmp_path / "with")), records)
    assert float(run.train_examples.pair_a["has_reference"].min()) == 1.0
    assert list(train(run))[-1]["val_accuracy.alignment"] >= 0.9
    blind = [{k: v for k, v in r.items() if k != "reference_audio_embedding"} for r in records]
    run = setup(RewardConfig(text_encoder="none", epochs=30, lr=3e-3, output=str(tmp_path / "without")), blind)
    assert list(train(run))[-1]["val_accuracy.alignment"] < 0.75

