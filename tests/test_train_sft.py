"""The SFT loop (core/train/sft.py) on a tiny random Llama: the loss falls, resume replays the
uninterrupted run, checkpoints hold no pickle, the schedule, gradient accumulation, bf16 on CPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mllm.core.train import SFTConfig, evaluate, lr_factor, save, setup, train
from mllm.core.train.sft import (TRAINER_STATE_JSON, TRAINER_STATE_TENSORS, TrainingDiverged, answer_tokens,
                                 next_micro_batch, option, resolve_config)
from tiny_llm import build_tiny_llm

ANSWERS = ["The key is A minor.", "The key is C major.", "About 120 beats per minute.", "The key is E minor."]


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory) -> Path:
    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


def make_records(n: int, valid: int = 0) -> list[dict]:
    records = []
    for i in range(n + valid):
        rng = np.random.default_rng(i)
        frames = 3 + i % 4
        records.append({"id": f"r{i}", "split": "train" if i < n else "valid", "encoder": "dsp", "frame_rate": 1.0,
                        "audio_embedding": (rng.normal(size=(frames, 14)) * 5 + 3).astype(np.float16),
                        "messages": [{"role": "user", "content": "<audio>\nWhat key is this music in?"},
                                     {"role": "assistant", "content": ANSWERS[i % len(ANSWERS)]}]})
    return records


def config(llm_folder, tmp_path, **overrides) -> SFTConfig:
    base = dict(llm=str(llm_folder), lora_rank=4, lora_alpha=8, lora_dropout=0.1, batch_size=2, lr=1e-2,
                output=str(tmp_path / "ckpt"), seed=3)
    return SFTConfig(**{**base, **overrides})


def test_lr_schedule():
    assert lr_factor(0, 4, 20) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20) == pytest.approx(1.0)  # cosine starts at the top
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(20, 4, 20) == pytest.approx(0.0)
    assert lr_factor(20, 4, 20, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(0, 0, 10) == pytest.approx(1.0)


def test_loss_falls_and_lr_follows_schedule(llm_folder, tmp_path):
    run = setup(config(llm_folder, tmp_path, steps=30, warmup=3, val_every=10), make_records(4, valid=2))
    # standardisation from the training frames: the projector sees roughly zero-mean unit-std inputs
    frames = torch.cat([e.audio for e in run.train_examples])
    assert torch.allclose(run.model.projector.mean, frames.mean(0), atol=1e-4)
    metrics = list(train(run))
    assert [m["step"] for m in metrics] == list(range(1, 31))
    first, last = np.mean([m["loss"] for m in metrics[:3]]), np.mean([m["loss"] for m in metrics[-3:]])
    assert last < 0.5 * first, (first, last)
    for m in metrics:
        assert m["lr"] == pytest.approx(1e-2 * lr_factor(m["step"] - 1, 3, 30))
        assert m["tokens_per_s"] > 0
    assert [m["step"] for m in metrics if "val_loss" in m] == [10, 20, 30]
    assert (tmp_path / "ckpt" / "config.json").is_file()


def test_resume_replays_the_uninterrupted_run(llm_folder, tmp_path):
    records = make_records(5)  # 3 micro-batches per epoch: steps cross epochs
    whole = setup(config(llm_folder, tmp_path, steps=6, save_every=3, output=str(tmp_path / "a")), records)
    saved_at_3 = None
    losses = []
    for m in train(whole):
        losses.append(m["loss"])
        if m["step"] == 3:  # the step-3 checkpoint was just written: keep a copy
            saved_at_3 = tmp_path / "at3"
            subprocess.run(["cp", "-r", str(tmp_path / "a"), str(saved_at_3)], check=True)
    state = json.loads((saved_at_3 / TRAINER_STATE_JSON).read_text())
    assert (state["step"], state["epoch"], state["position"]) == (3, 0, 3)  # epoch 0 done; epoch 1 starts at the next micro-batch
    # Resume in a fresh process, as after a kill.
    script = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "from mllm.core.train import SFTConfig, setup, train\n"
              "from test_train_sft import make_records\n"
              f"run = setup(SFTConfig(output={str(tmp_path / 'b')!r}), make_records(5), resume={str(saved_at_3)!r})\n"
              "print(json.dumps([m['loss'] for m in train(run)]))\n")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    resumed = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(resumed) == 3
    np.testing.assert_allclose(resumed, losses[3:], rtol=1e-5, atol=1e-6)


def test_checkpoint_holds_no_pickle(llm_folder, tmp_path):
    run = setup(config(llm_folder, tmp_path, steps=1), make_records(2))
    list(train(run))
    files = [p for p in (tmp_path / "ckpt").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"config.json", "projector.safetensors", TRAINER_STATE_JSON, TRAINER_STATE_TENSORS,
            "adapter_model.safetensors", "adapter_config.json"} <= names
    assert all(p.suffix in (".json", ".safetensors", ".md") for p in files), names
    for p in files:
        assert not p.read_bytes().startswith(b"\x80"), p  # pickle protocol header
    assert not list(tmp_path.glob(".ckpt*"))  # no staging folder left


def test_grad_accumulation_equals_a_larger_batch(llm_folder, tmp_path):
    records = make_records(4)
    grads = []
    for batch_size, accum in ((4, 1), (1, 4), (2, 2)):
        run = setup(config(llm_folder, tmp_path, steps=1, batch_size=batch_size, grad_accum=accum, lora_dropout=0.0,
                           max_grad_norm=0.0), records)
        # same initial weights whatever the batching (seeded build)
        metrics = next(train(run))
        grads.append((metrics["loss"], metrics["grad_norm"]))
    for loss, norm in grads[1:]:
        assert loss == pytest.approx(grads[0][0], rel=1e-4)
        assert norm == pytest.approx(grads[0][1], rel=1e-3)


def test_projector_only_and_bf16_on_cpu(llm_folder, tmp_path):
    run = setup(config(llm_folder, tmp_path, steps=3, projector_only=True, bf16=True, grad_checkpointing=True,
                       projector="strided", stride=2), make_records(3, valid=1))
    assert run.model.lora is None
    assert all(name.startswith("projector.") for name, p in run.model.named_parameters() if p.requires_grad)
    metrics = list(train(run))
    assert all(math.isfinite(m["loss"]) for m in metrics) and "val_loss" in metrics[-1]
    assert not (tmp_path / "ckpt" / "adapter").exists()


def test_bf16_stores_the_frozen_linears_in_bf16_with_the_losses_of_autocast_alone(llm_folder, tmp_path):
    losses = []
    for stored in (True, False):
        run = setup(config(llm_folder, tmp_path / str(stored), steps=4, bf16=True), make_records(4))
        frozen = {name: p.dtype for name, p in run.model.llm.named_parameters() if not p.requires_grad}
        linears = [name for name in frozen if name.endswith("base_layer.weight")]  # peft-wrapped q/k/v/o
        assert linears and all(frozen[name] == torch.bfloat16 for name in linears)
        assert frozen[next(name for name in frozen if "embed_tokens" in name)] == torch.float32
        assert all(p.dtype == torch.float32 for p in run.model.trainable_parameters())
        if not stored:  # back to fp32 (the values autocast casts to bf16 at every product)
            run.model.store_frozen_linears(torch.float32)
        losses.append([m["loss"] for m in train(run)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert losses[0][-1] < losses[0][0]


def test_resume_refuses_other_data(llm_folder, tmp_path):
    run = setup(config(llm_folder, tmp_path, steps=1), make_records(2))
    list(train(run))
    with pytest.raises(ValueError, match="same data"):
        setup(SFTConfig(), make_records(3), resume=tmp_path / "ckpt")


def test_epoch_order_is_seeded(llm_folder, tmp_path):
    run = setup(config(llm_folder, tmp_path, steps=1, batch_size=1), make_records(4))
    first = [id(next_micro_batch(run)[0]) for _ in range(8)]
    run.state.epoch, run.state.position = 0, 0
    assert [id(next_micro_batch(run)[0]) for _ in range(8)] == first
    assert sorted(first[:4]) == sorted(first[4:])  # each epoch visits every record once
    assert answer_tokens(run.model.collate(run.train_examples[:1], "right")) > 0
    assert evaluate(run) is None  # no valid split


def test_grad_checkpointing_gives_the_same_step(llm_folder, tmp_path):
    results = []
    for checkpointing in (False, True):
        run = setup(config(llm_folder, tmp_path, steps=2, lora_dropout=0.0, grad_checkpointing=checkpointing),
                    make_records(4))
        results.append([(m["loss"], m["grad_norm"]) for m in train(run)])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_keep_best_and_early_stop(llm_folder, tmp_path):
    records = make_records(6)
    # validation answers the training set never shows: the validation loss turns up as the model fits
    for i in range(3):
        records.append({**make_records(1)[0], "id": f"v{i}", "split": "valid",
                        "messages": [{"role": "user", "content": "<audio>\nWhat key is this music in?"},
                                     {"role": "assistant", "content": f"It is in {['F#', 'D', 'B'][i]} minor, slowly."}]})
    run = setup(config(llm_folder, tmp_path, steps=200, val_every=2, keep_best=True, early_stop=3), records)
    metrics = list(train(run))
    validations = [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m]
    best_step, best_loss = min(validations, key=lambda v: v[1])
    assert run.state.best_step == best_step and run.state.best_val_loss == pytest.approx(best_loss)
    assert [m["step"] for m in metrics if m.get("best")][-1] == best_step
    # stopped early: the last 3 validations did not beat the best, and the run ended there
    assert run.state.early_stopped and metrics[-1].get("early_stopped") and len(metrics) < 200
    assert all(loss >= best_loss for _, loss in validations[-3:]) and validations[-4][0] == best_step
    best = json.loads((tmp_path / "ckpt-best" / TRAINER_STATE_JSON).read_text())
    assert best["step"] == best_step
    assert json.loads((tmp_path / "ckpt" / TRAINER_STATE_JSON).read_text())["step"] == metrics[-1]["step"]
    # a resumed early-stopped run has nothing left to do
    again = setup(config(llm_folder, tmp_path, keep_best=True, early_stop=3, val_every=2), records, resume=tmp_path / "ckpt")
    assert list(train(again)) == []
    with pytest.raises(ValueError, match="--val-every"):
        setup(config(llm_folder, tmp_path, steps=5, early_stop=2), records)
    with pytest.raises(ValueError, match="validation records"):
        setup(config(llm_folder, tmp_path, steps=5, keep_best=True), make_records(4))


# ---- failing loudly (issue 8) -------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [("lr", math.inf), ("lr", math.nan), ("lr", 0.0), ("max_grad_norm", math.nan),
                                          ("max_grad_norm", -1.0), ("weight_decay", math.inf), ("epochs", math.nan),
                                          ("lora_dropout", 1.0), ("lora_alpha", 0), ("min_lr_ratio", math.nan),
                                          ("warmup", -1), ("batch_size", 0), ("steps", 0)])
def test_options_out_of_range_are_refused_by_name(field, value):
    with pytest.raises(ValueError) as caught:
        SFTConfig(**{field: value}).check()
    name = field if field == "min_lr_ratio" else option(field)  # min_lr_ratio has no command-line option
    assert str(caught.value).startswith(f"{name} must be") and str(caught.value).endswith(f"got {value!r}")


def test_a_diverging_step_is_not_applied_and_nothing_non_finite_is_saved(llm_folder, tmp_path):
    # lr 1000 is finite (accepted); the gradient norm turns NaN after a few steps
    run = setup(config(llm_folder, tmp_path, steps=10, lr=1000.0, save_every=1), make_records(4))
    weights, done = None, []
    with pytest.raises(TrainingDiverged) as caught:
        for m in train(run):
            done.append(m)
            weights = [p.detach().clone() for p in run.model.trainable_parameters()]
    assert done and caught.value.step == len(done) + 1 < 10
    assert not (math.isfinite(caught.value.loss) and math.isfinite(caught.value.grad_norm))
    for before, after in zip(weights, run.model.trainable_parameters()):
        assert torch.equal(before, after)  # the diverged step never reached the weights
    assert json.loads((tmp_path / "ckpt" / TRAINER_STATE_JSON).read_text())["step"] == len(done)
    # weights that are not finite are never written, whatever the loss said
    with torch.no_grad():
        run.model.projector.net[0].weight[0, 0] = math.nan
    with pytest.raises(TrainingDiverged, match="not finite"):
        save(run, tmp_path / "nan")
    assert not (tmp_path / "nan").exists() and not list(tmp_path.glob(".nan*"))


def test_a_non_finite_val_loss_is_never_the_best(llm_folder, tmp_path):
    run = setup(config(llm_folder, tmp_path, steps=3, val_every=1, keep_best=True), make_records(4, valid=1))
    run.valid_examples[0].audio[0, 0] = math.inf  # the validation forward pass gives NaN
    metrics = list(train(run))
    assert all(math.isnan(m["val_loss"]) and not m.get("best") for m in metrics)
    assert run.state.best_val_loss is None and not (tmp_path / "ckpt-best").exists()
    # records carrying NaN/inf embeddings are refused at setup, by id
    records = make_records(3)
    records[1]["audio_embedding"][0, 0] = np.nan
    with pytest.raises(ValueError, match="'r1'.*NaN or inf"):
        setup(config(llm_folder, tmp_path, steps=1), records)


def test_resume_refuses_the_same_ids_with_other_content(llm_folder, tmp_path):
    records = make_records(3, valid=1)
    list(train(setup(config(llm_folder, tmp_path, steps=1), records)))
    changed_embedding = make_records(3, valid=1)
    changed_embedding[2]["audio_embedding"] = changed_embedding[2]["audio_embedding"] + np.float16(1)
    changed_answer = make_records(3, valid=1)
    changed_answer[3]["messages"][1]["content"] = "The key is B major."  # the valid record
    for other in (changed_embedding, changed_answer):
        with pytest.raises(ValueError, match="same record ids with other content"):
            setup(SFTConfig(), other, resume=tmp_path / "ckpt")
    assert setup(SFTConfig(), make_records(3, valid=1), resume=tmp_path / "ckpt").state.step == 1  # same data: fine


def test_resume_refuses_options_it_would_not_honour(llm_folder, tmp_path):
    records = make_records(4)
    list(train(setup(config(llm_folder, tmp_path, steps=2, val_every=1), records)))
    with pytest.raises(ValueError, match="--lr is 0.5, the checkpoint's is 0.01; --steps is 5, the checkpoint's is 2.*--extend-to"):
        setup(config(llm_folder, tmp_path, steps=5, lr=0.5), records, resume=tmp_path / "ckpt")
    # given=None: the fields that differ from SFTConfig's defaults count as given; changeable ones
    # not given carry over from the checkpoint, the output defaults to the resumed folder
    resolved = resolve_config(SFTConfig(), tmp_path / "ckpt", extend_to=4)
    assert (resolved.steps, resolved.val_every, resolved.output) == (4, 1, str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="--extend-to must be more than the 2 steps"):
        resolve_config(SFTConfig(), tmp_path / "ckpt", extend_to=2)


def test_select_by_val_score_keeps_the_checkpoint_that_answers_best(llm_folder, tmp_path):
    """--select-by val_score: greedy answers to the valid records, scored as eval-mir scores key
    (the MIREX weighted score, through the task registry); the best checkpoint is the highest."""
    records = make_records(6, valid=3)
    for i, record in enumerate(records):  # key records: a reference to score against
        key = ["A minor", "C major", "E minor"][i % 3]
        record.update(task="key", answer={"key": key})
        record["messages"] = [record["messages"][0], {"role": "assistant", "content": f"The key is {key}."}]
    run = setup(config(llm_folder, tmp_path, steps=12, val_every=3, keep_best=True, select_by="val_score",
                       score_max_new_tokens=8), records)
    metrics = list(train(run))
    scores = [(m["step"], m["val_score"]) for m in metrics if "val_score" in m]
    assert [step for step, _ in scores] == [3, 6, 9, 12] and all(0.0 <= value <= 1.0 for _, value in scores)
    best_step, best_value = max(scores, key=lambda v: v[1])  # the first of equal highs
    assert run.state.best_step == best_step and run.state.best_val_score == pytest.approx(best_value)
    assert json.loads((tmp_path / "ckpt-best" / TRAINER_STATE_JSON).read_text())["step"] == best_step
    with pytest.raises(ValueError, match="validation records"):
        setup(config(llm_folder, tmp_path, steps=2, select_by="val_score"), make_records(4))
    with pytest.raises(ValueError, match="cannot be scored"):
        setup(config(llm_folder, tmp_path, steps=2, select_by="val_score"), make_records(4, valid=2))  # no task
