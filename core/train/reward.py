"""Training a music reward model on preference pairs and/or opinion scores: one loop, read top to bottom.

    run = setup(RewardConfig(encoder="dsp", text_encoder="smollm2"), records)   # or resume="runs/rm"
    for metrics in train(run):             # one dict per optimizer step
        print(json.dumps(metrics))         # {"step", "epoch", "loss", "bt_loss", "mos_loss", "lr", ...}

The data (records of split `train`; `valid` for validation; every other split is never read):
- pair records (core/reward_model/records.py): the prompt and two audios, the `axis` the
  preference is about and `preference` a | b. Ties ("both", "neither") are left out of training,
  as CMI-RewardBench does ("tied preferences are excluded"), and counted;
- MOS records: a number per axis (`musicality`, `alignment`), one example per axis rated.
The frozen towers (the audio encoder, pooled mean + std over time; the prompt's text embedding,
core/reward_model/features.py) run once before training; the head (core/reward_model/model.py)
trains on their vectors, standardised with the training set's mean and std.

The objective of a step, over a micro-batch of `batch_size` examples drawn in the epoch order
`randperm(n, generator=seed(seed, e))` (the last batch may be smaller):

    Bradley-Terry, pairs:  p = sigmoid(s_axis(a) - s_axis(b)),  y = 1 when a is preferred, 0 when b
                           bt = -[y' log p + (1 - y') log(1 - p)],  y' = y (1 - eps) + eps / 2
                           (eps = label_smoothing; 0: -log sigmoid(s_chosen - s_rejected))
    MOS:                   mos = (scale_axis * s_axis(x) + offset_axis - y)^2   (scale, offset learned,
                           the paper's affine map, dropped when scoring; scale starts at 1, offset
                           at the axis's mean training score)
    loss = mean(bt) + mos_weight * mean(mos)   (a term without examples in the batch is 0)

AdamW on the head, `clip_grad_norm_(max_grad_norm)`, learning rate `lr * lr_factor(step)` (linear
warmup, cosine to `min_lr_ratio * lr`: core/train/sft.py's schedule). Every `val_every` steps and
at the end: `val_loss` (the same objective on the valid split, without smoothing), `val_accuracy`
(pairwise accuracy over the valid pairs that are not ties; equal scores count 0.5) overall and
per axis, and per axis the Spearman correlation of scores and MOS values (`val_srcc.<axis>`).
`keep_best` writes the best validation (lowest val_loss, or highest val_accuracy with
`select_by="val_accuracy"`) to `<output>-best`; `early_stop` = k ends training after k
validations without a new best. A step whose loss or gradient norm is not finite is not applied
(TrainingDiverged, as sft); non-finite weights are never saved.

Checkpoint = the reward model folder (config.json, model.safetensors) plus the trainer state:

    trainer_state.json          step, epoch, position, best so far, the RewardConfig, the data
                                fingerprint, the optimizer's param groups, the scheduler state
    trainer_state.safetensors   AdamW moments and the torch RNG state

No pickle. `resume` restores all of it and continues with the next batch of the same epoch
order, so the losses after a resume equal those of a run never stopped. It refuses other data
(the fingerprint covers every example's id, split, axis, judgement and input vectors) and any
option given with another value than the checkpoint's, except RESUME_MAY_CHANGE; `extend_to=N`
trains a finished run further, to N steps.

The LLM-backbone variant (a MusicLLM with a scalar head on its last hidden state) is not built
here: it would need the MusicLLM's forward on both audios of every pair at each step, a different
loop from this one on frozen vectors (docs/reward.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Collection, Iterator, Sequence

import torch
import torch.nn.functional as F

from mllm.core.encoders.for_model import ModelEncoder, encoder_spec
from mllm.core.io.errors import RecordError
from mllm.core.io.splits import TRAIN
from mllm.core.model.checkpoint import CheckpointError, read_tensors
from mllm.core.options import MAX_FRAME_RATE, check_integer, check_number
from mllm.core.reward_model.features import RewardInputs
from mllm.core.reward_model.model import (AXES, RewardModel, RewardModelConfig, load_reward_model,
                                          read_json_of_format, read_reward_config, save_reward_model)
from mllm.core.reward_model.records import TIES, is_pair, mos_of, pair_judgements
from mllm.core.reward_model.text import TextEmbedder
from mllm.core.train.sft import TrainingDiverged, epoch_order, lr_factor
from mllm.core.train.trainer_state import (TRAINER_STATE_JSON, TRAINER_STATE_TENSORS, flatten_optimizer, option,
                                          restore_optimizer, resumed_config)

__all__ = ["RewardConfig", "RewardState", "RewardRun", "Examples", "setup", "train", "evaluate", "save",
           "bradley_terry_loss", "pairwise_accuracy", "read_examples", "RESUME_MAY_CHANGE", "TrainingDiverged"]

TRAINER_STATE_FORMAT = "mllm-reward-trainer"
TRAINER_STATE_VERSION = 1
RESUME_MAY_CHANGE = ("output", "val_every", "save_every", "keep_best", "early_stop")


@dataclass
class RewardConfig:
    encoder: str = "dsp"  # the frozen audio encoder (`mllm encode --encoder`)
    layer: str | None = None
    frame_rate: float = 10.0  # frames per second before pooling
    text_encoder: str = "smollm2"  # an LLM spec, "minilm", a sentence-transformers folder, or "none"
    axes: list[str] = field(default_factory=lambda: list(AXES))
    hidden: int = 64
    dropout: float = 0.1
    steps: int | None = None  # optimizer steps; None = `epochs` passes over the training examples
    epochs: float = 30.0
    batch_size: int = 32  # examples (pairs or MOS values) per step
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 0
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0  # 0 = no clipping
    mos_weight: float = 1.0
    label_smoothing: float = 0.0  # CMI-RewardBench: 0.2 on pseudo-labelled pairs
    val_every: int = 0  # 0 = validate at the end only
    save_every: int = 0
    keep_best: bool = False
    early_stop: int = 0
    select_by: str = "val_loss"  # or val_accuracy
    output: str = "reward-model"
    seed: int = 0
    device: str = "cpu"

    def check(self) -> RewardConfig:
        check_number("--lr", self.lr, above=0)
        check_number("--weight-decay", self.weight_decay, minimum=0)
        check_number("--epochs", self.epochs, above=0)
        check_number("--max-grad-norm", self.max_grad_norm, minimum=0)
        check_number("--mos-weight", self.mos_weight, minimum=0)
        check_number("--label-smoothing", self.label_smoothing, minimum=0, below=1)
        check_number("--dropout", self.dropout, minimum=0, below=1)
        check_number("min_lr_ratio", self.min_lr_ratio, minimum=0, maximum=1)
        check_number("--frame-rate", self.frame_rate, above=0, maximum=MAX_FRAME_RATE)
        if self.steps is not None:
            check_integer("--steps", self.steps, minimum=1)
        for name in ("batch_size", "hidden"):
            check_integer(option(name), getattr(self, name), minimum=1)
        for name in ("warmup", "val_every", "save_every", "early_stop"):
            check_integer(option(name), getattr(self, name), minimum=0)
        if not self.axes or len(set(self.axes)) != len(self.axes):
            raise ValueError(f"--axes must name distinct axes, got {','.join(self.axes)!r}")
        if self.select_by not in ("val_loss", "val_accuracy"):
            raise ValueError(f"--select-by must be val_loss or val_accuracy, got {self.select_by!r}")
        if self.early_stop and not self.val_every:
            raise ValueError("--early-stop needs --val-every (validations to compare)")
        return self


@dataclass
class Examples:
    """One split's examples as tensors: pairs (side a, side b) and MOS values."""

    pair_a: dict  # Rows.tensors() of side a, (P, ...)
    pair_b: dict
    pair_axis: torch.Tensor  # (P,) axis index
    pair_target: torch.Tensor  # (P,) 1.0 a preferred, 0.0 b preferred
    mos: dict  # Rows.tensors(), (M, ...)
    mos_axis: torch.Tensor  # (M,)
    mos_value: torch.Tensor  # (M,)
    ties: int = 0  # pairs left out as ties
    ids: list = field(default_factory=list)  # (id, what) per example, for the fingerprint

    def to(self, device) -> Examples:
        """The same examples with every tensor on `device`."""
        moved = {name: {k: v.to(device) for k, v in getattr(self, name).items()} for name in ("pair_a", "pair_b", "mos")}
        return Examples(**moved, pair_axis=self.pair_axis.to(device), pair_target=self.pair_target.to(device),
                        mos_axis=self.mos_axis.to(device), mos_value=self.mos_value.to(device), ties=self.ties, ids=self.ids)

    @property
    def pairs(self) -> int:
        return int(self.pair_axis.shape[0])

    def __len__(self) -> int:
        return self.pairs + int(self.mos_axis.shape[0])


