"""Published audio-text models that transformers implements (Qwen2-Audio), as generators for
`mllm caption` and `mllm regress`, so that they are scored by the same pipeline as MusicLLM checkpoints.

Such a model has its own audio tower and processor: it reads the record's audio, not an
`audio_embedding`. For each record:

    audio     `audio` (+ `start`/`end`) decoded by core/audio, mono, resampled to the processor's
              feature-extractor rate (16 kHz for Qwen2-Audio); a record whose audio cannot be read
              becomes an error record naming the record and the field. The feature extractor keeps
              at most its window (`chunk_length`, 30 s for Qwen2-Audio): longer audio is cut to
              its first 30 s, so choose the span with `start`/`end`.
    prompt    the record's chat turns (or --prompt) with the `<audio>` placeholder of the user turn
              turned into an `{"type": "audio"}` content item, rendered by the processor's chat
              template (Qwen2-Audio: `Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>`), which the
              processor expands to one `<|AUDIO|>` per audio frame; text around the placeholder
              is kept with surrounding blank space stripped. Without a system turn the template
              adds its own ("You are a helpful assistant.").
    decoding  a left-padded batch of `--batch-size` prompts through `model.generate`: greedy, or
              sampled from the full distribution (top_k 0) at `temperature` with `top_p` - the same
              settings as for MusicLLM checkpoints; the model's own generation_config only gives
              its stop and pad tokens (its sampling defaults are not used).

`MODELS` maps a config.json `model_type` to the transformers class that runs it; a model type is
added there once its processor follows the same chat-template + `audio=` convention (tested).

Sources (core/model/sources.py): `--model` is a local folder or an owner/name hub id. A missing
path, or a hub id that is offline and not in the local cache, is a ValueError at once that says so (never "not a
MusicLLM checkpoint"); a cached hub id is read from its snapshot folder. Weights are loaded as
safetensors only: a folder holding only a pickle or an unreadable model.safetensors is refused
with a ValueError naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mllm.core.audio import record_audio_stream
from mllm.core.io.errors import Record
from mllm.core.model.chat import AUDIO_PLACEHOLDER

__all__ = ["MODELS", "audio_text_model_type", "conversation", "AudioTextGenerator", "load_audio_text_model"]

MODELS = {"qwen2_audio": "Qwen2AudioForConditionalGeneration"}


def audio_text_model_type(name: str) -> str | None:
    """The `model_type` of `name` (a local folder or a hub id) when its config.json declares one,
    else None (a local folder that is an mllm checkpoint, or not a model: load_checkpoint says why).

    Raises ValueError naming `name` when it is neither an existing folder nor a hub id that can be
    read: a missing path, a hub id offline and not cached, or one the hub does not give. A hub id
    here has the owner/name form: a plain name that is not a folder gives None (no hub lookup)."""
    from mllm.core.model.sources import looks_like_path, resolve_model

    if "/" not in name and not looks_like_path(name) and not Path(name).exists():
        return None
    source = resolve_model(name, option="--model")  # ModelSourceError is a ValueError
    path = Path(source)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            return None
        try:
            return json.loads(config.read_text()).get("model_type")
        except (ValueError, AttributeError):
            return None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source).model_type
    except (OSError, ValueError) as exc:
        raise ValueError(f"--model {name}: no such local folder, and the Hugging Face hub does not give it "
                         f"as a model ({exc})") from None


def conversation(messages: list[dict]) -> list[dict]:
    """Chat turns in the processor's form: the user turn holding `<audio>` becomes a list of
    content items, [{"type": "audio"}, {"type": "text", "text": ...}] in the order they appear.

    Raises ValueError unless exactly one `<audio>` placeholder appears, in a user turn."""
    out, count = [], 0
    for turn in messages:
        content = turn.get("content")
        if not isinstance(content, str):
            raise ValueError(f"a {turn.get('role')!r} turn has no text content")
        found = content.count(AUDIO_PLACEHOLDER)
        count += found
        if not found:
            out.append({"role": turn.get("role"), "content": content})
            continue
        if turn.get("role") != "user":
            raise ValueError(f"the {AUDIO_PLACEHOLDER} placeholder is in a {turn.get('role')!r} turn, not the user turn")
        items = []
        for index, text in enumerate(content.split(AUDIO_PLACEHOLDER)):
            if index:
                items.append({"type": "audio"})
            if text.strip():
                items.append({"type": "text", "text": text.strip()})
        out.append({"role": "user", "content": items})
    if count != 1:
        raise ValueError(f"the user turn must hold the {AUDIO_PLACEHOLDER} placeholder once, found {count}")
    return out


class AudioTextGenerator:
    """A transformers audio-text model and its processor over a list of prompts (one left-padded batch).

    `audio_input(record)` gives what a prompt carries as its audio (the waveform at the processor's
    rate); `check(prompt)` raises for a prompt that cannot be rendered, so that record alone fails."""

    def __init__(self, model, processor, *, max_new_tokens: int = 128, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0):
        from transformers import GenerationConfig

        self.model = model
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"  # batched generation continues every row at its end
        self.sample_rate = int(processor.feature_extractor.sampling_rate)
        tokenizer = processor.tokenizer
        own = model.generation_config
        eos = own.eos_token_id if own.eos_token_id is not None else tokenizer.eos_token_id
        pad = own.pad_token_id if own.pad_token_id is not None else tokenizer.pad_token_id
        self.config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=eos,
                                       pad_token_id=pad if pad is not None else eos)
        if do_sample:
            self.config.temperature, self.config.top_k, self.config.top_p = temperature, 0, top_p

    def audio_input(self, record: Record) -> np.ndarray:
        """The record's audio (its `audio`, `start`, `end`), mono float32 at the processor's rate,
        decoded only as far as the feature extractor's window (what the model hears), so a long
        file costs a window of samples, not the whole file."""
        window = int(getattr(self.processor.feature_extractor, "n_samples", 0) or 0)
        try:
            stream = record_audio_stream(record, sample_rate=self.sample_rate)
            blocks, kept = [], 0
            try:
                for block in stream:
                    blocks.append(block if not window else block[:window - kept])
                    kept += len(blocks[-1])
                    if window and kept >= window:
                        break
            finally:
                stream.close()
        except ValueError as exc:  # RecordError, AudioError: the message names the field
            raise type(exc)(f"record {record.get('id')!r}: {exc}") from None
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def render(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(conversation(messages), add_generation_prompt=True, tokenize=False)

    def check(self, prompt) -> None:
        self.render(prompt.messages)

    def __call__(self, prompts) -> list[str]:
        import torch

        texts = [self.render(p.messages) for p in prompts]
        inputs = self.processor(text=texts, audio=[p.audio for p in prompts], sampling_rate=self.sample_rate,
                                return_tensors="pt", padding=True)
        inputs = inputs.to(self.model.device)
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, generation_config=self.config)  # (B, prompt + new)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(new, skip_special_tokens=True)]


def load_audio_text_model(name: str, model_type: str, *, device: str = "cpu", dtype: str = "float32",
                          max_new_tokens: int = 128, sample: bool = False, temperature: float = 1.0,
                          top_p: float = 1.0) -> AudioTextGenerator:
    """The model `name` (folder or hub id) of `model_type` with its processor, in eval mode on `device`.

    Raises ValueError for a model type not in MODELS, a folder without readable safetensors
    weights, or a model that does not load."""
    import torch
    import transformers
    from safetensors import SafetensorError
    from transformers import AutoProcessor

    from mllm.core.model.sources import check_model_folder, resolve_model

    if model_type not in MODELS:
        raise ValueError(f"{name}: model type {model_type!r} is not an audio-text model mllm runs "
                         f"(supported: {', '.join(MODELS)})")
    model_class = getattr(transformers, MODELS[model_type])
    source = resolve_model(name, option="--model")
    if Path(source).is_dir():
        check_model_folder(source)
    try:
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"cannot load the processor of {model_type} model {name}: {exc}") from None
    try:
        model = model_class.from_pretrained(source, dtype=getattr(torch, dtype), use_safetensors=True)
    except (OSError, ValueError, KeyError, AttributeError, SafetensorError) as exc:
        raise ValueError(f"cannot load {model_type} model {name}: {exc} (mllm loads safetensors only)") from None
    if not hasattr(processor, "feature_extractor") or not hasattr(processor, "tokenizer"):
        raise ValueError(f"{name}: its processor ({type(processor).__name__}) has no feature extractor and tokenizer")
    model.to(device)
    model.eval()
    return AudioTextGenerator(model, processor, max_new_tokens=max_new_tokens, do_sample=sample,
                              temperature=temperature, top_p=top_p)
