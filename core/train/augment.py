"""Transposition augmentation for key: shift a record's chroma and its key by the same interval.

    transposed = transpose_record(record, 3, chroma=(0, 12))   # chroma rolled up 3 semitones, A minor -> C minor

Chroma bin j holds pitch class j (C = 0, ..., B = 11, librosa's order), so moving the music up k
semitones moves bin j's energy to bin (j + k) mod 12: a roll of the chroma columns of every frame.
The key moves with it, in the structured `answer` and in the assistant's answer text (the span
core.parse.key reads is replaced, so the text keeps its phrasing: "The key is A minor." -> "The
key is C minor."). Tonics are spelt as core.parse.key spells pitch classes (C, C#, D, Eb, E, F, F#,
G, Ab, A, Bb, B). A record that is not a key task, or whose answer text does not name exactly its
key, is returned unchanged (None from `transpose_record`), so the augmentation never writes an
answer eval-mir would read differently.

The CPU prototype of the emotion paper's pipeline found this cheap and useful: with 168 training
clips every clip is seen in twelve keys. Only for features whose columns are chroma (the DSP
encoders `dsp`, `chroma`, `chroma+...`; core.encoders.dsp.feature_columns): a learnt encoder's
dimensions have no pitch axis to roll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mllm.core.parse.key import SPELLING_OF_PITCH_CLASS, Key, find_key

__all__ = ["chroma_columns", "transpose_key", "transpose_record"]


def chroma_columns(encoder: Mapping[str, Any]) -> tuple[int, int] | None:
    """(first, end) of the chroma columns of an encoder spec ({"name": "dsp", ...}), or None."""
    from mllm.core.encoders.dsp import feature_columns, is_dsp_name

    name = str(encoder.get("name") or "")
    if not name or not is_dsp_name(name):
        return None
    return feature_columns(name).get("chroma")


def transpose_key(key: Key, k: int) -> Key:
    if key.mode not in ("major", "minor"):
        return key
    return Key(SPELLING_OF_PITCH_CLASS[(key.pitch_class + k) % 12], key.mode)


def transpose_record(record: Mapping[str, Any], k: int, chroma: tuple[int, int]) -> dict | None:
    """The record moved up `k` semitones (chroma columns rolled, key renamed), or None when it is
    not a key record whose answer can be transposed (see the module docstring)."""
    if record.get("task") != "key" or k % 12 == 0:
        return None
    answer = record.get("answer")
    messages = record.get("messages")
    if not isinstance(answer, Mapping) or not isinstance(answer.get("key"), str) or not isinstance(messages, list):
        return None
    if not messages or not isinstance(messages[-1], Mapping) or messages[-1].get("role") != "assistant":
        return None
    found_answer, found_text = find_key(answer["key"]), find_key(str(messages[-1].get("content", "")))
    if found_answer is None or found_text is None or found_text.value != found_answer.value:
        return None
    if found_answer.value.mode not in ("major", "minor"):
        return None
    new_key = transpose_key(found_answer.value, k)
    text = messages[-1]["content"]
    span = text[found_text.start:found_text.end]
    tail = "." if span.endswith(".") else ""  # the reader's span takes the full stop of "A min."
    new_text = text[:found_text.start] + str(new_key) + tail + text[found_text.end:]
    check = find_key(new_text)
    if check is None or check.value != new_key:  # the phrasing would read as another key: leave it
        return None
    embedding = np.array(record["audio_embedding"], dtype=np.float32, copy=True)
    first, end = chroma
    embedding[:, first:end] = np.roll(embedding[:, first:end], k % 12, axis=1)
    return {**record, "audio_embedding": embedding, "answer": {**answer, "key": str(new_key)},
            "messages": [*messages[:-1], {**messages[-1], "content": new_text}]}