@dataclass
class RewardState:
    step: int = 0
    epoch: int = 0
    position: int = 0  # next batch of the epoch
    best_value: float | None = None  # best val_loss (lowest) or val_accuracy (highest)
    best_step: int | None = None
    validations_since_best: int = 0
    early_stopped: bool = False


@dataclass
class RewardRun:
    config: RewardConfig
    model: RewardModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_examples: Examples
    valid_examples: Examples
    encoder: dict  # the audio encoder's spec (with its dim)
    data: dict  # counts and fingerprint
    total_steps: int
    state: RewardState = field(default_factory=RewardState)
    order: tuple[int, list[int]] | None = None
    stop_requested: bool = False
    last_metrics: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # the command's options, written as options.yaml
    skipped: dict = field(default_factory=dict)  # why records were not used, counted


# ---- the objective (pure functions of tensors) ---------------------------------------------


def bradley_terry_loss(score_a: torch.Tensor, score_b: torch.Tensor, target: torch.Tensor,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean of -[y' log sigmoid(s_a - s_b) + (1 - y') log sigmoid(s_b - s_a)], y' = y (1 - eps) + eps / 2;
    target y is 1 where a is preferred, 0 where b is. With eps = 0 and y = 1 this is -log sigmoid(s_a - s_b)."""
    smoothed = target * (1 - label_smoothing) + label_smoothing / 2
    return F.binary_cross_entropy_with_logits(score_a - score_b, smoothed)


def pairwise_accuracy(score_a: torch.Tensor, score_b: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per pair: 1 when the higher score is the preferred side, 0.5 for equal scores, else 0."""
    sign = torch.sign(score_a - score_b)  # +1: a scores higher
    wanted = target * 2 - 1
    return (sign * wanted + 1) / 2


