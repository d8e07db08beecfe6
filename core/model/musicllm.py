"""MusicLLM: encoder frames -> projector -> causal LM (+ LoRA).

    audio_embedding (T, D) --projector--> audio tokens (T', H) --placed where <audio> was--> LLM

The encoder runs before (`mllm encode` writes `audio_embedding` into the records), so the model is
the projector and the LLM. Two training stages, chosen by `lora`:
- `lora=None`: projector only, every LLM weight frozen (alignment stage);
- `lora=LoraSettings(...)`: projector + a peft LoRA adapter on the LLM (`get_peft_model`; the base
  weights stay frozen).

`forward(batch)` returns the mean cross-entropy over the answer tokens (end-of-turn token included);
`generate(batch)` returns the new text of each example; `reference_policy()` is a context in which
the model runs with its adapter switched off (the base LLM plus the trained projector), for a KL
term. Note from the CPU prototype (docs/model.md): for GRPO after SFT, the useful reference is the
SFT policy itself, i.e. merge or freeze the SFT adapter and train a fresh one on top.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from mllm.core.model.chat import (DEFAULT_SYSTEM_PROMPT, IGNORE_INDEX, Batch, Example, collate,
                                  example_from_record, render_example)
from mllm.core.model.llm import load_llm
from mllm.core.model.projector import Projector, ProjectorConfig

__all__ = ["LoraSettings", "MusicLLM"]


@dataclass
class LoraSettings:
    """What a checkpoint's config.json stores under "lora"."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def to_dict(self) -> dict:
        return asdict(self)

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(task_type="CAUSAL_LM", r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.targets), bias="none")


