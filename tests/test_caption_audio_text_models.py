"""`mllm caption` / `mllm regress` on a published audio-text model (core/infer/audio_text_models.py):
a tiny random Qwen2-Audio saved like a hub model, run through the CLI on real wav files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.infer.audio_text_models import AudioTextGenerator, audio_text_model_type, conversation
from mllm.core.infer.generation import load_generator
from mllm.core.io.jsonl import dumps
from tiny_qwen2_audio import build_tiny_qwen2_audio

runner = CliRunner()
QUESTIONS = ["What key is this music in?", "Describe the music.", "How fast is the tempo?"]


def invoke(*args, expect=0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def rows(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("qwen2audio") / "tiny-qwen2-audio")


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> list[Path]:
    """Four 1.5 s clips at 22.05 kHz (resampled to 16 kHz on the way in): tones, noise, a chirp."""
    folder = tmp_path_factory.mktemp("wavs")
    rate = 22050
    t = np.arange(int(1.5 * rate)) / rate
    signals = [0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 880 * t),
               0.2 * np.random.default_rng(0).normal(size=t.size), 0.3 * np.sin(2 * np.pi * (200 + 600 * t) * t)]
    paths = []
    for i, signal in enumerate(signals):
        path = folder / f"clip{i}.wav"
        soundfile.write(path, signal.astype(np.float32), rate)
        paths.append(path)
    return paths


def make_records(wavs: list[Path]) -> list[dict]:
    """One record per clip, each asking its own question; the last one cropped with start/end."""
    out = []
    for i, path in enumerate(wavs):
        record = {"id": f"a{i}", "audio": str(path), "split": "test",
                  "messages": [{"role": "user", "content": f"<audio>\n{QUESTIONS[i % len(QUESTIONS)]}"},
                               {"role": "assistant", "content": "the reference answer"}]}
        if i == len(wavs) - 1:
            record.update(start=0.25, end=1.25)
        out.append(record)
    return out


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(dumps(r) for r in records))
    return path


def test_load_generator_detects_the_model_from_its_config(model, tmp_path):
    assert audio_text_model_type(str(model)) == "qwen2_audio"
    generate = load_generator(str(model), device="cpu", max_new_tokens=4)
    assert isinstance(generate, AudioTextGenerator) and generate.sample_rate == 16000
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"format": "mllm-musicllm", "version": 1}))
    assert audio_text_model_type(str(checkpoint)) is None  # an mllm checkpoint goes to load_checkpoint
    assert audio_text_model_type("no-such-model") is None  # not a folder, not an owner/name id: no hub lookup
    other = tmp_path / "llama"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="'llama' is not an audio-text model"):
        load_generator(str(other), device="cpu")


def test_audio_is_decoded_cropped_and_resampled_to_the_processor_rate(model, wavs):
    generate = load_generator(str(model), device="cpu")
    whole = generate.audio_input({"id": "w", "audio": str(wavs[0])})
    crop = generate.audio_input({"id": "c", "audio": str(wavs[0]), "start": 0.25, "end": 1.25})
    assert whole.shape == (24000,) and crop.shape == (16000,)  # 1.5 s and 1 s at 16 kHz
    np.testing.assert_allclose(crop[1000:-1000], whole[4000:20000][1000:-1000], atol=0.02)  # within a sample
    with pytest.raises(ValueError, match=r"record 'x': field 'audio'"):
        generate.audio_input({"id": "x", "audio": str(wavs[0].parent / "missing.wav")})


def test_the_audio_placeholder_becomes_an_audio_content_item():
    turns = [{"role": "system", "content": "You are a music expert."},
             {"role": "user", "content": "<audio>\nWhat key is this music in?"}]
    assert conversation(turns) == [
        {"role": "system", "content": "You are a music expert."},
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "What key is this music in?"}]},
    ]
    assert conversation([{"role": "user", "content": "Listen: <audio> and describe it."}])[0]["content"] == [
        {"type": "text", "text": "Listen:"}, {"type": "audio"}, {"type": "text", "text": "and describe it."}]
    with pytest.raises(ValueError, match="once, found 0"):
        conversation([{"role": "user", "content": "No audio here."}])
    with pytest.raises(ValueError, match="once, found 2"):
        conversation([{"role": "user", "content": "<audio> <audio>"}])


def test_qwen2_audio_prompt_follows_its_chat_template(model, wavs):
    generate = load_generator(str(model), device="cpu")
    text = generate.render([{"role": "user", "content": "<audio>\nWhat key is this music in?"}])
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhat key is this music in?<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_caption_cli_batched_equals_one_at_a_time(model, wavs, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(wavs))
    one = rows(invoke("caption", source, "--model", model, "--batch-size", 1, "--max-new-tokens", 8).stdout)
    batched = rows(invoke("caption", source, "--model", model, "--batch-size", 3, "--max-new-tokens", 8).stdout)
    assert [r["id"] for r in one] == [r["id"] for r in batched] == ["a0", "a1", "a2", "a3"]
    assert all(isinstance(r["response"], str) and r["response"] for r in one)
    assert [r["response"] for r in one] == [r["response"] for r in batched]
    assert all(r["messages"][-1]["role"] == "assistant" and r["split"] == "test" for r in batched)  # fields kept
    # the audio reaches the model: the same question about two different clips gets different answers
    asked = rows(invoke("caption", source, "--model", model, "--prompt", "Describe this music.",
                        "--max-new-tokens", 8).stdout)
    assert len({r["response"] for r in asked}) > 1


def test_caption_cli_sampling_is_seeded(model, wavs, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(wavs)[:2])
    args = ["caption", source, "--model", model, "--sample", "--temperature", 1.5, "--max-new-tokens", 8]
    first = rows(invoke(*args, "--seed", 3).stdout)
    again = rows(invoke(*args, "--seed", 3).stdout)
    assert [r["response"] for r in first] == [r["response"] for r in again]


def test_caption_cli_resume_skips_written_ids(model, wavs, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(wavs))
    out = tmp_path / "out.jsonl"
    invoke("caption", source, "--model", model, "-o", out, "--max-new-tokens", 6, "--batch-size", 2)
    whole = rows(out.read_text())
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + lines[2][:10])  # stopped while writing the third record
    result = invoke("caption", source, "--model", model, "-o", out, "--resume", "--max-new-tokens", 6,
                    "--batch-size", 2)
    assert "resume: 2 records already in" in " ".join(result.stderr.split())
    resumed = rows(out.read_text())
    assert [r["id"] for r in resumed] == ["a0", "a1", "a2", "a3"]
    assert [r["response"] for r in resumed] == [r["response"] for r in whole]


def test_bad_audio_becomes_an_error_record_and_the_others_go_on(model, wavs, tmp_path):
    records = make_records(wavs)[:2]
    records.insert(1, {"id": "gone", "audio": str(tmp_path / "missing.wav"), "messages": records[0]["messages"]})
    records.append({"id": "embedded-only", "audio_embedding": np.zeros((2, 4), np.float32)})
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    records.append({"id": "broken", "audio": str(broken)})
    source = write_records(tmp_path / "in.jsonl", records)
    result = invoke("caption", source, "--model", model, "--max-new-tokens", 4, "--batch-size", 2, expect=1)
    out = rows(result.stdout)
    assert [r["id"] for r in out] == ["a0", "gone", "a1", "embedded-only", "broken"]
    assert isinstance(out[0]["response"], str) and isinstance(out[2]["response"], str)
    for record, name in zip(out[1:2] + out[3:], ["gone", "embedded-only", "broken"]):
        assert "response" not in record and record["error"]["stage"] == "caption"
        assert f"record {name!r}" in record["error"]["message"] and "'audio'" in record["error"]["message"]
    assert "3 failed" in " ".join(result.stderr.split())
    invoke("caption", source, "--model", model, "--max-new-tokens", 4, "--allow-errors")


def test_regress_asks_the_audio_text_model_and_reads_numbers(model, wavs, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(wavs)[:2])
    out = rows(invoke("regress", source, "--model", model, "--targets", "arousal,valence", "--max-new-tokens", 6).stdout)
    assert [r["id"] for r in out] == ["a0", "a1"]
    for record in out:
        assert set(record["prediction"]) == {"arousal", "valence", "parse_ok"}
        assert set(record["response"]) == {"arousal", "valence"} and all(isinstance(t, str) for t in record["response"].values())
