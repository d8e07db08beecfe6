"""Transposition augmentation (core/train/augment.py, `mllm sft --transpose`): the chroma roll moves
the DSP encoder's chroma as transposing the audio does, the key moves with it in the answer and its
text, records it cannot move are left alone, and sft draws are seeded per epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_llm import build_tiny_llm

from mllm.core.encoders.dsp import SAMPLE_RATE, DspEncoder
from mllm.core.parse.key import find_key
from mllm.core.train.augment import chroma_columns, transpose_record
from mllm.core.train.sft import SFTConfig, epoch_shifts, next_micro_batch, setup


def triad(root_midi: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t) for m in (root_midi, root_midi + 4, root_midi + 7)) / 3


def key_record(embedding, key="A minor", text="The key of this piece is A minor.") -> dict:
    return {"id": "x", "task": "key", "split": "train", "answer": {"key": key}, "encoder": "dsp", "frame_rate": 1.0,
            "audio_embedding": np.asarray(embedding, dtype=np.float32),
            "messages": [{"role": "user", "content": "<audio>\nWhat key is this in?"},
                         {"role": "assistant", "content": text}]}


def test_the_roll_moves_chroma_as_transposing_the_audio_does():
    encoder = DspEncoder("chroma+onset+loudness")
    c_major, eb_major = encoder.encode_clip(triad(60)), encoder.encode_clip(triad(63))  # C-E-G and Eb-G-Bb
    chroma = chroma_columns({"name": "chroma+onset+loudness"})
    assert chroma == (0, 12)
    moved = transpose_record(key_record(c_major, "C major", "C major"), 3, chroma)
    rolled, real = moved["audio_embedding"][:, :12].mean(0), eb_major[:, :12].mean(0)
    assert np.argmax(rolled) == np.argmax(real) and np.corrcoef(rolled, real)[0, 1] > 0.95
    assert set(np.argsort(rolled)[-3:]) == {3, 7, 10}  # Eb, G, Bb
    assert moved["answer"]["key"] == "Eb major" and moved["messages"][-1]["content"] == "Eb major"
    np.testing.assert_array_equal(moved["audio_embedding"][:, 12:], c_major[:, 12:])  # onset, loudness unchanged


def test_the_key_moves_in_the_answer_and_its_text_and_back():
    embedding = np.random.default_rng(0).random((4, 39)).astype(np.float32)
    moved = transpose_record(key_record(embedding), 3, (0, 12))
    assert moved["answer"] == {"key": "C minor"}
    assert moved["messages"][-1]["content"] == "The key of this piece is C minor."
    assert moved["messages"][0] == key_record(embedding)["messages"][0]  # the question is untouched
    back = transpose_record(moved, 9, (0, 12))
    assert back["answer"] == {"key": "A minor"}
    np.testing.assert_array_equal(back["audio_embedding"], embedding)


def test_records_it_cannot_move_are_left_alone():
    embedding = np.zeros((2, 39), dtype=np.float32)
    assert transpose_record(key_record(embedding), 0, (0, 12)) is None
    assert transpose_record({**key_record(embedding), "task": "tempo"}, 3, (0, 12)) is None
    assert transpose_record(key_record(embedding, text="It is in E major."), 3, (0, 12)) is None  # text names another key
    assert transpose_record(key_record(embedding, key="D dorian", text="D Dorian"), 3, (0, 12)) is None
    assert chroma_columns({"name": "openai/whisper-base"}) is None and chroma_columns({"name": "onset"}) is None


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


def test_sft_draws_transposed_records_seeded_per_epoch(llm_folder, tmp_path):
    rng = np.random.default_rng(1)
    records = [{**key_record(rng.random((3, 14)).astype(np.float32)), "id": f"r{i}", "encoder": "chroma+onset+loudness"}
               for i in range(6)]
    config = SFTConfig(llm=str(llm_folder), steps=2, batch_size=6, transpose=True, output=str(tmp_path / "c"))
    run = setup(config, records)
    examples = next_micro_batch(run)
    shifts = epoch_shifts(0, 0, 6)
    order = run.order[1]
    decode = run.model.tokenizer.decode
    for i, example in zip(order, examples):
        key = find_key(decode(example.answer)).value
        assert key.pitch_class == (9 + shifts[i]) % 12 and key.mode == "minor"  # A minor moved by its interval
        expected = np.roll(np.asarray(records[i]["audio_embedding"])[:, :12], shifts[i], axis=1)
        assert torch.allclose(example.audio[:, :12], torch.as_tensor(expected))
    # chroma standardisation pooled over the 12 bins: a transposed draw is standardised like any other
    assert torch.allclose(run.model.projector.mean[:12], run.model.projector.mean[:12].mean().expand(12))
    assert epoch_shifts(0, 1, 6) != shifts
    with pytest.raises(ValueError, match="--transpose rolls chroma"):
        setup(config, [{**r, "encoder": "onset"} for r in records])
