"""Turn an instruction record into LLM inputs: chat template, audio placeholder, labels, batches.

One example is the record's `messages` rendered with the LLM's own chat template, cut in three
pieces of token ids around the audio:

    [ before <audio> | audio tokens (from the projector) | after <audio>, up to the assistant header | answer + end ]

- The text is rendered twice: the prompt (turns before the assistant answer, with the template's
  generation prompt) and the whole conversation. The answer is what the second adds to the first,
  trailing whitespace removed: for SmolLM2 `A minor<|im_end|>` (the `\\n` the template writes after
  the end token is not learnt). The end-of-turn token is part of the answer, so the model learns to
  stop; a template whose conversation does not extend its prompt is refused.
- The prompt is split at `<audio>` (exactly once), and each piece is tokenised on its own, so the
  placeholder never becomes tokens: the projector's outputs take its place (no vocabulary surgery).
- System prompt: `system_prompt` is added as a system turn when the record has none. It defaults to
  a short one because SmolLM2's template inserts a long default ("You are a helpful AI assistant
  named SmolLM, trained by Hugging Face") when no system turn is given; `None` adds nothing and
  leaves that to the template. The same prompt must be used in training and inference: a
  checkpoint stores it.

`collate` pads a list of examples into a `Batch`. Padding is on the left by default (batched
generation needs it; training does not care); attention masks and labels are built from lengths,
never from the pad token (SmolLM2's pad token is its end token), and
`position_ids = cumsum(attention_mask) - 1`, so a padded example sees the positions it would see
alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["AUDIO_PLACEHOLDER", "DEFAULT_SYSTEM_PROMPT", "IGNORE_INDEX", "Example", "Batch",
           "render_example", "example_from_record", "collate"]

AUDIO_PLACEHOLDER = "<audio>"
DEFAULT_SYSTEM_PROMPT = "You are a music expert. Listen to the audio and answer the question."
IGNORE_INDEX = -100


@dataclass
class Example:
    before: list[int]  # token ids of the prompt text before <audio>
    after: list[int]  # token ids after <audio>, through the assistant header
    answer: list[int]  # token ids of the answer and its end-of-turn token; [] for generation
    audio: torch.Tensor  # (T, D) encoder frames


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) long; audio and padding positions hold the pad id
    audio_positions: torch.Tensor  # (B, L) bool: where the projected audio tokens go
    attention_mask: torch.Tensor  # (B, L) long: 1 on real tokens
    position_ids: torch.Tensor  # (B, L) long: cumsum(mask) - 1, 0 on padding
    labels: torch.Tensor  # (B, L) long: answer ids, IGNORE_INDEX elsewhere (unshifted)
    audio: torch.Tensor  # (B, T, D) float; clips padded at the end
    audio_mask: torch.Tensor  # (B, T) bool

    def to(self, device: str | torch.device) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _with_system(messages: Sequence[dict], system_prompt: str | None) -> list[dict]:
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt is not None and (not turns or turns[0]["role"] != "system"):
        turns.insert(0, {"role": "system", "content": system_prompt})
    return turns


def render_example(messages: Sequence[dict], audio: torch.Tensor | np.ndarray | None, tokenizer,
                   system_prompt: str | None = DEFAULT_SYSTEM_PROMPT, with_answer: bool = True) -> Example:
    """One example from chat turns whose user turn holds `<audio>` once; with `audio` None, a
    text-only example (no placeholder, no audio tokens: the LLM alone).

    With `with_answer`, the last turn must be the assistant's answer; without, a trailing
    assistant turn is dropped and `answer` is empty (a prompt for generation).
    """
    turns = _with_system(messages, system_prompt)
    answer_turn = turns[-1] if turns and turns[-1]["role"] == "assistant" else None
    if answer_turn is not None:
        turns = turns[:-1]
    elif with_answer:
        raise ValueError("messages end without an assistant turn: no answer to learn")
    prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    answer_text = ""
    if with_answer:
        whole = tokenizer.apply_chat_template(turns + [answer_turn], tokenize=False)
        if not whole.startswith(prompt):
            raise ValueError("the chat template renders the conversation differently from its prompt; "
                             "cannot tell the answer tokens apart")
        answer_text = whole[len(prompt):].rstrip()
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    count = prompt.count(AUDIO_PLACEHOLDER)
    if audio is None:  # a text-only prompt: the LLM alone, no audio tokens
        if count:
            raise ValueError(f"the prompt holds the audio placeholder {AUDIO_PLACEHOLDER} but the record has no audio_embedding")
        return Example(before=ids(prompt), after=[], answer=ids(answer_text), audio=torch.zeros(0, 0))
    if count != 1:
        raise ValueError(f"the prompt must hold the audio placeholder {AUDIO_PLACEHOLDER} once, found {count}")
    before, after = prompt.split(AUDIO_PLACEHOLDER)
    audio = torch.as_tensor(np.require(audio, dtype=np.float32, requirements="W"))  # a decoded tensor field is read-only: copied then
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise ValueError(f"audio_embedding must be [T, D] with T >= 1, got shape {tuple(audio.shape)}")
    return Example(before=ids(before), after=ids(after), answer=ids(answer_text), audio=audio)


def example_from_record(record: dict, tokenizer, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
                        with_answer: bool = True, text_only: bool = False) -> Example:
    """`render_example` on a record's `messages` and `audio_embedding` ([T, D], from `mllm encode`).
    With `text_only`, a record without `audio_embedding` whose messages hold no `<audio>` is a
    text-only example (grpo trains the LLM alone on such records)."""
    if "messages" not in record:
        raise KeyError(f"record {record.get('id')!r} has no 'messages'")
    if "audio_embedding" not in record and not text_only:
        raise KeyError(f"record {record.get('id')!r} has no 'audio_embedding'")
    return render_example(record["messages"], record.get("audio_embedding"), tokenizer, system_prompt, with_answer)


def collate(examples: Sequence[Example], audio_tokens: Callable[[int], int], pad_id: int,
            padding_side: str = "left") -> Batch:
    """Pad examples into one batch. `audio_tokens(T)` is the projector's output length for T frames."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be left or right, not {padding_side!r}")
    b = len(examples)
    counts = [audio_tokens(e.audio.shape[0]) for e in examples]
    lengths = [len(e.before) + n + len(e.after) + len(e.answer) for e, n in zip(examples, counts)]
    width = max(lengths)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    audio_positions = torch.zeros(b, width, dtype=torch.bool)
    attention_mask = torch.zeros(b, width, dtype=torch.long)
    labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
    frames = max(e.audio.shape[0] for e in examples)
    with_audio = [e for e in examples if e.audio.shape[0]]  # text-only examples have no frames
    dim = with_audio[0].audio.shape[1] if with_audio else 1
    audio = torch.zeros(b, frames, dim)
    audio_mask = torch.zeros(b, frames, dtype=torch.bool)
    for i, (e, n, length) in enumerate(zip(examples, counts, lengths)):
        if e.audio.shape[0] and e.audio.shape[1] != dim:
            raise ValueError(f"audio embeddings of one batch differ in size: {e.audio.shape[1]} vs {dim}")
        start = width - length if padding_side == "left" else 0
        ids = e.before + [pad_id] * n + e.after + e.answer
        input_ids[i, start:start + length] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, start:start + length] = 1
        audio_start = start + len(e.before)
        audio_positions[i, audio_start:audio_start + n] = True
        if e.answer:
            labels[i, start + length - len(e.answer):start + length] = torch.tensor(e.answer, dtype=torch.long)
        if e.audio.shape[0]:
            audio[i, :e.audio.shape[0]] = e.audio
            audio_mask[i, :e.audio.shape[0]] = True
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    return Batch(input_ids, audio_positions, attention_mask, position_ids, labels, audio, audio_mask)