# ---- data -------------------------------------------------------------------------------------


def read_examples(records: Sequence[dict], inputs: RewardInputs, axes: Sequence[str]) -> tuple[Examples, dict]:
    """The examples of `records` (one split) and {why: count} of those left out (ties, records with
    neither a pair nor a score, records whose audio could not be encoded; the last raise ValueError
    naming the first unless they are error records already)."""
    skipped: dict[str, int] = {}
    pairs, pair_judgement, mos, mos_judgement = [], [], [], []
    for record in records:
        try:
            judgements = pair_judgements(record, axes) if is_pair(record) else list(mos_of(record, axes).items())
        except RecordError as exc:
            raise ValueError(f"record {record.get('id')!r}: {exc}") from None
        if not judgements:
            skipped["no judgement"] = skipped.get("no judgement", 0) + 1
        for axis, judgement in judgements:
            if not is_pair(record):
                mos.append(record)
                mos_judgement.append((axes.index(axis), judgement))
            elif judgement in TIES:
                skipped["ties"] = skipped.get("ties", 0) + 1
            else:
                pairs.append(record)
                pair_judgement.append((axes.index(axis), 1.0 if judgement == "a" else 0.0))
    side_a, failed_a = inputs.rows(pairs, "a")
    side_b, failed_b = inputs.rows(pairs, "b")
    scored, failed_m = inputs.rows(mos, "a")
    failed = [(pairs[i], why) for i, why in {**failed_a, **failed_b}.items()] + [(mos[i], why) for i, why in failed_m.items()]
    if failed:
        record, why = failed[0]
        raise ValueError(f"{len(failed)} records cannot be used, e.g. {record.get('id')!r}: {why}")
    ids = [(r.get("id"), r.get("split"), "pair", j) for r, j in zip(pairs, pair_judgement)]
    ids += [(r.get("id"), r.get("split"), "mos", j) for r, j in zip(mos, mos_judgement)]
    return Examples(
        pair_a=side_a.tensors(), pair_b=side_b.tensors(),
        pair_axis=torch.tensor([a for a, _ in pair_judgement], dtype=torch.long),
        pair_target=torch.tensor([y for _, y in pair_judgement], dtype=torch.float32),
        mos=scored.tensors(), mos_axis=torch.tensor([a for a, _ in mos_judgement], dtype=torch.long),
        mos_value=torch.tensor([v for _, v in mos_judgement], dtype=torch.float32),
        ties=skipped.get("ties", 0), ids=ids), skipped