class MusicLLM(nn.Module):
    def __init__(self, llm: nn.Module, tokenizer, projector: Projector, *, llm_spec: str,
                 encoder: dict | None = None, lora: LoraSettings | None = None,
                 system_prompt: str | None = DEFAULT_SYSTEM_PROMPT):
        super().__init__()
        hidden = llm.get_input_embeddings().embedding_dim
        if projector.config.output_dim != hidden:
            raise ValueError(f"projector output {projector.config.output_dim} != LLM hidden size {hidden}")
        for parameter in llm.parameters():
            parameter.requires_grad_(False)
        if lora is not None:
            from peft import get_peft_model

            llm = get_peft_model(llm, lora.peft_config())
        self.llm = llm
        self.projector = projector.to(next(llm.parameters()).device)
        self.tokenizer = tokenizer
        self.llm_spec = str(llm_spec)
        self.encoder = dict(encoder or {})  # {"name", "dim", "frame_rate"}: what the projector expects
        self.lora = lora
        self.system_prompt = system_prompt
        # Adapters merged into the LLM's weights before `lora` was added, in order (mllm grpo trains
        # a fresh adapter on the merged SFT policy): [{"lora": LoraSettings dict, "state": tensors}].
        self.merged: list[dict] = []
        # Generation stops at the end token or the template's end-of-turn token (the last answer token).
        probe = render_example([{"role": "user", "content": "<audio>"}, {"role": "assistant", "content": "x"}],
                               torch.zeros(1, 1), tokenizer, system_prompt)
        self.stop_ids = sorted({tokenizer.eos_token_id, probe.answer[-1]} - {None})
        base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
        forward_options = inspect.signature(base.forward).parameters
        self.slices_logits = "logits_to_keep" in forward_options
        # The name of the KV-cache argument (and output field): `cache` in recent transformers,
        # `past_key_values` before the rename.
        self.cache_keyword = "cache" if "cache" in forward_options else "past_key_values"

    @classmethod
    def build(cls, llm: str = "smollm2", *, encoder: dict, projector: dict | None = None,
              lora: LoraSettings | dict | None = None, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
              dtype: torch.dtype | str = torch.float32, device: str = "cpu") -> "MusicLLM":
        """A fresh model: `encoder` = {"name", "dim", "frame_rate"}; `projector` = ProjectorConfig
        fields other than the sizes (kind, stride, ...), which come from the encoder and the LLM."""
        model, tokenizer = load_llm(llm, dtype=dtype, device=device)
        hidden = model.get_input_embeddings().embedding_dim
        config = ProjectorConfig(input_dim=int(encoder["dim"]), output_dim=hidden, **(projector or {}))
        if isinstance(lora, dict):
            lora = LoraSettings(**lora)
        spec = str(Path(llm).resolve()) if Path(llm).exists() else str(llm)  # local paths: absolute
        return cls(model, tokenizer, Projector(config), llm_spec=spec, encoder=encoder, lora=lora,
                   system_prompt=system_prompt)

    @property
    def device(self) -> torch.device:
        return self.projector.mean.device

    # ---- inputs -------------------------------------------------------------------------------

    def example(self, record: dict, with_answer: bool = True, text_only: bool = False) -> Example:
        return example_from_record(record, self.tokenizer, self.system_prompt, with_answer, text_only)

    def collate(self, examples: Sequence[Example], padding_side: str = "left") -> Batch:
        return collate(examples, self.projector.output_length, self.tokenizer.pad_token_id, padding_side)

    def batch(self, records: Iterable[dict], with_answer: bool = True, padding_side: str = "left") -> Batch:
        """Records (with `messages` and `audio_embedding`) -> a batch on the model's device."""
        return self.collate([self.example(r, with_answer) for r in records], padding_side).to(self.device)

    def embed(self, batch: Batch) -> torch.Tensor:
        """inputs_embeds (B, L, H): token embeddings with the projected audio at `audio_positions`."""
        embeddings = self.llm.get_input_embeddings()(batch.input_ids)  # (B, L, H)
        if not bool(batch.audio_positions.any()):  # text-only prompts: the LLM alone
            return embeddings
        tokens, mask = self.projector(batch.audio, batch.audio_mask)  # (B, T', H), (B, T')
        audio = tokens[mask]  # (N, H): row-major, the order of audio_positions
        if audio.shape[0] != int(batch.audio_positions.sum()):
            raise ValueError("audio tokens do not match the placeholder slots (collated with another projector?)")
        return embeddings.masked_scatter(batch.audio_positions.unsqueeze(-1), audio.to(embeddings.dtype))

    # ---- training -----------------------------------------------------------------------------

    def logits(self, batch: Batch) -> torch.Tensor:
        """(B, L, V) next-token logits at every position."""
        out = self.llm(inputs_embeds=self.embed(batch), attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids, use_cache=False)
        return out.logits

    def forward(self, batch: Batch) -> torch.Tensor:
        """Mean cross-entropy over the answer tokens of the batch (each token counts once).

        Only the positions that predict an answer token go through the LM head (transformers'
        `logits_to_keep` with a boolean mask), about 1 in 8 of a short-answer batch: the head is a
        (hidden x vocabulary) matrix product, 49152 wide for SmolLM2, so this saves ~10 % of a CPU
        step with the same loss (tested). Models whose forward lacks `logits_to_keep` compute every
        position's logits and pick the same ones."""
        keep = torch.zeros_like(batch.labels, dtype=torch.bool)  # (B, L): position t predicts token t+1
        keep[:, :-1] = batch.labels[:, 1:] != IGNORE_INDEX
        targets = batch.labels[:, 1:][keep[:, :-1]]  # (N,)
        if self.slices_logits:
            logits = self.llm(inputs_embeds=self.embed(batch), attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids, use_cache=False, logits_to_keep=keep).logits  # (N, V)
        else:
            logits = self.logits(batch)[keep]  # (N, V)
        return nn.functional.cross_entropy(logits.float(), targets)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def store_frozen_linears(self, dtype: torch.dtype) -> int:
        """Keep the weights of the frozen linear layers in `dtype` (bfloat16 under `--bf16`); returns
        how many. Under bf16 autocast every matrix product casts its fp32 weight to bf16 at every call
        (autocast caches casts only of weights that require grad): for SmolLM2 the 106 M weights of its
        attention and MLP layers at every forward; stored in bf16 they are used as they are. The same values reach the products, so the
        results are those of autocast alone. Left in fp32: trainable layers (LoRA, projector), norms,
        the input embedding and the LM head tied to it (an embedding lookup is not autocast: casting
        it would put the residual stream in bf16). Use only with autocast on: a bf16 weight meeting an
        fp32 input outside autocast is a dtype error."""
        tied = self.llm.get_input_embeddings().weight
        stored = 0
        for module in self.llm.modules():
            if isinstance(module, nn.Linear) and not module.weight.requires_grad and module.weight is not tied:
                module.weight.data = module.weight.data.to(dtype)
                if module.bias is not None and not module.bias.requires_grad:
                    module.bias.data = module.bias.data.to(dtype)
                stored += 1
        return stored

    @contextlib.contextmanager
    def reference_policy(self):
        """Run with the LoRA adapter switched off (no-op without an adapter)."""
        if self.lora is None:
            yield self
            return
        with self.llm.disable_adapter():
            yield self

    # ---- inference ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate_ids(self, batch: Batch, max_new_tokens: int = 64, do_sample: bool = False,
                     temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     logits_processor=None, cache=None) -> list[list[int]]:
        """New token ids per example, cut after the first stop token (kept). `batch` must be
        left-padded (the default of `collate`). Sampling uses the full distribution by default
        (top_k=0, top_p=1.0) so that a policy ratio computed later matches what was sampled.
        `logits_processor` (e.g. core.train.sampling.SeededSampler) turns greedy decoding into
        its own sampling; `do_sample` must then be False. `cache`: a KV cache of every position but
        the last (transformers >= 5 then runs only the rest; core.train.grpo shares a prompt's)."""
        from transformers import GenerationConfig, LogitsProcessorList

        if bool((batch.attention_mask[:, -1] == 0).any()):
            raise ValueError("generation needs a left-padded batch")
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id)
        if do_sample:
            config.temperature, config.top_k, config.top_p = temperature, top_k, top_p
        if logits_processor is not None and do_sample:
            raise ValueError("a logits_processor that samples replaces do_sample: give one of them")
        processors = LogitsProcessorList([logits_processor] if logits_processor is not None else [])
        extra = {} if cache is None else {self.cache_keyword: cache}  # generate passes it to forward
        new = self.llm.generate(inputs_embeds=self.embed(batch), attention_mask=batch.attention_mask,
                                generation_config=config, logits_processor=processors, **extra)  # (B, N): only the new tokens
        out = []
        for row in new.tolist():
            ids = []
            for token in row:
                ids.append(token)
                if token in self.stop_ids:
                    break
            out.append(ids)
        return out

    def generate(self, batch: Batch, max_new_tokens: int = 64, **sampling) -> list[str]:
        """The answer text of each example (special tokens removed, whitespace stripped)."""
        ids = self.generate_ids(batch, max_new_tokens, **sampling)
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
