"""Encoding on the fly (core/encoders/for_model.py): `mllm sft --encoder` trains on records that only
have `audio` exactly as on `mllm encode`'s output, and caption/regress encode such records with the
checkpoint's encoder; embeddings from another encoder or frame rate are refused record by record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.encoders.for_model import ModelEncoder, same_encoder
from mllm.core.io.records import RecordWriter, read_records
from mllm.core.train import SFTConfig, setup
from tiny_llm import build_tiny_llm

runner = CliRunner()


def invoke(*args, expect=0, input=None):
    result = runner.invoke(app, [*map(str, args)], input=input)
    assert result.exit_code == expect, (result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
    return result


def rows(path: Path) -> list[dict]:
    return list(read_records(str(path)))  # tensors decoded


def write(path: Path, records: list[dict]) -> Path:
    with RecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(instruction records with audio only, the same after `mllm encode`, tiny LLM)."""
    folder = tmp_path_factory.mktemp("on-the-fly")
    invoke("synth", folder / "corpus", "--n", 8, "--seconds", 3, "--sample-rate", 16000, "--seed", 2, "--no-stdout")
    invoke("build-instructions", folder / "corpus" / "manifest.jsonl", "--tasks", "key", "-o", folder / "instr.jsonl")
    invoke("encode", folder / "instr.jsonl", "--encoder", "dsp", "--frame-rate", 1, "-o", folder / "instr.enc.jsonl")
    return folder / "instr.jsonl", folder / "instr.enc.jsonl", build_tiny_llm(folder / "llm")


SFT = ("--steps", 3, "--batch-size", 4, "--lr", 1e-2, "--no-bf16", "--device", "cpu", "--lora-dropout", 0)


def test_sft_on_the_fly_equals_sft_on_encoded_records(corpus, tmp_path):
    plain, encoded, llm = corpus
    assert "audio_embedding" not in rows(plain)[0]
    invoke("sft", plain, "--llm", llm, "-o", tmp_path / "a", expect=2)  # no embeddings, no --encoder: refused
    fly = invoke("sft", plain, "--llm", llm, "-o", tmp_path / "fly", "--encoder", "dsp", "--frame-rate", 1,
                 "--cache", tmp_path / "cache", *SFT)
    ready = invoke("sft", encoded, "--llm", llm, "-o", tmp_path / "ready", *SFT)
    losses = lambda result: [orjson.loads(line)["loss"] for line in result.stdout.splitlines()]  # noqa: E731
    assert losses(fly) == pytest.approx(losses(ready), rel=1e-6)
    assert any((tmp_path / "cache").rglob("*.safetensors"))  # the embeddings were cached for the next run
    spec = json.loads((tmp_path / "fly" / "config.json").read_text())["encoder"]
    assert spec == {"name": "dsp", "dim": 39, "frame_rate": 1.0, "layer": None}
    # resuming encodes with the checkpoint's encoder: 1 frame/s, not this command's default of 10
    # (records at 10 frames/s would be refused as another frame rate)
    more = invoke("sft", plain, "--llm", llm, "-o", tmp_path / "fly2", "--encoder", "dsp", "--resume", tmp_path / "fly")
    assert "frame_rate" not in more.stderr and json.loads((tmp_path / "fly2" / "trainer_state.json").read_text())["step"] == 3


def test_caption_encodes_audio_records_with_the_checkpoint_encoder(corpus, tmp_path):
    plain, encoded, llm = corpus
    invoke("sft", encoded, "--llm", llm, "-o", tmp_path / "ckpt", *SFT)
    from_audio = invoke("caption", plain, "--model", tmp_path / "ckpt", "--max-new-tokens", 8).stdout
    from_embedding = invoke("caption", encoded, "--model", tmp_path / "ckpt", "--max-new-tokens", 8).stdout
    assert [r["response"] for r in map(orjson.loads, from_audio.splitlines())] == \
           [r["response"] for r in map(orjson.loads, from_embedding.splitlines())]

    # embeddings at another frame rate, and a record with nothing to read: error records, the others go on
    wrong = rows(encoded)[:3]
    wrong[0] = {**wrong[0], "frame_rate": 2.0}
    wrong[1] = {k: v for k, v in wrong[1].items() if k not in ("audio", "audio_embedding")}
    result = invoke("caption", write(tmp_path / "wrong.jsonl", wrong), "--model", tmp_path / "ckpt",
                    "--max-new-tokens", 4, expect=1)
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert "frame_rate" in out[0]["error"]["message"] and "trained at 1.0" in out[0]["error"]["message"]
    assert "neither 'audio_embedding' nor 'audio'" in out[1]["error"]["message"]
    assert "response" in out[2]


def test_model_encoder_checks_and_reports_an_encoder_it_cannot_load(corpus):
    plain, encoded, _ = corpus
    record = rows(encoded)[0]
    spec = {"name": "dsp", "dim": 39, "frame_rate": 1.0, "layer": None}
    np.testing.assert_array_equal(ModelEncoder(spec)(record), record["audio_embedding"])
    with pytest.raises(ValueError, match=r"shape \[3, 39\], the model reads \[T, 12\]"):
        ModelEncoder({**spec, "dim": 12})(record)
    with pytest.raises(ValueError, match="the model was trained on 'chroma'"):
        ModelEncoder({**spec, "name": "chroma"}).check(record)
    missing = ModelEncoder({**spec, "name": "/no/such/model"})
    out = list(missing.embeddings([r for r in rows(plain)[:2]]))
    assert all("cannot load the model's encoder '/no/such/model'" in r["error"]["message"] for r in out)
    assert same_encoder("dsp", None) and same_encoder("unknown", "dsp") and not same_encoder("dsp", "chroma")


def test_sft_refuses_records_from_two_encoders(corpus, tmp_path):
    _, encoded, llm = corpus
    records = rows(encoded)
    records[-1] = {**records[-1], "encoder": "chroma+onset+loudness"}
    with pytest.raises(ValueError, match=repr(records[-1]["id"])):
        setup(SFTConfig(llm=str(llm), steps=1, output=str(tmp_path / "x")), records)