def _fingerprint(train_examples: Examples, valid_examples: Examples) -> dict:
    """Counts and a hash of every example's identity, judgement and input vectors (what a resume compares)."""
    digest = hashlib.sha256()
    for examples in (train_examples, valid_examples):
        digest.update(json.dumps(examples.ids, default=str).encode())
        for rows in (examples.pair_a, examples.pair_b, examples.mos):
            for name in sorted(rows):
                digest.update(rows[name].numpy().tobytes())
    return {"train": len(train_examples), "valid": len(valid_examples), "fingerprint": digest.hexdigest()[:16]}


def _take(rows: dict, index: torch.Tensor) -> dict:
    return {name: value[index] for name, value in rows.items()}


def _scores(model: RewardModel, rows: dict) -> torch.Tensor:
    return model(rows["audio"], rows["text"], rows["has_text"], rows["reference"], rows["has_reference"])  # (B, K)


# ---- setup ------------------------------------------------------------------------------------


def read_trainer_state(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """trainer_state.json and .safetensors of a reward model folder; CheckpointError naming the file."""
    folder = Path(folder)
    read_reward_config(folder)
    path = folder / TRAINER_STATE_JSON
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {folder} is a reward model without the trainer state a resume needs")
    saved = read_json_of_format(path, TRAINER_STATE_FORMAT, TRAINER_STATE_VERSION, "an mllm reward trainer state")
    missing = [k for k in ("step", "epoch", "position", "total_steps", "config", "data", "optimizer") if k not in saved]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    return saved, read_tensors(folder / TRAINER_STATE_TENSORS)


def resolve_config(config: RewardConfig, resume=None, given: Collection[str] | None = None,
                   extend_to: int | None = None) -> tuple[RewardConfig, dict | None, dict | None]:
    """The options a run uses (a resumed run: the checkpoint's, as core/train/sft.py's resolve_config
    decides), with the trainer state read from `resume` (None, None for a fresh run)."""
    return resumed_config(config, resume, given, extend_to, read_state=read_trainer_state, may_change=RESUME_MAY_CHANGE)


def setup(config: RewardConfig, records: Sequence[dict], resume: str | os.PathLike | None = None, *,
          given: Collection[str] | None = None, extend_to: int | None = None, inputs: RewardInputs | None = None,
          cache: str | os.PathLike | None = None) -> RewardRun:
    """Embed the data, build the head, optimizer and scheduler; with `resume`, restore them.
    `inputs`: the frozen towers to use (default: those the config names); `cache`: a folder of
    audio embeddings shared with `mllm encode --cache` (core/encoders/cache.py)."""
    config, saved, tensors = resolve_config(config, resume, given, extend_to)
    if saved is not None:
        spec = read_reward_config(resume)["encoder"]
    else:
        spec = encoder_spec(config.encoder, config.layer, config.frame_rate)
    if inputs is None:
        from mllm.core.encoders.cache import EmbeddingCache

        inputs = RewardInputs(ModelEncoder(dict(spec), device=config.device, cache=EmbeddingCache(cache) if cache else None),
                              TextEmbedder.load(config.text_encoder, device=config.device))
    train_records = [r for r in records if r.get("split") == TRAIN]
    valid_records = [r for r in records if r.get("split") == "valid"]
    if not train_records:
        unsplit = sum(r.get("split") is None for r in records)
        why = f": {unsplit} records have no `split` (a record is trained on only with \"split\": \"train\")" if unsplit else ""
        raise ValueError(f"no training records (split 'train'){why}")
    axes = list(config.axes)
    train_examples, skipped = read_examples(train_records, inputs, axes)
    valid_examples, _ = read_examples(valid_records, inputs, axes)
    if len(train_examples) == 0:
        raise ValueError("the training records hold no usable judgement (pairs that are not ties, or MOS values "
                         f"named {', '.join(axes)})")
    if (config.keep_best or config.early_stop) and len(valid_examples) == 0:
        raise ValueError("--keep-best and --early-stop need validation records (split 'valid')")
    data = _fingerprint(train_examples, valid_examples)
    if saved is not None and saved["data"].get("fingerprint") != data["fingerprint"]:
        raise ValueError(f"{resume} was trained on other data ({data['train']} train / {data['valid']} valid examples "
                         f"here, {saved['data'].get('train')} / {saved['data'].get('valid')} in the checkpoint, or the "
                         "same counts with other content); resuming needs the same records")
    spec = {**spec, "dim": inputs.encoder.spec.get("dim")}

    torch.manual_seed(config.seed)
    if saved is None:
        sides = [rows for rows in (train_examples.pair_a, train_examples.pair_b, train_examples.mos) if len(rows["audio"])]
        audio = torch.cat([rows["audio"] for rows in sides])  # every training audio vector, (N, audio_dim)
        texts = torch.cat([rows["text"] for rows in sides])
        has = torch.cat([rows["has_text"] for rows in sides]) > 0
        model = RewardModel(RewardModelConfig(audio_dim=int(audio.shape[1]), text_dim=inputs.text.dim,
                                              hidden=config.hidden, dropout=config.dropout, axes=axes))
        model.set_standardization(audio, texts[has] if bool(has.any()) else None)
        with torch.no_grad():  # MOS: the affine map starts at each axis's mean training score
            for k in range(len(axes)):
                values = train_examples.mos_value[train_examples.mos_axis == k]
                if len(values):
                    model.mos_offset[k] = values.mean()
    else:
        model, _ = load_reward_model(resume)
    model.to(config.device)
    train_examples, valid_examples = train_examples.to(config.device), valid_examples.to(config.device)
    batches_per_epoch = math.ceil(len(train_examples) / config.batch_size)
    total_steps = config.steps or max(1, math.ceil(config.epochs * batches_per_epoch))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if saved is not None:
        restore_optimizer(optimizer, saved, tensors, config.device, resume)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.warmup, total_steps, config.min_lr_ratio),
        last_epoch=-1 if saved is None else saved["step"] - 1)
    run = RewardRun(config, model, optimizer, scheduler, train_examples, valid_examples, spec, data, total_steps,
                    skipped=skipped)
    if saved is not None:
        run.state = RewardState(**{f.name: saved[f.name] for f in fields(RewardState) if f.name in saved})
        run.last_metrics = saved.get("last_metrics", {})
        if "rng.torch" not in tensors:
            raise CheckpointError(f"{Path(resume) / TRAINER_STATE_TENSORS} lacks rng.torch")
        torch.set_rng_state(tensors["rng.torch"])  # last: building the model drew random numbers
    return run


