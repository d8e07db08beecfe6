"""GRPO on a MusicLLM with verifiable rewards: one loop, read top to bottom.

    run = setup(GRPOConfig(checkpoint="runs/key", steps=50), records)   # an `mllm sft` checkpoint
    for metrics in train(run):                                           # one dict per optimizer step
        print(json.dumps(metrics))     # {"step", "reward_mean", "reward_std", "kl", "clip_high", ...}

The policy and its reference. The SFT checkpoint's adapter is merged into the LLM's weights and a
fresh LoRA adapter is trained on top; the projector is frozen. Switching the new adapter off
(`MusicLLM.reference_policy`) therefore gives the SFT policy itself, with no second copy of the
model, and at step 0 (the adapter's B matrices are zero) the policy IS the reference: KL 0.

What a step does (objective and its definitions: core/train/grpo_objective.py):
1. `batch_size` prompts from the epoch order of the `train` records (with `audio_embedding`, or
   text-only: no embedding and no `<audio>` in the question, the LLM alone; `llm=` starts from a
   base LLM for those) (a seeded permutation per
   epoch, as sft). Each prompt's record is prepared for its reward once (core/train/rewards.py:
   the task's kind reads the reference).
2. Generation, in one batched, KV-cached `generate` call: every prompt repeated `group_size`
   times, sampled at `temperature` / `top_p` up to `max_new_tokens` (a completion that ends
   without the end-of-turn token is truncated). Each completion draws from its own random stream,
   seeded by (seed, step, epoch, prompt, k) (core/train/sampling.py): what is sampled does not
   depend on the batch, the rank or a resume. Generation sits behind `generate_completions`,
   the seam where another engine (vLLM on a GPU) can take over.
3. Rewards: the weighted components of each completion, plus DAPO's overlong penalty when
   `overlong_buffer` > 0. Dynamic sampling (`min_spread` > 0): a group whose rewards spread by no
   more than `min_spread` is dropped and more prompts are sampled to refill the batch, at most
   `max_resample` extra rounds; the step trains on the groups it has then (none: no update).
4. Advantages within each group (`scale_rewards`). Old log-probabilities (needed when
   `iterations` > 1) and the reference's (when `beta` > 0) come from forward passes over the
   sampled tokens, never from generating again.
5. `iterations` optimizer updates on the batch: per-token log-probs (logits / temperature, as
   sampled), the clipped objective of `loss_type`, gradient clipping, AdamW.

Every step yields its metrics: reward mean/std overall and per component, parse rate, the
fraction of groups filtered and of zero-spread groups, KL, clip fractions (low, high), entropy,
completion length, truncated fraction, tokens/s and completions/s.

Checkpoint (every `save_every` steps, at the end, on Ctrl-C): the policy as a MusicLLM checkpoint
of version 2 (the SFT adapter under merged/, the new one under adapter/), which regress and
caption load as any other, plus trainer_state.json / .safetensors: step, epoch and position of
the prompt order, the options, a fingerprint of the records, AdamW's moments and the random
state; and options.yaml, the command's options as the run resolved them (`run.options`, set by
`mllm grpo`), which `mllm grpo --config` reads back. `setup(..., resume=folder)` continues from it: the same samples and losses as a run that
was never stopped (tested in a fresh process).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Collection, Iterator, Sequence

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import __version__ as _transformers_version

from mllm.core.config import RUN_OPTIONS_FILE, write_config
from mllm.core.encoders.for_model import ModelEncoder
from mllm.core.evaluation.mir import EvalOptions, collect_label_sets
from mllm.core.model import IGNORE_INDEX, Batch, Example, LoraSettings, MusicLLM, load_checkpoint, save_checkpoint
from mllm.core.options import check_integer, check_number
from mllm.core.train import distributed
from mllm.core.train.grpo_objective import (LOSS_TYPES, SCALE_REWARDS, STD_EPS, ObjectiveSettings, group_advantages,
                                            group_spread, keep_groups, overlong_penalty, policy_loss)
from mllm.core.train.rewards import Prepared, Reward, RewardSettings, parse_components
from mllm.core.train.sampling import SeededSampler, row_seed
from mllm.core.model.checkpoint import CheckpointError, read_tensors, replace_folder
from mllm.core.train.sft import epoch_order, split_records
from mllm.core.train.sft import data_fingerprint as sft_fingerprint
from mllm.core.train.trainer_state import (TRAINER_STATE_JSON, TRAINER_STATE_TENSORS, flatten_optimizer, read_state_json,
                                          restore_optimizer)

__all__ = ["GRPOConfig", "Run", "setup", "train", "save", "resolve_config", "read_trainer_state", "generate_completions",
           "token_logps", "group_token_logps", "policy_on_top", "TRAINER_STATE_JSON", "RESUME_MAY_CHANGE"]

TRAINER_STATE_FORMAT = "mllm-grpo-trainer"
# Options a resumed run may change (neither the samples nor the maths of a step depend on them).
RESUME_MAY_CHANGE = ("output", "save_every", "steps")
ZERO_SPREAD = 1e-6  # a group whose rewards differ by no more than this counts as zero-spread in the logs


@dataclass
class GRPOConfig:
    checkpoint: str = ""  # the `mllm sft` checkpoint to align (policy start and reference)
    llm: str = ""  # or a base LLM (hub id, folder, .gguf, "smollm2"): text-only records only
    reward: str = "task:1.0,format:0.2"  # weighted components (core/train/rewards.py)
    regression_shape: str = "linear"
    group_size: int = 4  # G: completions per prompt
    batch_size: int = 4  # prompts per step
    steps: int = 50
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    loss_type: str = "dapo"  # grpo | dr_grpo | dapo (TRL's default)
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None: epsilon
    beta: float = 0.0  # KL weight (k3); 0 skips the reference pass
    iterations: int = 1  # updates per batch of samples (TRL's num_iterations)
    scale_rewards: str = "group"  # group | batch | none
    mask_truncated: bool = False  # completions without the end-of-turn token carry no loss
    overlong_buffer: int = 0  # DAPO's soft overlong penalty over the last N tokens (0: off)
    overlong_factor: float = 1.0
    min_spread: float = 0.0  # dynamic sampling: drop groups whose reward spread is <= this (0: off)
    max_resample: int = 2  # extra sampling rounds to refill the batch
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    bf16: bool = False  # torch.autocast(bfloat16) around generation and the log-prob passes (as sft)
    output: str = "checkpoint-grpo"
    save_every: int = 0  # 0: at the end (and on Ctrl-C) only
    seed: int = 0
    device: str = "cpu"

    def check(self) -> GRPOConfig:
        """ValueError naming the first option out of range."""
        for name in ("group_size", "batch_size", "steps", "max_new_tokens", "iterations", "lora_rank"):
            check_integer("--" + name.replace("_", "-"), getattr(self, name), minimum=1)
        check_integer("--max-resample", self.max_resample, minimum=0)
        check_integer("--save-every", self.save_every, minimum=0)
        check_integer("--overlong-buffer", self.overlong_buffer, minimum=0, maximum=self.max_new_tokens)
        check_number("--lr", self.lr, above=0)
        check_number("--temperature", self.temperature, above=0)
        check_number("--top-p", self.top_p, above=0, maximum=1)
        check_number("--epsilon", self.epsilon, above=0, below=1)
        if self.epsilon_high is not None:
            check_number("--epsilon-high", self.epsilon_high, above=0)
        check_number("--beta", self.beta, minimum=0)
        check_number("--min-spread", self.min_spread, minimum=0)
        check_number("--max-grad-norm", self.max_grad_norm, minimum=0)
        check_number("--overlong-factor", self.overlong_factor, minimum=0)
        if self.group_size < 2:
            raise ValueError("--group-size must be at least 2: advantages are relative to the group")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"--loss-type must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ValueError(f"--scale-rewards must be one of {', '.join(SCALE_REWARDS)}, got {self.scale_rewards!r}")
        parse_components(self.reward)
        RewardSettings(self.regression_shape)
        return self

    @property
    def objective(self) -> ObjectiveSettings:
        return ObjectiveSettings(self.loss_type, self.epsilon, self.epsilon_high, self.beta, self.max_new_tokens)


@dataclass
class Run:
    config: GRPOConfig
    model: MusicLLM
    optimizer: torch.optim.Optimizer
    reward: Reward
    examples: list[Example]  # prompts (no answer) of the train records
    prepared: list[Prepared]  # their rewards' references, same order
    data: dict = field(default_factory=dict)  # what a resume compares (data_fingerprint)
    step: int = 0
    epoch: int = 0
    position: int = 0  # next prompt of the epoch
    order: tuple[int, list[int]] | None = None
    stop_requested: bool = False
    last_metrics: dict = field(default_factory=dict)
    share: distributed.Share = field(default_factory=distributed.Share)  # this process's rank and the world size
    options: dict = field(default_factory=dict)  # the command's options (`mllm ... --config` reads them): options.yaml


def policy_on_top(sft: MusicLLM, lora: LoraSettings) -> MusicLLM:
    """A fresh adapter on the SFT policy: the SFT adapter (if any) merged into the LLM (`sft` is
    consumed), the projector frozen. With the new adapter off the model is the SFT policy (the
    reference); the merged adapter is kept in `merged`, so a saved checkpoint rebuilds the policy."""
    merged = list(sft.merged)
    llm = sft.llm
    if sft.lora is not None:
        from peft import get_peft_model_state_dict

        state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(sft.llm).items()}
        merged.append({"lora": sft.lora.to_dict(), "state": state})  # kept: the checkpoint rebuilds this policy
        llm = sft.llm.merge_and_unload()
    model = MusicLLM(llm, sft.tokenizer, sft.projector, llm_spec=sft.llm_spec, encoder=sft.encoder, lora=lora,
                     system_prompt=sft.system_prompt)
    model.merged = merged
    for parameter in model.projector.parameters():
        parameter.requires_grad_(False)
    return model


def setup(config: GRPOConfig, records: Sequence[dict], *, model: MusicLLM | None = None,
          reward: Reward | None = None, resume: str | os.PathLike | None = None,
          given: Collection[str] = ()) -> Run:
    """Model, optimizer, prompts and their prepared rewards. `model` (a MusicLLM) replaces loading
    `config.checkpoint`; `reward` replaces the one `config.reward` describes (tests, other rewards).
    Records that cannot be rewarded (no task, no reference, off scale) raise ValueError naming them.

    `resume`: a checkpoint this loop saved. The run continues where it stopped, with its options
    (resolve_config), the same records (content checked), the optimizer's moments and the random
    state, so its samples and losses are those of a run that was never stopped."""
    saved = tensors = None
    if resume is not None:
        saved, tensors = read_trainer_state(resume)
        config = resolve_config(config, {**saved["config"], "_done": saved["step"]}, given, resume)
    config.check()
    train_records, _ = split_records(records)
    if not train_records:
        raise ValueError("no training records (split 'train')")
    data = data_fingerprint(train_records, [])
    if saved is not None and saved["data"]["fingerprint"] != data["fingerprint"]:
        raise ValueError(f"{resume} was trained on other records ({saved['data']['train']} there, {data['train']} here, "
                         "or the same ids with other content): resuming needs the same data")
    share = distributed.start(config.device)
    if saved is not None and saved.get("world_size", 1) != share.world:
        raise ValueError(f"{resume} was trained by {saved.get('world_size', 1)} processes, this run has {share.world}: "
                         "resume with the same number")
    torch.manual_seed(config.seed)
    if saved is not None:
        model = load_checkpoint(resume, device=config.device, trainable=True)
        for parameter in model.projector.parameters():
            parameter.requires_grad_(False)
    else:
        if model is None and config.checkpoint:
            model = load_checkpoint(config.checkpoint, device=config.device)
        elif model is None and config.llm:
            if any("audio_embedding" in r for r in train_records):
                raise ValueError("--llm aligns a base LLM on text-only records; records with audio need --checkpoint "
                                 "(an sft checkpoint, whose projector was trained)")
            model = MusicLLM.build(config.llm, encoder={"name": "none", "dim": 1, "frame_rate": None},
                                   projector={"kind": "linear"}, device=config.device)
        elif model is None:
            raise ValueError("--checkpoint: give the `mllm sft` checkpoint to align (or --llm for text-only records)")
        lora = LoraSettings(config.lora_rank, config.lora_alpha, 0.0, list(config.lora_targets))  # no dropout: ratio 1 at iteration 1
        model = policy_on_top(model, lora)
    if config.bf16:  # as sft: the frozen (merged) base's products run in bf16 under autocast anyway
        model.store_frozen_linears(torch.bfloat16)
    checker = ModelEncoder(model.encoder)
    for record in train_records:
        if "audio_embedding" in record:  # as sft: another encoder, size or frame rate is refused by name
            checker.check(record)
            if not np.isfinite(np.asarray(record["audio_embedding"], dtype=np.float32)).all():
                raise ValueError(f"record {record.get('id')!r}: 'audio_embedding' holds NaN or inf")
    if reward is None:
        options = EvalOptions()
        reward = Reward(parse_components(config.reward), collect_label_sets(train_records, options), options,
                        RewardSettings(config.regression_shape))
    prepared = reward.prepare_all(train_records, "training records")
    examples = [model.example(record, with_answer=False, text_only=True) for record in train_records]
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = Run(config, model, optimizer, reward, examples, prepared, data, share=share)
    if saved is not None:
        restore_optimizer(optimizer, saved, tensors, model.device, resume)
        run.step, run.epoch, run.position = saved["step"], saved["epoch"], saved["position"]
        run.last_metrics = saved.get("last_metrics", {})
        torch.set_rng_state(tensors["rng.torch"])  # last: loading the model drew random numbers
    return run


def data_fingerprint(train_records: Sequence[dict], valid_records: Sequence[dict]) -> dict:
    """sft's fingerprint of the records (ids, splits, messages, answers, embeddings), with the
    `reference` field too (a reward may read it instead of `answer`)."""
    with_reference = [{**r, "answer": [r.get("answer"), r.get("reference")],
                       "audio_embedding": r.get("audio_embedding", np.zeros((0, 0), np.float32))}  # text-only: none
                      for r in train_records]
    return sft_fingerprint(with_reference, valid_records)


def read_trainer_state(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """trainer_state.json and .safetensors of a grpo checkpoint; CheckpointError naming the file."""
    folder = Path(folder)
    saved = read_state_json(folder, TRAINER_STATE_FORMAT, missing=f"{folder} holds no grpo trainer state to resume",
                            other_format="an mllm grpo trainer state (an sft checkpoint is aligned with --checkpoint, "
                                         "not resumed)")
    path = folder / TRAINER_STATE_JSON
    missing = [key for key in ("step", "epoch", "position", "config", "data", "optimizer") if key not in saved]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    tensors = read_tensors(folder / TRAINER_STATE_TENSORS)
    if "rng.torch" not in tensors:
        raise CheckpointError(f"{folder / TRAINER_STATE_TENSORS} lacks rng.torch")
    return saved, tensors


def resolve_config(config: GRPOConfig, saved: dict, given: Collection[str], resume) -> GRPOConfig:
    """The options of a resumed run: the checkpoint's, except RESUME_MAY_CHANGE and `device` taken
    from `config` when given (`output` defaults to the resumed folder); any other option in
    `given` with another value than the checkpoint's is refused by name. `steps` may grow (train
    further), never shrink below the steps done."""
    differ = [f"--{name.replace('_', '-')} is {getattr(config, name)!r}, the checkpoint's is {saved.get(name)!r}"
              for name in sorted(given) if name in saved and name not in (*RESUME_MAY_CHANGE, "device")
              and getattr(config, name) != saved[name]]
    if differ:
        raise ValueError(f"{'; '.join(differ)} (a resumed run keeps its options: only "
                         f"{', '.join('--' + n.replace('_', '-') for n in RESUME_MAY_CHANGE)} and --device may change)")
    merged = {**saved, **{name: getattr(config, name) for name in RESUME_MAY_CHANGE if name in given},
              "device": config.device}
    if merged["steps"] < saved.get("_done", 0):
        raise ValueError(f"--steps {merged['steps']} is fewer than the {saved['_done']} steps {resume} has done")
    merged.pop("_done", None)
    if "output" not in given:
        merged["output"] = str(resume)
    try:
        return GRPOConfig(**merged)
    except TypeError as exc:
        raise CheckpointError(f"{Path(resume) / TRAINER_STATE_JSON}: {exc}") from None


# ---- generation and log-probabilities ---------------------------------------------------------


def generate_completions(model: MusicLLM, prompts: Sequence[Example], config: GRPOConfig,
                         seeds: Sequence[int]) -> list[list[int]]:
    """`group_size` sampled completions per prompt (token ids, cut after the stop token), group by
    group, from one batched KV-cached call; completion k of prompt i draws from its own random
    stream `row_seed(seeds[i], k)` (core/train/sampling.py), whatever the batch or the rank. The
    seam for another generation engine: prompts and seeds in, token ids out."""
    G = config.group_size
    repeated = [prompt for prompt in prompts for _ in range(G)]
    batch = model.collate(repeated, "left").to(model.device)
    sampler = SeededSampler([row_seed(seed, k) for seed in seeds for k in range(G)], config.temperature, config.top_p)
    was_training = model.training
    model.eval()
    try:
        with autocast(config), torch.no_grad():
            cache = _shared_prefill(model, prompts, G) if SHARED_PREFILL and batch.input_ids.shape[1] > 1 else None
            return model.generate_ids(batch, config.max_new_tokens, logits_processor=sampler, cache=cache)
    finally:
        model.train(was_training)


# transformers >= 5 continues generation from a cache of the prompt's first positions given with the
# full inputs_embeds (it runs the uncached rest); older releases would read input_ids instead.
SHARED_PREFILL = int(_transformers_version.split(".")[0]) >= 5


def _shared_prefill(model: MusicLLM, prompts: Sequence[Example], group_size: int):
    """The KV cache of every prompt position but the last, computed once per prompt and repeated
    for its group (generate then runs the last position and the new tokens): the group's G rows
    share one prefill instead of G."""
    _, cache, _ = _repeated_prompt_cache(model, prompts, group_size, drop_last=True)
    return cache


def _repeated_prompt_cache(model: MusicLLM, prompts: Sequence[Example], group_size: int, drop_last: bool = False):
    """One forward pass of the B prompts (left-padded, their answers ignored) with a KV cache ->
    (the last position's logits (B, V), the cache repeated `group_size` times along the batch,
    the prompts' attention mask (B, L)). With `drop_last` the last position is left out of the
    pass (generate runs it)."""
    batch = model.collate([Example(p.before, p.after, [], p.audio) for p in prompts], "left").to(model.device)
    end = -1 if drop_last else None
    out = model.llm(inputs_embeds=model.embed(batch)[:, :end], attention_mask=batch.attention_mask[:, :end],
                    position_ids=batch.position_ids[:, :end], use_cache=True,
                    **({"logits_to_keep": 1} if model.slices_logits else {}))
    cache = getattr(out, model.cache_keyword)
    cache.batch_repeat_interleave(group_size)
    return out.logits[:, -1], cache, batch.attention_mask


def autocast(config: GRPOConfig):
    device_type = "cuda" if config.device.startswith("cuda") else "cpu"
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=config.bf16)


def token_logps(model: MusicLLM, batch: Batch, temperature: float = 1.0,
                with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(logps (B, T), mask (B, T), entropy (B, T) or None) of each row's answer tokens, in order:
    log pi(token | everything before it), the logits divided by `temperature` (the distribution the
    tokens were sampled from); T is the longest answer, `mask` marks the real ones."""
    keep = torch.zeros_like(batch.labels, dtype=torch.bool)  # position t predicts token t+1
    keep[:, :-1] = batch.labels[:, 1:] != IGNORE_INDEX
    targets = batch.labels[:, 1:][keep[:, :-1]]
    inputs = dict(inputs_embeds=model.embed(batch), attention_mask=batch.attention_mask,
                  position_ids=batch.position_ids, use_cache=False)
    if model.slices_logits:
        logits = model.llm(**inputs, logits_to_keep=keep).logits  # (N, V)
    else:
        logits = model.llm(**inputs).logits[keep]
    counts = keep.sum(dim=1)
    width = int(counts.max()) if counts.numel() else 0
    mask = torch.arange(width, device=counts.device).unsqueeze(0) < counts.unsqueeze(1)  # (B, T), rows in order
    return _per_token(logits, targets, mask, temperature, with_entropy)


def _per_token(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, temperature: float,
               with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Logits (N, V) of the N real tokens `targets` (N,), in row order -> (logps, mask, entropy) laid
    out (B, T) by `mask` (B, T), as token_logps returns them."""
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    chosen = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)  # (N,)
    logps = chosen.new_zeros(mask.shape).masked_scatter(mask, chosen)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            per_token = -(log_probs.exp() * log_probs).sum(dim=-1)
            entropy = per_token.new_zeros(mask.shape).masked_scatter(mask, per_token)
    return logps, mask.to(logps.dtype), entropy


def group_token_logps(model: MusicLLM, prompts: Sequence[Example], completions: Sequence[list[int]],
                      group_size: int, temperature: float = 1.0, with_entropy: bool = False,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`token_logps` of the B x G sequences prompt i + completion (i, k), with each prompt's forward
    pass run once instead of G times: the group's G completions share it.

    The B prompts go through the LLM once (left-padded, so that every prompt ends at the last
    position), with a KV cache; the cache is repeated G times along the batch and the B x G
    completions (right-padded) run on top of it, attending to their prompt through it. The last
    prompt position's logits predict each completion's first token, the completion positions the
    rest. Gradients flow through the cache into the prompt's adapter activations, as in the full
    pass. The same values as `token_logps` on the collated full sequences, to float rounding
    (tested), at a fraction of the cost when prompts are longer than answers: a key prompt with its
    audio is about 90 tokens, an answer about 8. (No library computes group log-probs this way:
    TRL's GRPOTrainer runs prompt + completion for every completion.)

    prompts: B examples (their `answer` is ignored); completions: B x G token id lists, group by
    group, none empty. Returns (logps (BG, T), mask (BG, T), entropy or None), T the longest one.
    """
    device = model.device
    last, cache, prompt_mask = _repeated_prompt_cache(model, prompts, group_size)
    first = last.repeat_interleave(group_size, dim=0)  # (BG, V): predicts token 0
    lengths = torch.tensor([len(ids) for ids in completions], device=device)
    if int(lengths.min()) < 1:
        raise ValueError("every completion needs at least one token")
    width = int(lengths.max())
    mask = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)  # (BG, T)
    ids = torch.full((len(completions), width), model.tokenizer.pad_token_id, dtype=torch.long, device=device)
    ids[mask] = torch.tensor([t for row in completions for t in row], dtype=torch.long, device=device)
    prompt_mask = prompt_mask.repeat_interleave(group_size, dim=0)
    starts = prompt_mask.sum(dim=1, keepdim=True)  # each prompt's real length: the completion's first position
    keep = torch.zeros_like(mask)
    keep[:, :-1] = mask[:, 1:]  # completion position t predicts token t + 1
    inputs = dict(inputs_embeds=model.llm.get_input_embeddings()(ids),
                  attention_mask=torch.cat([prompt_mask, mask.long()], dim=1),
                  position_ids=starts + torch.arange(width, device=device).unsqueeze(0),
                  use_cache=True, **{model.cache_keyword: cache})
    if model.slices_logits:
        rest = model.llm(**inputs, logits_to_keep=keep).logits  # (N, V)
    else:
        rest = model.llm(**inputs).logits[keep]
    # Every real token's logits, row by row in order: token 0 of row r is `first[r]`, tokens 1.. are
    # the rows of `rest` (row-major over `keep`), which start at offset sum(lengths[:r] - 1).
    rows = lengths.numel()
    offsets = torch.cumsum(lengths - 1, dim=0) - (lengths - 1)  # exclusive cumsum
    where = torch.arange(width, device=device).unsqueeze(0) - 1 + offsets.unsqueeze(1) + rows  # (BG, T)
    where[:, 0] = torch.arange(rows, device=device)
    logits = torch.cat([first, rest.to(first.dtype)])[where[mask]]  # (N_tokens, V)
    return _per_token(logits, ids[mask], mask, temperature, with_entropy)


# ---- the loop ---------------------------------------------------------------------------------


def _next_prompts(run: Run, count: int) -> tuple[list[int], list[int]]:
    """The next `count` prompt indices of the epoch order (seeded per epoch, as sft's), and the
    seed of each one's sampling stream (run seed, step, the epoch it was drawn in, the prompt)."""
    chosen, seeds = [], []
    while len(chosen) < count:
        n = len(run.examples)
        if run.position >= n:
            run.epoch, run.position = run.epoch + 1, 0
        if run.order is None or run.order[0] != run.epoch:
            run.order = (run.epoch, epoch_order(run.config.seed, run.epoch, n))
        take = run.order[1][run.position:run.position + count - len(chosen)]
        chosen += take
        seeds += [row_seed(run.config.seed, run.step, run.epoch, i) for i in take]
        run.position += len(take)
    return chosen, seeds


def _sample_groups(run: Run, indices: list[int], seeds: list[int]):
    """Completions, rewards and their parts for the prompts `indices` (group by group)."""
    config, model = run.config, run.model
    completions = generate_completions(model, [run.examples[i] for i in indices], config, seeds)
    rewards, parts, parsed, truncated = [], [], [], []
    for k, ids in enumerate(completions):
        prepared = run.prepared[indices[k // config.group_size]]
        text = model.tokenizer.decode(ids, skip_special_tokens=True).strip()
        total, components, judged = run.reward.rate(prepared, text)
        parsed.append(judged.reading.parse_ok)
        rewards.append(total)
        parts.append(components)
        truncated.append(not ids or ids[-1] not in model.stop_ids)
    rewards = torch.tensor(rewards, dtype=torch.float)
    lengths = torch.tensor([len(ids) for ids in completions])
    if config.overlong_buffer:
        rewards = rewards + overlong_penalty(lengths, config.max_new_tokens, config.overlong_buffer, config.overlong_factor)
    return completions, rewards, parts, parsed, truncated


@dataclass
class Sampled:
    """One step's samples on this rank: the groups kept for the update and what the logs count."""

    indices: list[int] = field(default_factory=list)  # the kept groups' prompts
    completions: list[list[int]] = field(default_factory=list)  # their completions, group by group
    rewards: list[torch.Tensor] = field(default_factory=list)  # (G,) per kept group
    truncated: list[bool] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)  # sums over every sampled completion/group (logs)


def _sample(run: Run) -> Sampled:
    """Steps 1-3: this rank's groups. Every rank draws the same prompts of the epoch order (the
    step's batch_size x world of them) and takes every world-th; dynamic sampling draws more rounds
    while any rank lacks groups, so the ranks' positions in the order stay the same."""
    config, G = run.config, run.config.group_size
    rank, world = run.share.rank, run.share.world
    out = Sampled()
    sums = dict.fromkeys(["completions", "reward", "reward_sq", "parsed", "length", "truncated", "groups",
                          "filtered", "zero_spread", *(f"reward_{name}" for name in run.reward.weights)], 0.0)
    rounds = 1 + (config.max_resample if config.min_spread > 0 else 0)
    for _ in range(rounds):
        want = max(config.batch_size - len(out.indices), 0)
        need = max(int(t) for t in distributed.gather_tensors(torch.tensor([want])))  # the most any rank lacks
        if need == 0:
            break
        indices, seeds = _next_prompts(run, need * world)
        indices, seeds = indices[rank::world], seeds[rank::world]
        if want == 0:
            continue  # this rank is full; it drew with the others to keep the order in step
        completions, rewards, parts, parsed, truncated = _sample_groups(run, indices, seeds)
        spread = group_spread(rewards, G)
        keep = keep_groups(rewards, G, config.min_spread) if config.min_spread > 0 else torch.ones(len(indices), dtype=torch.bool)
        for g in torch.nonzero(keep).flatten().tolist()[:want]:
            span = slice(g * G, (g + 1) * G)
            out.indices.append(indices[g])
            out.completions += completions[span]
            out.rewards.append(rewards[span])
            out.truncated += truncated[span]
        sums["completions"] += len(completions)
        sums["reward"] += float(rewards.sum())
        sums["reward_sq"] += float((rewards ** 2).sum())
        sums["parsed"] += sum(parsed)
        sums["length"] += sum(len(ids) for ids in completions)
        sums["truncated"] += sum(truncated)
        sums["groups"] += len(indices)
        sums["filtered"] += int((~keep).sum())
        sums["zero_spread"] += int((spread <= ZERO_SPREAD).sum())
        for name in run.reward.weights:
            sums[f"reward_{name}"] += sum(p[name] for p in parts)
    out.sums = dict(zip(sums, distributed.all_sum(*sums.values())))  # the whole step's, every rank
    return out


def _advantages(rewards: list[torch.Tensor], run: Run) -> torch.Tensor:
    """Step 4's advantages of the kept groups; `batch` scaling uses the std of every rank's rewards."""
    config = run.config
    flat = torch.cat(rewards) if rewards else torch.zeros(0)
    if config.scale_rewards != "batch" or run.share.world == 1:
        return group_advantages(flat, config.group_size, config.scale_rewards) if flat.numel() else flat
    n, total, squares = distributed.all_sum(flat.numel(), float(flat.sum()), float((flat ** 2).sum()))
    variance = (squares - total ** 2 / max(n, 1)) / max(n - 1, 1)  # unbiased, as torch.std
    centred = group_advantages(flat, config.group_size, "none") if flat.numel() else flat
    return centred / (math.sqrt(max(variance, 0.0)) + STD_EPS)


def train(run: Run) -> Iterator[dict]:
    """Optimizer steps until `config.steps` (or `stop_requested`); yields each step's metrics."""
    config, model, optimizer = run.config, run.model, run.optimizer
    model.train()
    stopping = False
    while run.step < config.steps and not stopping:
        started = time.perf_counter()
        sampled = _sample(run)
        sums = sampled.sums
        n_all = max(sums["completions"], 1.0)
        metrics = {
            "step": run.step + 1, "epoch": run.epoch,
            "reward_mean": sums["reward"] / n_all,
            "reward_std": math.sqrt(max(0.0, (sums["reward_sq"] - sums["reward"] ** 2 / n_all) / max(n_all - 1, 1))),
            **{f"reward_{name}": sums[f"reward_{name}"] / n_all for name in run.reward.weights},
            "parse_rate": sums["parsed"] / n_all,
            "groups_sampled": int(sums["groups"]),
            "groups_filtered": sums["filtered"] / max(sums["groups"], 1.0),
            "zero_spread": sums["zero_spread"] / max(sums["groups"], 1.0),
            "completion_length": sums["length"] / n_all,
            "truncated": sums["truncated"] / n_all,
        }
        n_local = len(sampled.completions)
        n_global = distributed.all_sum(n_local)[0]
        loss_value = grad_norm = float("nan")
        if n_global:
            stats = _update(run, sampled, n_local, n_global)
            loss_value, grad_norm = stats.pop("loss"), stats.pop("grad_norm")
            metrics.update(stats)
        else:
            metrics["skipped"] = "no group with a reward spread above --min-spread"
        run.step += 1
        stopping = distributed.all_sum(float(run.stop_requested))[0] > 0  # every rank stops at the same step
        seconds = time.perf_counter() - started
        metrics.update({"loss": loss_value, "grad_norm": grad_norm, "lr": optimizer.param_groups[0]["lr"],
                        "completions_per_s": sums["completions"] / seconds,
                        "tokens_per_s": sums["length"] / seconds, "s_per_step": seconds})
        run.last_metrics = metrics
        if config.save_every and run.step % config.save_every == 0 and run.step < config.steps:
            save(run)
        yield metrics
    run.stop_requested = stopping
    save(run)


def _update(run: Run, sampled: Sampled, n_local: int, n_global: float) -> dict:
    """Steps 4-5 on this rank's kept groups: `iterations` updates; the losses and statistics of
    the whole step (every rank). A rank without groups still joins the gradient averaging."""
    config, model, optimizer = run.config, run.model, run.optimizer
    settings, G, world = config.objective, config.group_size, run.share.world
    parameters = model.trainable_parameters()
    advantages = _advantages(sampled.rewards, run).to(model.device)
    prompts = [run.examples[i] for i in sampled.indices]  # each group's prompt runs once (group_token_logps)

    def logps_of_samples(with_entropy: bool = False):
        return group_token_logps(model, prompts, sampled.completions, G, config.temperature, with_entropy)

    old = reference = None
    with torch.no_grad():
        if n_local and config.iterations > 1:
            with autocast(config):
                old, _, _ = logps_of_samples()
        if n_local and config.beta > 0:
            with model.reference_policy(), autocast(config):
                reference, _, _ = logps_of_samples()
    stats: dict[str, float] = {}
    for iteration in range(config.iterations):
        optimizer.zero_grad(set_to_none=True)
        local = {"loss": 0.0, "tokens": 0.0, "clip_low": 0.0, "clip_high": 0.0, "clip_region": 0.0, "kl": 0.0,
                 "entropy": 0.0}
        if n_local:
            with autocast(config):  # the forward only: backward ops follow the forward's dtypes
                logps, mask, entropy = logps_of_samples(with_entropy=iteration == 0)
            if config.mask_truncated:
                mask = mask * torch.tensor([0.0 if t else 1.0 for t in sampled.truncated], device=mask.device).unsqueeze(1)
            total_tokens = distributed.all_sum(float(mask.sum()))[0] if settings.loss_type == "dapo" else None
            out = policy_loss(logps, old, reference, advantages, mask, settings, total_tokens=total_tokens)
            # Gradients are averaged over the ranks: scaled so that the average is the whole step's
            # loss (dapo: each rank already divides by the step's tokens; grpo/dr_grpo: a mean over
            # this rank's completions, weighted by its share of them).
            share = world if settings.loss_type == "dapo" else n_local * world / n_global
            (out.loss * share).backward()
            tokens = out.stats["loss_tokens"]
            local.update(loss=float(out.loss.detach()) * share / world, tokens=tokens,
                         **{key: out.stats[key] * tokens for key in ("clip_low", "clip_high", "clip_region")},
                         kl=out.stats.get("kl", 0.0) * tokens,
                         entropy=float((entropy * (mask > 0)).sum()) if entropy is not None else 0.0)
        distributed.average_gradients(parameters)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm) if config.max_grad_norm > 0
                          else torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None])))
        total = dict(zip(local, distributed.all_sum(*local.values())))
        if not (math.isfinite(total["loss"]) and math.isfinite(grad_norm)):
            raise FloatingPointError(f"GRPO step {run.step + 1}: loss {total['loss']:.4g}, gradient norm "
                                     f"{grad_norm:.4g} (not finite); the update was not applied")
        optimizer.step()
        if iteration == 0:
            tokens = max(total["tokens"], 1.0)
            stats = {key: total[key] / tokens for key in ("clip_low", "clip_high", "clip_region", "entropy")}
            if config.beta > 0:
                stats["kl"] = total["kl"] / tokens
        stats.update(loss=total["loss"], grad_norm=grad_norm)
    return stats


