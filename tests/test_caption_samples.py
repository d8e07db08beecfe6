"""`mllm caption --samples N` (core/infer/captions.sample_records, generation.ModelSampler): N seeded
samples per record with their log-probabilities, reproducible whatever the batch, greedy at a
temperature near 0, --split and error records passed through once, --resume mid-group."""

from __future__ import annotations

import math

import orjson
import pytest
import torch

import test_caption_regress
from test_caption_regress import invoke, rows, write_records
from test_caption_regress import make_records as train_records

checkpoint = test_caption_regress.checkpoint  # the fixture: a tiny LLM + projector + LoRA trained for 8 steps


def make_records(n: int) -> list[dict]:
    """n instruction-like records of the test split (audio_embedding + messages)."""
    return [{**r, "split": "test"} for r in train_records(n)]


def sample(source, checkpoint, *args, expect=0):
    return invoke("caption", source, "--model", checkpoint, "--max-new-tokens", 10, "--samples", 4, *args,
                  expect=expect)


def test_n_samples_per_record_seeded_whatever_the_batch(checkpoint, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(3))
    one = rows(sample(source, checkpoint, "--batch-size", 1, "--seed", 3).stdout)
    batched = rows(sample(source, checkpoint, "--batch-size", 12, "--seed", 3).stdout)
    assert [(r["id"], r["sample"]) for r in one] == [(f"r{i}", k) for i in range(3) for k in range(4)]
    assert [r["response"] for r in one] == [r["response"] for r in batched]
    assert [r["response_tokens"] for r in one] == [r["response_tokens"] for r in batched]
    # log-probabilities to float rounding: left padding changes the order of the sums a little
    assert [r["logprob"] for r in one] == pytest.approx([r["logprob"] for r in batched], abs=1e-4)
    assert all(r["messages"] and r["split"] == "test" for r in one)  # input fields kept
    texts = [r["response"] for r in one]
    assert len(set(texts)) > 3  # they are samples, not one answer four times
    other = rows(sample(source, checkpoint, "--seed", 4).stdout)
    assert [r["response"] for r in other] != texts
    # a record's samples depend on its id and the seed, not on the other records of the input
    alone = rows(sample(write_records(tmp_path / "one.jsonl", make_records(3)[2:]), checkpoint, "--seed", 3).stdout)
    assert [r["response"] for r in alone] == texts[8:]


def test_logprobs_are_the_models_and_temperature_near_zero_is_greedy(checkpoint, tmp_path):
    from mllm.core.infer.captions import caption_prompt, record_seed
    from mllm.core.infer.generation import load_generator
    from mllm.core.model import Example

    records = make_records(3)
    source = write_records(tmp_path / "in.jsonl", records)
    drawn = rows(sample(source, checkpoint, "--top-p", 0.9).stdout)
    for r in drawn:
        assert math.isfinite(r["logprob"]) and r["logprob"] < 0
        assert r["response_tokens"] >= 1
        assert r["logprob_mean"] == pytest.approx(r["logprob"] / r["response_tokens"])
    # a sample's logprob is log p(its tokens | prompt) under the model at temperature 1, whatever it
    # was drawn at: recompute it from one full forward pass of prompt + the sample's tokens
    sampler = load_generator(str(checkpoint), device="cpu", max_new_tokens=10, temperature=0.7, top_p=0.9, samples=3)
    prompts = []
    for record in records:
        prompts.append(caption_prompt(record))
        prompts[-1].seed = record_seed(5, record["id"])
    drawn = sampler(prompts)
    assert [len(group) for group in drawn] == [3, 3, 3]
    model = sampler.model
    for prompt, group in zip(prompts, drawn):
        example = model.example({"messages": prompt.messages, "audio_embedding": prompt.audio}, with_answer=False)
        for one in group:
            ids = one.token_ids
            batch = model.collate([Example(example.before, example.after, ids, example.audio)])
            with torch.no_grad():
                logits = model.logits(batch)[0].float()  # (L, V): position t predicts token t + 1
            n = len(ids)
            expected = torch.log_softmax(logits[-n - 1:-1], dim=-1).gather(1, torch.tensor(ids)[:, None]).sum()
            assert one.logprob == pytest.approx(float(expected), abs=1e-3)
            assert one.text == model.tokenizer.decode(ids, skip_special_tokens=True).strip()
    # at a temperature near 0 every sample is the greedy answer
    greedy = rows(invoke("caption", source, "--model", checkpoint, "--max-new-tokens", 10).stdout)
    cold = rows(sample(source, checkpoint, "--temperature", 1e-4).stdout)
    assert len(cold) == 12
    for r in cold:
        assert r["response"] == greedy[int(r["id"][1:])]["response"]


def test_split_and_failures_pass_through_once(checkpoint, tmp_path):
    records = make_records(2) + [train_records(3)[2], {"id": "bare", "split": "test"}]
    source = write_records(tmp_path / "in.jsonl", records)
    result = sample(source, checkpoint, "--split", "test", expect=1)
    out = rows(result.stdout)
    assert [r["id"] for r in out] == ["r0"] * 4 + ["r1"] * 4 + ["r2", "bare"]
    assert "sample" not in out[8] and "response" not in out[8]  # another split: untouched
    assert out[9]["error"]["stage"] == "caption" and "sample" not in out[9]  # one error record
    assert "caption: 4 records in, 10 out, 1 failed" in " ".join(result.stderr.split())


@pytest.mark.parametrize("cut", [6, 5])
def test_resume_completes_an_incomplete_group(checkpoint, tmp_path, cut):
    records = make_records(3)
    records[1]["split"] = "train"  # passed through once: a resume counts it as 1 record, the others as 4
    source = write_records(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    sample(source, checkpoint, "-o", out, "--split", "test")
    whole = out.read_bytes().splitlines(keepends=True)
    assert [orjson.loads(line)["id"] for line in whole] == ["r0"] * 4 + ["r1"] + ["r2"] * 4
    out.unlink()  # a kill while writing line cut + 1: the lines before it written, that one cut short
    (tmp_path / "out.jsonl.partial").write_bytes(b"".join(whole[:cut]) + whole[cut][:15])
    result = sample(source, checkpoint, "-o", out, "--resume", "--split", "test")
    assert f"resume: {cut} records already in" in " ".join(result.stderr.split())
    assert out.read_bytes().splitlines(keepends=True) == whole
    sample(source, checkpoint, "-o", out, "--resume", "--split", "test")  # nothing left: the file stays as it is
    assert out.read_bytes().splitlines(keepends=True) == whole


def test_bad_samples_options(checkpoint, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(1))
    assert "Invalid value" in " ".join(sample(source, checkpoint, "--samples", -1, expect=2).output.split())
    assert "temperature" in sample(source, checkpoint, "--temperature", 0, expect=2).output
    published = tmp_path / "qwen2-audio"  # refused from its config.json alone, before any weights load
    published.mkdir()
    (published / "config.json").write_text('{"model_type": "qwen2_audio"}')
    refused = " ".join(sample(source, published, expect=2).output.split())
    assert "--samples needs a `mllm sft` checkpoint" in refused and "qwen2_audio" in refused