# ---- the loop ---------------------------------------------------------------------------------


def next_batch(run: RewardRun) -> torch.Tensor:
    """Example indices of the batch at the cursor (epoch, position); advances the cursor."""
    n, size, state = len(run.train_examples), run.config.batch_size, run.state
    if state.position * size >= n:
        state.epoch, state.position = state.epoch + 1, 0
    if run.order is None or run.order[0] != state.epoch:
        run.order = (state.epoch, epoch_order(run.config.seed, state.epoch, n))
    chosen = run.order[1][state.position * size:(state.position + 1) * size]
    state.position += 1
    return torch.tensor(chosen, dtype=torch.long)


def objective(run: RewardRun, examples: Examples, chosen: torch.Tensor, label_smoothing: float) -> dict:
    """{"loss", "bt_loss", "mos_loss"} of the examples `chosen` (indices: pairs first, then MOS)."""
    device = run.config.device
    pairs, mos = chosen[chosen < examples.pairs], chosen[chosen >= examples.pairs] - examples.pairs
    zero = torch.zeros((), device=device)
    bt, mse = zero, zero
    if len(pairs):
        axis = examples.pair_axis[pairs].to(device)[:, None]
        score_a = _scores(run.model, _take(examples.pair_a, pairs)).gather(1, axis)[:, 0]  # (P,)
        score_b = _scores(run.model, _take(examples.pair_b, pairs)).gather(1, axis)[:, 0]
        bt = bradley_terry_loss(score_a, score_b, examples.pair_target[pairs].to(device), label_smoothing)
    if len(mos):
        axis = examples.mos_axis[mos].to(device)
        score = _scores(run.model, _take(examples.mos, mos)).gather(1, axis[:, None])[:, 0]  # (M,)
        predicted = run.model.mos_scale[axis] * score + run.model.mos_offset[axis]
        mse = F.mse_loss(predicted, examples.mos_value[mos].to(device))
    return {"loss": bt + run.config.mos_weight * mse, "bt_loss": bt, "mos_loss": mse}


