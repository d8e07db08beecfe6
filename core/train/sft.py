"""Supervised fine-tuning of a MusicLLM on instruction records: one loop, read top to bottom.

    run = setup(SFTConfig(llm="smollm2", steps=300), records)   # or setup(config, records, resume="ckpt/")
    for metrics in train(run):                                   # one dict per optimizer step
        print(json.dumps(metrics))                               # {"step", "epoch", "loss", "lr", "tokens_per_s", ...}

What a step does:
- the data is a stream of micro-batches: epoch e visits the `train` records in the order
  `randperm(n, generator=seed(seed, e))`, `batch_size` at a time (the last one may be smaller);
- `grad_accum` micro-batches make one optimizer step. Each micro-batch loss (mean cross-entropy over
  its answer tokens, end-of-turn token included) is weighted by its share of the step's answer
  tokens, so k micro-batches give the gradient of one k-times-larger batch;
- forward under `torch.autocast(device, bfloat16)` when `bf16` (CPU included);
- `clip_grad_norm_(max_grad_norm)`, AdamW on `model.trainable_parameters()` (the projector, plus the
  LoRA adapter unless `projector_only`), learning rate `lr * lr_factor(step)`: linear warmup, then
  cosine to `min_lr_ratio * lr` (LambdaLR);
- every `val_every` steps (and at the end) the mean answer-token loss on the `valid` split;
- with `select_by="val_score"`, each validation also generates an answer (greedy) for every
  `valid` record and scores it with its task's own per-item score through the task registry
  (core/evaluation/kinds.py, as eval-mir and grpo's reward: key the MIREX weighted score, tempo
  1 / 0.5 / 0, numbers the closeness on the scale, labels exact or F1): `val_score`, the mean;
- every `save_every` steps (and at the end) a checkpoint; with `keep_best`, each validation that
  improves the best `val_loss` (or the highest `val_score` under `select_by="val_score"`) also
  writes a checkpoint to `<output>-best`; with `early_stop` = k,
  training ends after k validations in a row without a new best.

A step whose loss or gradient norm is not finite is not applied: `train` raises
`TrainingDiverged` (step, loss, gradient norm) before `optimizer.step()`, and `save` refuses
non-finite weights, so no NaN checkpoint is ever written (the last good one stays). A non-finite
`val_loss` is never a new best.

Under `torchrun --nproc-per-node N` (core/train/distributed.py) the same loop runs in N processes
with DistributedDataParallel: a micro-batch is `batch_size * N` records of the epoch order, rank r
takes every N-th of them, token counts and losses are summed over the ranks, so N processes with
batch size B take the steps of one process with batch size N*B. Rank 0 writes checkpoints.

Before step 0 the projector's standardisation (per-dimension mean and std of every training frame)
is set from the training embeddings; it is saved with the projector.

Checkpoint = the model checkpoint of core/model (config.json, projector.safetensors, adapter/) plus
the trainer state, all written into a temporary folder renamed into place:

    trainer_state.json          step, epoch, position in the epoch, the SFTConfig, a fingerprint of
                                the training data, optimizer param groups, scheduler state
    trainer_state.safetensors   optimizer moments ("optimizer.<param index>.<name>") and RNG states
    options.yaml                the command's options as the run resolved them (`run.options`, set
                                by `mllm sft`), in the form `mllm sft --config` reads (core/config.py)

No pickle anywhere: `resume` reads JSON and safetensors, restores the optimizer, the scheduler and
the RNG (after the model is rebuilt, since building draws random numbers), and continues with the
next micro-batch of the same epoch order: the losses after a resume equal those of a run that was
never stopped.

Resume checks what it claims (`resolve_config`): the options are the checkpoint's; an option the
caller gave (`given`) with another value is refused by name, except RESUME_MAY_CHANGE (which carry
over from the checkpoint when not given) and `device` (this machine's); `extend_to=N` is the one way
to train a saved run for more steps. The data must be the same records with the same content (ids,
split, messages, answers, embedding bytes): a fingerprint of all of it is saved and compared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Collection, Iterator, Sequence

import numpy as np
import torch

from mllm.core.config import RUN_OPTIONS_FILE, write_config
from mllm.core.encoders.for_model import ModelEncoder, encoder_spec, same_encoder
from mllm.core.model.checkpoint import CheckpointError, read_checkpoint_config, read_tensors, replace_folder
from mllm.core.io.splits import TRAIN
from mllm.core.options import MAX_FRAME_RATE, check_integer, check_number
from mllm.core.train import distributed
from mllm.core.train.augment import chroma_columns, transpose_record
from mllm.core.train.precision import bf16_supported
from mllm.core.train.trainer_state import (TRAINER_STATE_JSON, TRAINER_STATE_TENSORS, flatten_optimizer, option,
                                          read_state_json, restore_optimizer, resumed_config)
from mllm.core.model import (DEFAULT_SYSTEM_PROMPT, IGNORE_INDEX, Batch, Example, LoraSettings, MusicLLM,
                             load_checkpoint, save_checkpoint)

__all__ = ["SFTConfig", "TrainerState", "Run", "TrainingDiverged", "setup", "resolve_config", "train", "evaluate",
           "save", "lr_factor", "bf16_supported", "encoder_for_run", "data_fingerprint", "read_trainer_state",
           "option", "TRAINER_STATE_JSON", "TRAINER_STATE_TENSORS", "RESUME_MAY_CHANGE"]

TRAINER_STATE_FORMAT = "mllm-sft-trainer"
TRAINER_STATE_VERSION = 2  # 2: the data fingerprint covers content (1: record ids only)
# Options a resumed run may change (they change neither the data order nor the maths of a step);
# when not given they carry over from the checkpoint. `device` is always this run's.
RESUME_MAY_CHANGE = ("output", "val_every", "save_every", "keep_best", "early_stop", "grad_checkpointing")


class TrainingDiverged(FloatingPointError):
    """A step gave a non-finite loss or gradient norm (not applied), or the weights became non-finite
    (not saved). `step` is the step that failed; `loss` and `grad_norm` what it measured."""

    def __init__(self, message: str, step: int, loss: float = math.nan, grad_norm: float = math.nan):
        super().__init__(message)
        self.step, self.loss, self.grad_norm = step, loss, grad_norm


@dataclass
class SFTConfig:
    llm: str = "smollm2"  # hub id, folder, .gguf, or "smollm2" (see core/model/llm.py)
    projector: str = "mlp"  # linear | mlp | strided
    stride: int = 4  # strided projector: frames per audio token
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    projector_only: bool = False  # LLaVA's stage 1: no adapter, the LLM frozen
    steps: int | None = None  # optimizer steps; None = `epochs` passes over the training records
    epochs: float = 1.0
    batch_size: int = 8  # records per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup: int = 0  # optimizer steps of linear warmup
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    max_grad_norm: float = 1.0  # 0 = no clipping
    bf16: bool = False  # torch.autocast(bfloat16) around the forward pass
    grad_checkpointing: bool = False
    val_every: int = 0  # 0 = validate only at the end
    save_every: int = 0  # 0 = save only at the end (and on interruption)
    keep_best: bool = False  # also save the checkpoint of the lowest val_loss to <output>-best
    early_stop: int = 0  # stop after this many validations without a new best val_loss (0 = never)
    transpose: bool = False  # key records: each draw moved by a random interval with its chroma (core/train/augment.py)
    select_by: str = "val_loss"  # what keep_best / early_stop compare: val_loss (lower) or val_score (higher)
    score_max_new_tokens: int = 32  # val_score: the longest generated answer
    output: str = "checkpoint"
    seed: int = 0
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    device: str = "cpu"

    def check(self) -> "SFTConfig":
        """Raise ValueError naming the first option out of range (NaN and inf included: core/options.py)."""
        check_number("--lr", self.lr, above=0)
        check_number("--max-grad-norm", self.max_grad_norm, minimum=0)
        check_number("--weight-decay", self.weight_decay, minimum=0)
        check_number("--epochs", self.epochs, above=0)
        check_number("min_lr_ratio", self.min_lr_ratio, minimum=0, maximum=1)
        check_number("--lora-dropout", self.lora_dropout, minimum=0, below=1)
        check_number("--lora-alpha", self.lora_alpha, above=0)
        if self.steps is not None:
            check_integer("--steps", self.steps, minimum=1)
        for name in ("batch_size", "grad_accum", "stride", "lora_rank"):
            check_integer(option(name), getattr(self, name), minimum=1)
        for name in ("warmup", "val_every", "save_every", "early_stop"):
            check_integer(option(name), getattr(self, name), minimum=0)
        if self.projector not in ("linear", "mlp", "strided"):
            raise ValueError(f"--projector must be linear, mlp or strided, got {self.projector!r}")
        if not self.projector_only and not self.lora_targets:
            raise ValueError("--lora-targets must name at least one module (or train with --projector-only)")
        if self.early_stop and not self.val_every:
            raise ValueError("--early-stop needs --val-every (validations to compare)")
        if self.select_by not in ("val_loss", "val_score"):
            raise ValueError(f"--select-by must be val_loss or val_score, got {self.select_by!r}")
        check_integer("--score-max-new-tokens", self.score_max_new_tokens, minimum=1)
        return self


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch of the next micro-batch
    position: int = 0  # index of the next micro-batch in that epoch
    best_val_loss: float | None = None  # lowest validation loss so far
    best_val_score: float | None = None  # highest val_score so far (select_by="val_score")
    best_step: int | None = None  # the step that reached it
    validations_since_best: int = 0  # validations in a row without a new best (for early_stop)
    early_stopped: bool = False  # the run ended by early stopping (a resume does not continue it)


@dataclass
class Run:
    """Everything `train` needs; `setup` builds it."""

    config: SFTConfig
    model: MusicLLM
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_examples: list[Example]
    valid_examples: list[Example]
    data: dict  # {"train", "valid": counts, "ids", "fingerprint"}: what a resume compares (data_fingerprint)
    total_steps: int
    state: TrainerState = field(default_factory=TrainerState)
    share: distributed.Share = field(default_factory=distributed.Share)  # this process's rank and the world size
    ddp: torch.nn.Module | None = None  # the model wrapped in DistributedDataParallel (torchrun only)
    order: tuple[int, list[int]] | None = None  # (epoch, its order): computed once per epoch
    stop_requested: bool = False  # set from outside (Ctrl-C): `train` stops after the current step
    last_metrics: dict = field(default_factory=dict)
    saved_step: int | None = None  # the step of the checkpoint in `config.output`, once there is one
    train_records: list[dict] = field(default_factory=list)  # for --transpose: examples re-rendered per draw
    valid_prompts: list[Example] = field(default_factory=list)  # val_score: the valid records without answers ...
    valid_rewards: list = field(default_factory=list)  # ... and their prepared references (core/train/rewards.py)
    chroma: tuple[int, int] | None = None  # the chroma columns of the encoder (--transpose)
    shifts: tuple[int, list[int]] | None = None  # (epoch, its intervals): computed once per epoch
    options: dict = field(default_factory=dict)  # the command's options (`mllm ... --config` reads them): options.yaml

    @property
    def records_per_micro_batch(self) -> int:  # over every rank
        return self.config.batch_size * self.share.world


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based).

    Warmup: (step + 1) / warmup for step < warmup (the last warmup step reaches the full rate).
    Then cosine: min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2, p = (step - warmup) / (total - warmup).
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---- setup ------------------------------------------------------------------------------------


def _encoder_of(records: Sequence[dict]) -> dict:
    """The encoder the records were encoded with (the checkpoint's `encoder`), read from the first."""
    first = records[0]
    dim = int(np.asarray(first["audio_embedding"]).shape[-1])
    rate = first.get("frame_rate")
    return {"name": str(first.get("encoder") or "unknown"), "dim": dim, "frame_rate": None if rate is None else float(rate),
            "layer": first.get("layer")}


def encoder_for_run(name: str, layer: str | None, frame_rate: float, given: Collection[str] = (),
                    resume: str | os.PathLike | None = None) -> dict:
    """The encoder spec `mllm sft --encoder NAME --layer L --frame-rate R` encodes with.

    Fresh run: encoder_spec(NAME, L, R), R in [0, MAX_FRAME_RATE] (core/options.py). Resumed run: the
    checkpoint's encoder; an encoder, layer or frame rate in `given` that is not the checkpoint's is refused."""
    if resume is None or "frame_rate" in given:
        check_number("--frame-rate", frame_rate, minimum=0, maximum=MAX_FRAME_RATE)
    asked = encoder_spec(name, layer, frame_rate)
    if resume is None:
        return asked
    spec = read_checkpoint_config(resume)["encoder"]
    differ = []
    if "encoder" in given and not same_encoder(asked["name"], spec.get("name")):
        differ.append(f"--encoder is {name!r}, the checkpoint's is {spec.get('name')!r}")
    if "layer" in given and asked["layer"] != spec.get("layer"):
        differ.append(f"--layer is {asked['layer']!r}, the checkpoint's is {spec.get('layer')!r}")
    if "frame_rate" in given and spec.get("frame_rate") is not None and asked["frame_rate"] != float(spec["frame_rate"]):
        differ.append(f"--frame-rate is {frame_rate!r}, the checkpoint's is {spec['frame_rate']!r}")
    if differ:
        raise ValueError(f"{'; '.join(differ)} (a resumed run encodes with the checkpoint's encoder: leave these out)")
    return spec


def data_fingerprint(train_records: Sequence[dict], valid_records: Sequence[dict]) -> dict:
    """What a resume compares: the record counts, a hash of the ids ("ids") and a hash of the content
    ("fingerprint": each record's id, split, messages, answer and audio_embedding dtype, shape and bytes)."""
    ids, content = hashlib.sha256(), hashlib.sha256()
    for record in [*train_records, *valid_records]:
        embedding = np.ascontiguousarray(record["audio_embedding"])
        header = [record.get("id"), record.get("split"), record.get("messages"), record.get("answer"),
                  embedding.dtype.str, list(embedding.shape)]
        ids.update(json.dumps(record.get("id")).encode() + b"\n")
        content.update(json.dumps(header, sort_keys=True, default=str).encode() + b"\n")
        content.update(embedding.tobytes())  # its length follows from the header: no separator needed
    return {"train": len(train_records), "valid": len(valid_records), "ids": ids.hexdigest()[:16],
            "fingerprint": content.hexdigest()[:16]}


def _check_same_data(resume, saved: dict, data: dict) -> None:
    if saved.get("fingerprint") == data["fingerprint"]:
        return
    what = ("the same record ids with other content (messages, answers, splits or embeddings)"
            if saved.get("ids") == data["ids"] else
            f"other records ({data['train']} train / {data['valid']} valid here, "
            f"{saved.get('train')} / {saved.get('valid')} in the checkpoint)")
    raise ValueError(f"{resume} was trained on other data: these are {what}; resuming needs the same data")


def split_records(records: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(train, valid): records whose `split` is "train" and "valid". Every other split, and a
    record without one, is left out: a record is training data only when it says so (the rule of
    core/io/splits.py, which the probe of `regress` follows too)."""
    train_records = [r for r in records if r.get("split") == TRAIN]
    valid_records = [r for r in records if r.get("split") == "valid"]
    return train_records, valid_records


def read_trainer_state(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """trainer_state.json and trainer_state.safetensors of a checkpoint, checked; CheckpointError
    naming the file that cannot be used (FileNotFoundError when `folder` is no checkpoint at all)."""
    folder = Path(folder)
    saved = read_state_json(folder, TRAINER_STATE_FORMAT, other_format="an mllm sft trainer state",
                            missing=f"{folder} is a model checkpoint without the trainer state a resume needs")
    path = folder / TRAINER_STATE_JSON
    if saved.get("version") != TRAINER_STATE_VERSION:
        raise CheckpointError(f"{path} is trainer state version {saved.get('version')!r}, this mllm resumes version "
                              f"{TRAINER_STATE_VERSION} (version 1 fingerprinted record ids, not their content): "
                              "the checkpoint still loads for inference; train further in a new run")
    missing = [key for key in ("step", "epoch", "position", "total_steps", "config", "data", "optimizer") if key not in saved]
    if missing or not isinstance(saved["config"], dict):
        raise CheckpointError(f"{path} lacks {', '.join(missing) or 'a config object'}")
    return saved, read_tensors(folder / TRAINER_STATE_TENSORS)


def _resolve(config, resume, given, extend_to) -> tuple[SFTConfig, dict | None, dict | None]:
    """resolve_config, plus the trainer state read from `resume` (None, None for a fresh run)."""
    return resumed_config(config, resume, given, extend_to, read_state=read_trainer_state, may_change=RESUME_MAY_CHANGE)


def resolve_config(config: SFTConfig, resume: str | os.PathLike | None = None, given: Collection[str] | None = None,
                   extend_to: int | None = None) -> SFTConfig:
    """The options a run will use, checked (ValueError naming the option at fault).

    A fresh run uses `config`. A resumed run (`resume` = its checkpoint folder) uses the
    checkpoint's options, except:
    - `device` is always `config.device` (the machine this run is on);
    - RESUME_MAY_CHANGE come from `config` when in `given`, else from the checkpoint; `output`
      not given is the resume folder itself;
    - any other option in `given` whose value is not the checkpoint's is refused by name;
    - `extend_to` = N > the run's total steps makes N the total (`steps`); the warmup + cosine
      schedule is then that of an N-step run from the resumed step on.
    `given`: the option names the caller chose (the CLI passes those on the command line);
    None = the fields of `config` that differ from SFTConfig's defaults."""
    return _resolve(config, resume, given, extend_to)[0]


def setup(config: SFTConfig, records: Sequence[dict], resume: str | os.PathLike | None = None, *,
          given: Collection[str] | None = None, extend_to: int | None = None) -> Run:
    """Build model, optimizer, scheduler and data; with `resume`, restore them from a checkpoint
    (options as `resolve_config(config, resume, given, extend_to)` decides)."""
    config, saved, tensors = _resolve(config, resume, given, extend_to)
    share = distributed.start(config.device)
    if saved is not None and saved.get("world_size", 1) != share.world:
        raise ValueError(f"{resume} was trained by {saved.get('world_size', 1)} processes, this run has {share.world}: "
                         "resume with the same number (the data order depends on it)")
    train_records, valid_records = split_records(records)
    if not train_records:
        unsplit = sum(r.get("split") is None for r in records)
        why = (f": {unsplit} records have no `split`, and a record is trained on only with \"split\": \"train\" "
               "(mllm build-instructions assigns splits)") if unsplit else ""
        raise ValueError(f"no training records (split 'train'){why}")
    if (config.keep_best or config.early_stop or config.select_by == "val_score") and not valid_records:
        raise ValueError("--keep-best, --early-stop and --select-by val_score need validation records (split 'valid')")
    data = data_fingerprint(train_records, valid_records)
    if saved is not None:
        _check_same_data(resume, saved["data"], data)

    # Model: fresh (seeded) or from the checkpoint.
    torch.manual_seed(config.seed)
    if saved is None:
        lora = None if config.projector_only else LoraSettings(config.lora_rank, config.lora_alpha,
                                                               config.lora_dropout, list(config.lora_targets))
        model = MusicLLM.build(config.llm, encoder=_encoder_of(train_records),
                               projector={"kind": config.projector, "stride": config.stride}, lora=lora,
                               system_prompt=config.system_prompt, device=config.device)
    else:
        model = load_checkpoint(resume, device=config.device, trainable=True)
    if config.bf16:  # the frozen base's products run in bf16 under autocast anyway: store them so
        model.store_frozen_linears(torch.bfloat16)
    if share.rank > 0:  # same initial weights on every rank, but each rank its own dropout
        torch.manual_seed(config.seed + 1_000_003 * share.rank)
    checker = ModelEncoder(model.encoder)
    for record in [*train_records, *valid_records]:
        checker.check(record)  # ValueError naming a record from another encoder, size or frame rate
        if not np.isfinite(np.asarray(record["audio_embedding"], dtype=np.float32)).all():
            raise ValueError(f"record {record.get('id')!r}: 'audio_embedding' holds NaN or inf")
    if config.grad_checkpointing:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    train_examples = [model.example(r) for r in train_records]
    valid_examples = [model.example(r) for r in valid_records]
    chroma = chroma_columns(model.encoder) if config.transpose else None
    if config.transpose and chroma is None:
        raise ValueError(f"--transpose rolls chroma features: the encoder {model.encoder.get('name')!r} has none "
                         "(use a DSP encoder with chroma, e.g. dsp or chroma+onset+loudness)")
    if saved is None:  # standardise the projector's input with training-set statistics
        frames = torch.cat([e.audio for e in train_examples]).double()  # (sum T, D)
        mean, std = frames.mean(0), frames.std(0, correction=0)
        if chroma is not None:  # transposed draws see every chroma bin in every role: one pooled mean and std
            first, end = chroma
            pooled = mean[first:end].mean()
            std[first:end] = (std[first:end] ** 2 + (mean[first:end] - pooled) ** 2).mean().sqrt()
            mean[first:end] = pooled
        model.projector.set_standardization(mean.float(), std.clamp_min(1e-6).float())

    batches_per_epoch = math.ceil(len(train_examples) / (config.batch_size * share.world))
    total_steps = config.steps or max(1, math.ceil(config.epochs * batches_per_epoch / config.grad_accum))
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if saved is not None:
        restore_optimizer(optimizer, saved, tensors, model.device, resume)
    # Resumed: the schedule continues at the saved step (`initial_lr` comes with the optimizer's groups).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.warmup, total_steps, config.min_lr_ratio),
        last_epoch=-1 if saved is None else saved["step"] - 1)
    ddp = None
    if share.world > 1:  # averages the gradients of the trainable parameters over the ranks in backward
        device = torch.device(config.device)
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    run = Run(config, model, optimizer, scheduler, train_examples, valid_examples, data, total_steps,
              share=share, ddp=ddp, train_records=list(train_records) if chroma else [], chroma=chroma)
    if config.select_by == "val_score":
        run.valid_prompts, run.valid_rewards = _score_references(model, valid_records)
    if saved is not None:
        _restore_trainer_state(run, saved, tensors, resume)
    return run


# ---- the loop ---------------------------------------------------------------------------------


def epoch_order(seed: int, epoch: int, n: int) -> list[int]:
    """The order of epoch `epoch`: a function of (seed, epoch) only, so a resumed run replays it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def next_micro_batch(run: Run) -> list[Example]:
    """This rank's part of the micro-batch at the cursor (epoch, position); advances the cursor.
    Alone: the whole micro-batch. Under torchrun: every world-th record of it, from the rank's
    own offset (empty when the epoch's last micro-batch has fewer records than ranks)."""
    size, n, state = run.records_per_micro_batch, len(run.train_examples), run.state
    if state.position * size >= n:
        state.epoch, state.position = state.epoch + 1, 0
    if run.order is None or run.order[0] != state.epoch:  # one randperm per epoch, not per micro-batch
        run.order = (state.epoch, epoch_order(run.config.seed, state.epoch, n))
    chosen = run.order[1][state.position * size:(state.position + 1) * size][run.share.rank::run.share.world]
    state.position += 1
    if run.chroma is None:
        return [run.train_examples[i] for i in chosen]
    if run.shifts is None or run.shifts[0] != state.epoch:
        run.shifts = (state.epoch, epoch_shifts(run.config.seed, state.epoch, n))
    out = []
    for i in chosen:  # --transpose: record i moved by the epoch's interval for it (0: as it is)
        moved = transpose_record(run.train_records[i], run.shifts[1][i], run.chroma)
        out.append(run.train_examples[i] if moved is None else run.model.example(moved))
    return out


def epoch_shifts(seed: int, epoch: int, n: int) -> list[int]:
    """--transpose: the interval (0-11 semitones) of each training record in epoch `epoch`, a
    function of (seed, epoch) only, so a resumed run replays it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_919)
    return torch.randint(0, 12, (n,), generator=generator).tolist()


def answer_tokens(batch: Batch) -> int:
    return int((batch.labels[:, 1:] != IGNORE_INDEX).sum())


def autocast(run: Run):
    device_type = "cuda" if run.config.device.startswith("cuda") else "cpu"
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=run.config.bf16)


@torch.no_grad()
def evaluate(run: Run, examples: Sequence[Example] | None = None) -> float | None:
    """Mean cross-entropy over every answer token of `examples` (default: the valid split).
    Under torchrun each rank scores every world-th example and the sums are added up."""
    examples = run.valid_examples if examples is None else examples
    if not examples:
        return None
    mine = examples[run.share.rank::run.share.world]
    was_training = run.model.training
    run.model.eval()
    total, count = 0.0, 0
    for start in range(0, len(mine), run.config.batch_size):
        batch = run.model.collate(mine[start:start + run.config.batch_size], "right").to(run.model.device)
        with autocast(run):
            loss = run.model(batch)
        n = answer_tokens(batch)
        total, count = total + float(loss) * n, count + n
    run.model.train(was_training)
    total, count = distributed.all_sum(total, count)
    return total / max(1, count)


def _score_references(model: MusicLLM, records: Sequence[dict]) -> tuple[list[Example], list]:
    """The valid records as prompts, and their references prepared for the task's per-item score;
    ValueError naming the records that cannot be scored (no task, no reference)."""
    from mllm.core.evaluation.mir import EvalOptions, collect_label_sets
    from mllm.core.train.rewards import Reward

    options = EvalOptions()
    reward = Reward({"task": 1.0}, collect_label_sets(records, options), options)
    prepared = reward.prepare_all(records, "valid records (--select-by val_score)")
    return [model.example(r, with_answer=False) for r in records], [(reward, p) for p in prepared]


@torch.no_grad()
def score(run: Run) -> float | None:
    """val_score: the mean per-item score of greedy answers to the valid records (module docstring).
    Under torchrun each rank answers every world-th record and the sums are added up."""
    if not run.valid_prompts:
        return None
    rank, world = run.share.rank, run.share.world
    prompts, rewards = run.valid_prompts[rank::world], run.valid_rewards[rank::world]
    was_training = run.model.training
    run.model.eval()
    total = 0.0
    for start in range(0, len(prompts), run.config.batch_size):
        batch = run.model.collate(prompts[start:start + run.config.batch_size], "left").to(run.model.device)
        with autocast(run):
            answers = run.model.generate(batch, run.config.score_max_new_tokens)
        for (reward, prepared), answer in zip(rewards[start:start + run.config.batch_size], answers):
            total += reward(prepared, answer)[0]
    run.model.train(was_training)
    total, count = distributed.all_sum(total, len(prompts))
    return total / max(1, count)


def train(run: Run) -> Iterator[dict]:
    """Optimizer steps until `total_steps` (or `stop_requested`); yields each step's metrics.
    Saves every `save_every` steps and at the end (also when stopped). Raises TrainingDiverged,
    before the optimizer step, when a step's loss or gradient norm is not finite."""
    config, model, optimizer, scheduler, state = run.config, run.model, run.optimizer, run.scheduler, run.state
    parameters = model.trainable_parameters()
    forward = run.ddp or model  # DDP: same forward, gradients averaged over the ranks in backward
    world = run.share.world
    model.train()
    stopping = False  # agreed by every rank at the end of each step
    while state.step < run.total_steps and not stopping and not state.early_stopped:
        started = time.perf_counter()
        epoch = state.epoch if state.position * run.records_per_micro_batch < len(run.train_examples) else state.epoch + 1
        batches, weights = [], []
        for _ in range(config.grad_accum):
            examples = next_micro_batch(run)
            # A rank left without records (a short last micro-batch) still joins DDP's gradient
            # averaging: it runs one example with weight 0.
            batches.append(model.collate(examples or run.train_examples[:1], "right").to(model.device))
            weights.append(answer_tokens(batches[-1]) if examples else 0)
        step_tokens = max(1.0, distributed.all_sum(sum(weights))[0])  # answer tokens of the step, all ranks
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for i, (batch, weight) in enumerate(zip(batches, weights)):
            # DDP averages gradients once per step (the last micro-batch), over `world` ranks
            sync = i == len(batches) - 1 or run.ddp is None
            with contextlib.nullcontext() if sync else run.ddp.no_sync():
                with autocast(run):  # the forward only: backward ops follow the forward's dtypes
                    loss = forward(batch)  # mean over this micro-batch's answer tokens
                # -> mean over the step's answer tokens (x world: DDP divides the summed gradients by it)
                (loss * (weight * world / step_tokens)).backward()
            loss_sum += float(loss.detach()) * weight
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm) if config.max_grad_norm > 0
                          else torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None])))
        tokens = sum(int(b.attention_mask.sum()) for b, w in zip(batches, weights) if w)
        loss_sum, tokens, stops = distributed.all_sum(loss_sum, tokens, float(run.stop_requested))
        loss = loss_sum / step_tokens  # every rank has the same loss and (averaged) gradients: all stop together
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise TrainingDiverged(f"training diverged at step {state.step + 1}: loss {loss:.4g}, gradient norm "
                                   f"{grad_norm:.4g} (not finite); the step was not applied and nothing was saved",
                                   state.step + 1, loss, grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        state.step += 1
        stopping = stops > 0
        seconds = time.perf_counter() - started
        metrics = {"step": state.step, "epoch": epoch, "loss": loss, "lr": lr,
                   "grad_norm": grad_norm, "tokens_per_s": tokens / seconds, "s_per_step": seconds}
        if (config.val_every and state.step % config.val_every == 0) or state.step == run.total_steps:
            metrics["val_loss"] = evaluate(run)
            if config.select_by == "val_score":
                metrics["val_score"] = score(run)
            _track_best(run, metrics)
        run.last_metrics = metrics
        if config.save_every and state.step % config.save_every == 0 and state.step < run.total_steps:
            save(run)
        yield metrics
    run.stop_requested = stopping
    save(run)


def best_folder(config: SFTConfig) -> Path:
    """Where `keep_best` writes: `<output>-best` beside the run's folder."""
    output = Path(config.output)
    return output.with_name(output.name + "-best")


def _track_best(run: Run, metrics: dict) -> None:
    """After a validation: remember the best val_loss, save it (keep_best), decide on early stopping.
    val_loss is summed over ranks, so every rank takes the same decision."""
    state, config, loss = run.state, run.config, metrics["val_loss"]
    if loss is None:
        return
    if config.select_by == "val_score":
        value = metrics.get("val_score")
        better = value is not None and math.isfinite(value) and (state.best_val_score is None or value > state.best_val_score)
    else:
        better = math.isfinite(loss) and (state.best_val_loss is None or loss < state.best_val_loss)  # NaN is never best
    if better:
        if config.select_by == "val_score":
            state.best_val_score = metrics["val_score"]
        state.best_val_loss, state.best_step, state.validations_since_best = loss, state.step, 0
        metrics["best"] = True
        if config.keep_best:
            save(run, best_folder(config))
    else:
        state.validations_since_best += 1
        if config.early_stop and state.validations_since_best >= config.early_stop:
            state.early_stopped = True
            metrics["early_stopped"] = True


# ---- checkpoints ------------------------------------------------------------------------------


def _rng_key(name: str, rank: int) -> str:
    return name if rank == 0 else f"{name}.rank{rank}"


def save(run: Run, folder: str | os.PathLike | None = None) -> Path:
    """Model checkpoint + trainer state, written into a temporary folder and renamed into place.
    Under torchrun every rank calls it (its RNG state is gathered) and rank 0 writes. Raises
    TrainingDiverged, writing nothing, when a trainable weight is not finite."""
    folder = Path(folder or run.config.output)
    broken = [name for name, p in run.model.named_parameters() if p.requires_grad and not bool(torch.isfinite(p).all())]
    if broken:  # same weights on every rank: all refuse together
        raise TrainingDiverged(f"the weights after step {run.state.step} are not finite (NaN or inf) in {len(broken)} "
                               f"tensors ({', '.join(broken[:2])}): not saved to {folder}", run.state.step)
    rng = {"rng.torch": distributed.gather_tensors(torch.get_rng_state())}
    if torch.cuda.is_available():
        rng["rng.cuda"] = distributed.gather_tensors(torch.cuda.get_rng_state())
    if not run.share.main:
        distributed.barrier()  # returns once rank 0 has written the folder
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        save_checkpoint(run.model, staging, extra={"trainer": "sft", "step": run.state.step})
        tensors, optimizer_json = flatten_optimizer(run.optimizer.state_dict())
        for name, states in rng.items():  # "rng.torch" (rank 0), "rng.torch.rank1", ...
            tensors.update({_rng_key(name, rank): state for rank, state in enumerate(states)})
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in tensors.items()}, staging / TRAINER_STATE_TENSORS)
        trainer_state = {"format": TRAINER_STATE_FORMAT, "version": TRAINER_STATE_VERSION, **asdict(run.state),
                         "total_steps": run.total_steps, "world_size": run.share.world, "config": asdict(run.config),
                         "data": run.data,
                         "optimizer": optimizer_json, "scheduler": run.scheduler.state_dict(),
                         "last_metrics": run.last_metrics}
        (staging / TRAINER_STATE_JSON).write_text(json.dumps(trainer_state, indent=2) + "\n")
        if run.options:
            (staging / RUN_OPTIONS_FILE).write_text(write_config(run.options))
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        distributed.barrier()
    if folder == Path(run.config.output):
        run.saved_step = run.state.step
    return folder


def _restore_trainer_state(run: Run, saved: dict, tensors: dict, folder) -> None:
    """The cursor, best-so-far and RNG of the run saved in `folder`."""
    run.state = TrainerState(**{f.name: saved[f.name] for f in fields(TrainerState) if f.name in saved})
    run.last_metrics = saved.get("last_metrics", {})
    if Path(folder).resolve() == Path(run.config.output).resolve():
        run.saved_step = run.state.step
    # Last: building the model drew random numbers; the resumed run must draw what the original would.
    rank = run.share.rank
    key = _rng_key("rng.torch", rank)
    if key not in tensors:
        raise CheckpointError(f"{Path(folder) / TRAINER_STATE_TENSORS} lacks {key}")
    torch.set_rng_state(tensors[key])
    if _rng_key("rng.cuda", rank) in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[_rng_key("rng.cuda", rank)])