def save(run: Run, folder: str | os.PathLike | None = None) -> Path:
    """The policy as a MusicLLM checkpoint (version 2: the SFT adapter under merged/, the GRPO
    adapter under adapter/), which `mllm regress` and `mllm caption` load like any checkpoint,
    plus the trainer state a resume needs (no pickle: JSON and safetensors), written into a
    temporary folder renamed into place."""
    if any(not bool(torch.isfinite(p).all()) for p in run.model.trainable_parameters()):
        raise FloatingPointError(f"the weights after step {run.step} are not finite: not saved")
    folder = Path(folder or run.config.output)
    if not run.share.main:  # the same weights on every rank: rank 0 writes them
        distributed.barrier()
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        save_checkpoint(run.model, staging, extra={"trainer": "grpo", "step": run.step})
        tensors, optimizer_json = flatten_optimizer(run.optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        save_file({k: v.contiguous() for k, v in tensors.items()}, staging / TRAINER_STATE_TENSORS)
        state = {"format": TRAINER_STATE_FORMAT, "version": 1, "step": run.step, "epoch": run.epoch,
                 "position": run.position, "world_size": run.share.world, "config": asdict(run.config), "data": run.data,
                 "optimizer": optimizer_json, "last_metrics": run.last_metrics}
        (staging / TRAINER_STATE_JSON).write_text(json.dumps(state, indent=2, default=float) + "\n")
        if run.options:
            (staging / RUN_OPTIONS_FILE).write_text(write_config(run.options))
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        distributed.barrier()
    return folder