@torch.no_grad()
def evaluate(run: RewardRun, examples: Examples | None = None) -> dict:
    """val_loss, val_accuracy (overall and per axis) and val_srcc per axis of `examples` (default: valid)."""
    from scipy.stats import spearmanr

    examples = run.valid_examples if examples is None else examples
    if len(examples) == 0:
        return {}
    was_training = run.model.training
    run.model.eval()
    out = {"val_loss": float(objective(run, examples, torch.arange(len(examples)), 0.0)["loss"])}
    axes = run.model.axes
    if examples.pairs:
        axis = examples.pair_axis[:, None]
        score_a = _scores(run.model, examples.pair_a).gather(1, axis)[:, 0]
        score_b = _scores(run.model, examples.pair_b).gather(1, axis)[:, 0]
        correct = pairwise_accuracy(score_a, score_b, examples.pair_target)
        out["val_accuracy"] = float(correct.mean())
        for k, name in enumerate(axes):
            mine = examples.pair_axis == k
            if bool(mine.any()):
                out[f"val_accuracy.{name}"] = float(correct[mine].mean())
    if len(examples.mos_axis):
        scores = _scores(run.model, examples.mos)
        for k, name in enumerate(axes):
            mine = examples.mos_axis == k
            if int(mine.sum()) > 2:
                out[f"val_srcc.{name}"] = float(spearmanr(scores[mine, k].cpu().numpy(),
                                                          examples.mos_value[mine].cpu().numpy())[0])
    run.model.train(was_training)
    return out


def train(run: RewardRun) -> Iterator[dict]:
    """Optimizer steps until `total_steps` (or `stop_requested`); yields each step's metrics; saves
    every `save_every` steps and at the end. TrainingDiverged before a non-finite step is applied."""
    config, model, state = run.config, run.model, run.state
    model.train()
    while state.step < run.total_steps and not run.stop_requested and not state.early_stopped:
        started = time.perf_counter()
        chosen = next_batch(run)
        terms = objective(run, run.train_examples, chosen, config.label_smoothing)
        run.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        parameters = [p for p in model.parameters() if p.grad is not None]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm) if config.max_grad_norm > 0
                          else torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters])))
        loss = float(terms["loss"].detach())
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise TrainingDiverged(f"training diverged at step {state.step + 1}: loss {loss:.4g}, gradient norm "
                                   f"{grad_norm:.4g} (not finite); the step was not applied", state.step + 1, loss, grad_norm)
        lr = run.scheduler.get_last_lr()[0]
        run.optimizer.step()
        run.scheduler.step()
        state.step += 1
        metrics = {"step": state.step, "epoch": state.epoch, "loss": loss, "bt_loss": float(terms["bt_loss"].detach()),
                   "mos_loss": float(terms["mos_loss"].detach()), "lr": lr, "grad_norm": grad_norm,
                   "examples": len(chosen), "s_per_step": time.perf_counter() - started}
        if (config.val_every and state.step % config.val_every == 0) or state.step == run.total_steps:
            metrics.update(evaluate(run))
            _track_best(run, metrics)
        run.last_metrics = metrics
        if config.save_every and state.step % config.save_every == 0 and state.step < run.total_steps:
            save(run)
        yield metrics
    save(run)


def best_folder(config: RewardConfig) -> Path:
    output = Path(config.output)
    return output.with_name(output.name + "-best")


def _track_best(run: RewardRun, metrics: dict) -> None:
    state, config = run.state, run.config
    value = metrics.get(config.select_by)
    if value is None:
        return
    higher = config.select_by == "val_accuracy"
    better = math.isfinite(value) and (state.best_value is None or (value > state.best_value if higher else value < state.best_value))
    if better:
        state.best_value, state.best_step, state.validations_since_best = value, state.step, 0
        metrics["best"] = True
        if config.keep_best:
            save(run, best_folder(config))
    else:
        state.validations_since_best += 1
        if config.early_stop and state.validations_since_best >= config.early_stop:
            state.early_stopped = True
            metrics["early_stopped"] = True


# ---- checkpoints ------------------------------------------------------------------------------


def save(run: RewardRun, folder: str | os.PathLike | None = None) -> Path:
    """The reward model folder with its trainer state, written atomically. TrainingDiverged, writing
    nothing, when a weight is not finite."""
    from safetensors.torch import save as safetensors_bytes

    from mllm.core.config import RUN_OPTIONS_FILE, write_config

    folder = Path(folder or run.config.output)
    tensors, optimizer_json = flatten_optimizer(run.optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    trainer_state = {"format": TRAINER_STATE_FORMAT, "version": TRAINER_STATE_VERSION, **asdict(run.state),
                     "total_steps": run.total_steps, "config": asdict(run.config), "data": run.data,
                     "optimizer": optimizer_json, "scheduler": run.scheduler.state_dict(),
                     "last_metrics": run.last_metrics}
    also = {TRAINER_STATE_JSON: (json.dumps(trainer_state, indent=2) + "\n").encode(),
            TRAINER_STATE_TENSORS: safetensors_bytes({k: v.contiguous() for k, v in tensors.items()})}
    if run.options:
        also[RUN_OPTIONS_FILE] = write_config(run.options).encode()
    extra = {"trainer": "train-reward", "step": run.state.step, "data": run.data, "best_step": run.state.best_step}
    try:
        return save_reward_model(run.model, folder, encoder=run.encoder, text_encoder=run.config.text_encoder,
                                 extra=extra, also=also)
    except FloatingPointError as exc:
        raise TrainingDiverged(f"{exc} (after step {run.state.step}, to {folder})", run.state.step) from None
