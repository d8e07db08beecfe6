"""MusicLLM on a tiny random Llama loaded through `load_llm(folder)`: prompts, labels, batches,
training, generation, checkpoints. The real SmolLM2 GGUF is the slow test at the end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from safetensors.torch import load_file, save_file

from mllm.core.model import (IGNORE_INDEX, LoraSettings, MusicLLM, load_checkpoint, load_llm, render_example,
                             save_checkpoint)
from mllm.core.model.checkpoint import CheckpointError
from tiny_llm import build_tiny_llm

ENCODER = {"name": "chroma+onset+loudness", "dim": 14, "frame_rate": 1.0}


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory) -> Path:
    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


def record(i: int, frames: int, question: str = "What key is this music in?", answer: str = "The key is A minor.",
           seed: int = 0) -> dict:
    rng = np.random.default_rng(seed * 1000 + i)
    return {"id": f"r{i}", "audio_embedding": rng.normal(size=(frames, 14)).astype(np.float16),
            "messages": [{"role": "user", "content": f"<audio>\n{question}"},
                         {"role": "assistant", "content": answer}]}


RECORDS = [record(0, 8, answer="The key is A minor."),
           record(1, 5, "How fast is the tempo?", "About 120 beats per minute."),
           record(2, 11, "Describe the music.", "A calm piano piece.")]


def build(llm_folder, lora=True, kind="mlp", seed=0, **projector) -> MusicLLM:
    torch.manual_seed(seed)
    return MusicLLM.build(str(llm_folder), encoder=ENCODER, projector={"kind": kind, **projector},
                          lora=LoraSettings(rank=4, alpha=8, dropout=0.0) if lora else None)


def train(model: MusicLLM, steps: int, lr: float = 3e-2) -> tuple[float, float]:
    """AdamW on the three records; returns the loss before and after (eval mode)."""
    batch = model.batch(RECORDS, padding_side="right")
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr, weight_decay=0.0)
    with torch.no_grad():
        first = float(model.eval()(batch))
    model.train()
    for _ in range(steps):
        loss = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        last = float(model.eval()(batch))
    return first, last


def test_load_llm_from_folder(llm_folder):
    model, tokenizer = load_llm(llm_folder)
    assert not model.training and tokenizer.pad_token_id == tokenizer.eos_token_id
    with pytest.raises(FileNotFoundError):
        load_llm(llm_folder / "missing.gguf")


def test_system_prompt(llm_folder):
    _, tokenizer = load_llm(llm_folder)
    messages = RECORDS[0]["messages"]
    audio = np.zeros((2, 14))
    ours = tokenizer.decode(render_example(messages, audio, tokenizer).before)
    assert "You are a music expert" in ours and "default assistant" not in ours
    none = tokenizer.decode(render_example(messages, audio, tokenizer, system_prompt=None).before)
    assert "default assistant" in none  # the template's own default
    own = [{"role": "system", "content": "Be brief."}] + messages
    assert "Be brief." in tokenizer.decode(render_example(own, audio, tokenizer).before)
    with pytest.raises(ValueError, match="once"):
        render_example([{"role": "user", "content": "no audio"}, messages[1]], audio, tokenizer)
    with pytest.raises(ValueError, match="assistant"):
        render_example(messages[:1], audio, tokenizer)
    assert render_example(messages[:1], audio, tokenizer, with_answer=False).answer == []


def test_audio_goes_where_the_placeholder_was(llm_folder):
    model = build(llm_folder, kind="strided", stride=3)
    examples = [model.example(r) for r in RECORDS]
    batch = model.collate(examples, padding_side="left")
    embeds = model.embed(batch)
    tokens, token_mask = model.projector(batch.audio, batch.audio_mask)
    token_embeddings = model.llm.get_input_embeddings()(batch.input_ids)
    width = batch.input_ids.shape[1]
    for i, e in enumerate(examples):
        n = model.projector.output_length(e.audio.shape[0])
        length = len(e.before) + n + len(e.after) + len(e.answer)
        start = width - length  # left padding
        first = start + len(e.before)
        assert batch.audio_positions[i].nonzero().flatten().tolist() == list(range(first, first + n))
        torch.testing.assert_close(embeds[i, first:first + n], tokens[i, :n])
        text = ~batch.audio_positions[i]
        torch.testing.assert_close(embeds[i, text], token_embeddings[i, text])
        assert batch.input_ids[i, start:first].tolist() == e.before
        assert batch.attention_mask[i].tolist() == [0] * start + [1] * length
        assert batch.position_ids[i, start:].tolist() == list(range(length))
    tokenizer = model.tokenizer
    before = tokenizer.decode(examples[0].before)
    assert before.endswith("<|im_start|>user\n") and "<audio>" not in before
    assert tokenizer.decode(examples[0].after).startswith("\nWhat key")


def test_labels_cover_the_answer_and_end_token_only(llm_folder):
    model = build(llm_folder)
    batch = model.batch(RECORDS, padding_side="right")
    tokenizer = model.tokenizer
    for i, r in enumerate(RECORDS):
        labelled = batch.labels[i][batch.labels[i] != IGNORE_INDEX].tolist()
        assert tokenizer.decode(labelled) == r["messages"][1]["content"] + "<|im_end|>"
        assert labelled[-1] == tokenizer.eos_token_id
        positions = (batch.labels[i] != IGNORE_INDEX).nonzero().flatten()
        assert positions.tolist() == list(range(int(positions[0]), int(positions[-1]) + 1))  # one span
        assert int(positions[-1]) == int(batch.attention_mask[i].sum()) - 1  # ends the sequence


def test_batched_forward_equals_per_example(llm_folder):
    model = build(llm_folder, kind="strided", stride=2).eval()
    with torch.no_grad():
        for padding_side in ("left", "right"):
            batch = model.batch(RECORDS, padding_side=padding_side)
            logits = model.logits(batch)
            loss = model(batch)
            losses, counts = [], []
            for i, r in enumerate(RECORDS):
                alone = model.batch([r])
                alone_logits = model.logits(alone)[0]
                real = batch.attention_mask[i].bool()
                torch.testing.assert_close(logits[i, real], alone_logits, rtol=1e-4, atol=1e-5)
                losses.append(float(model(alone)))
                counts.append(int((alone.labels != IGNORE_INDEX).sum()))
            expected = sum(l * c for l, c in zip(losses, counts)) / sum(counts)
            assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_loss_on_answer_positions_only_equals_the_full_logits_loss(llm_folder):
    model = build(llm_folder)
    assert model.slices_logits  # Llama's forward takes logits_to_keep
    batch = model.batch(RECORDS, padding_side="right")
    torch.manual_seed(0)
    model.train()
    sliced = model(batch)
    sliced.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    full_logits = model.logits(batch)[:, :-1].float()  # every position through the LM head
    full = torch.nn.functional.cross_entropy(full_logits.reshape(-1, full_logits.shape[-1]),
                                             batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    model.slices_logits = False
    fallback = model(batch)
    model.slices_logits = True
    full.backward()
    torch.testing.assert_close(sliced, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fallback, full, rtol=1e-5, atol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, dict(model.named_parameters())[name].grad, rtol=1e-4, atol=1e-6)


def test_lora_training_overfits_and_touches_only_lora_and_projector(llm_folder):
    model = build(llm_folder)
    base_before = {n: p.detach().clone() for n, p in model.llm.named_parameters() if "lora_" not in n}
    lora_before = {n: p.detach().clone() for n, p in model.llm.named_parameters() if "lora_" in n}
    projector_before = {n: p.detach().clone() for n, p in model.projector.named_parameters()}
    trainable = model.trainable_parameters()
    assert trainable and all(("lora_" in n or n.startswith("projector.")) for n, p in model.named_parameters()
                             if p.requires_grad)
    first, last = train(model, steps=40)
    assert last < 0.2 * first, (first, last)
    for n, p in model.llm.named_parameters():
        if "lora_" in n:
            assert "lora_B" not in n or not torch.equal(p, lora_before[n])
        else:
            assert torch.equal(p, base_before[n]), n
    assert all(not torch.equal(p, projector_before[n]) for n, p in model.projector.named_parameters())
    # Generation: the answers it was fitted to, in one left-padded batch and one by one.
    prompts = model.batch(RECORDS, with_answer=False)
    texts = model.generate(prompts, max_new_tokens=20)
    assert texts == [r["messages"][1]["content"] for r in RECORDS]
    assert [model.generate(model.batch([r], with_answer=False), max_new_tokens=20)[0] for r in RECORDS] == texts
    sampled = model.generate(prompts, max_new_tokens=5, do_sample=True)
    assert len(sampled) == 3 and all(isinstance(t, str) for t in sampled)
    # Reference policy: adapter off = the base LLM (with the trained projector).
    with torch.no_grad():
        with model.reference_policy():
            reference = model.logits(prompts)
        trained = model.logits(prompts)
        fresh, _ = load_llm(llm_folder)
        base = fresh(inputs_embeds=model.embed(prompts), attention_mask=prompts.attention_mask,
                     position_ids=prompts.position_ids).logits
    torch.testing.assert_close(reference, base)
    assert not torch.allclose(reference, trained)


def test_projector_only_stage_freezes_the_llm(llm_folder):
    model = build(llm_folder, lora=False, kind="linear")
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {"projector.net.weight", "projector.net.bias"}
    loss = model(model.batch(RECORDS))
    loss.backward()
    assert model.projector.net.weight.grad is not None
    with model.reference_policy():  # no adapter: the model itself
        pass


def test_checkpoint_round_trip(llm_folder, tmp_path):
    model = build(llm_folder, kind="strided", stride=3)
    train(model, steps=5)  # LoRA B away from zero, so the adapter matters
    model.projector.set_standardization(torch.arange(14.0), torch.full((14,), 2.0))
    folder = tmp_path / "ckpt"
    save_checkpoint(model, folder, extra={"step": 40})
    save_checkpoint(model, folder, extra={"step": 40})  # overwriting an existing checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folders left
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"config.json", "projector.safetensors", "adapter/adapter_config.json",
            "adapter/adapter_model.safetensors"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    loaded = load_checkpoint(folder)
    assert loaded.encoder == ENCODER and loaded.system_prompt == model.system_prompt
    assert loaded.llm_spec == str(llm_folder.resolve())  # a local LLM is recorded by absolute path
    assert not any(p.requires_grad for p in loaded.parameters())
    model.eval()
    with torch.no_grad():
        prompts = model.batch(RECORDS, with_answer=False)
        torch.testing.assert_close(loaded.logits(loaded.batch(RECORDS, with_answer=False)), model.logits(prompts))
    assert loaded.generate(loaded.batch(RECORDS, with_answer=False), max_new_tokens=20) == \
        model.generate(prompts, max_new_tokens=20)
    resumed = load_checkpoint(folder, trainable=True)
    assert {n for n, p in resumed.named_parameters() if p.requires_grad} == \
        {n for n, p in model.named_parameters() if p.requires_grad}


def test_load_refuses_pickled_adapters(llm_folder, tmp_path):
    model = build(llm_folder)
    folder = save_checkpoint(model, tmp_path / "ckpt")
    weights = folder / "adapter" / "adapter_model.safetensors"
    weights.rename(folder / "adapter" / "adapter_model.bin")
    with pytest.raises(CheckpointError, match="adapter_model.safetensors is missing .*adapter_model.bin.*not loaded"):
        load_checkpoint(folder)
    (folder / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match="not a MusicLLM checkpoint"):
        load_checkpoint(folder)


def test_load_refuses_non_finite_weights_before_loading_the_llm(llm_folder, tmp_path):
    model = build(llm_folder)
    folder = save_checkpoint(model, tmp_path / "ckpt")
    adapter = folder / "adapter" / "adapter_model.safetensors"
    tensors = load_file(adapter)
    first = sorted(tensors)[0]
    tensors[first][0, 0] = float("inf")
    save_file(tensors, adapter)
    llm = tmp_path / "llm-config"  # the LLM is read last: a checkpoint pointing at no LLM still names the bad file
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "llm": str(llm)}))
    with pytest.raises(CheckpointError, match=f"{adapter}.*non-finite.*{first}"):
        load_checkpoint(folder)


@pytest.mark.slow
def test_smollm2_gguf_is_converted_once_and_cached(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    monkeypatch.setenv("MLLM_CACHE", str(tmp_path))
    start = time.perf_counter()
    model, tokenizer = load_llm("smollm2")
    first = time.perf_counter() - start
    cached = list((tmp_path / "llm").iterdir())
    assert len(cached) == 1 and (cached[0] / "model.safetensors").is_file()
    start = time.perf_counter()
    again, tokenizer = load_llm("smollm2")
    second = time.perf_counter() - start
    assert second < min(10.0, first), (first, second)
    torch.testing.assert_close(dict(again.named_parameters())["model.norm.weight"],
                               dict(model.named_parameters())["model.norm.weight"])
    music = MusicLLM.build("smollm2", encoder=ENCODER, lora=LoraSettings())
    example = music.example(RECORDS[0])
    assert "SmolLM" not in tokenizer.decode(example.before)  # no default system prompt
    assert tokenizer.decode(example.answer) == "The key is A minor.<|im_end|>"
    plain = [{"role": "system", "content": "Answer in one sentence."},
             {"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(plain, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = again.generate(**ids, max_new_tokens=24, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    loss = music(music.batch(RECORDS[:2]))
    assert torch.isfinite(loss)


def test_a_text_only_record_is_the_llm_alone_and_batches_with_audio_records(llm_folder):
    """grpo trains on records without audio: no placeholder, no embedding, no audio tokens."""
    model = build(llm_folder)
    text = {"id": "t", "messages": [{"role": "user", "content": "Name a key."},
                                    {"role": "assistant", "content": "The key is A minor."}]}
    with pytest.raises(KeyError, match="audio_embedding"):
        model.example(text)  # sft still needs the embedding
    example = model.example(text, text_only=True)
    assert example.after == [] and example.audio.shape[0] == 0
    with pytest.raises(ValueError, match="placeholder"):
        model.example({"id": "x", "messages": record(0, 3)["messages"]}, text_only=True)  # <audio> but no embedding
    batch = model.collate([example], "right")
    ids = torch.tensor([example.before + example.answer])
    with torch.no_grad():
        assert torch.allclose(model.logits(batch), model.llm(input_ids=ids).logits, atol=1e-5)  # the LLM alone
        mixed = model.collate([model.example(record(0, 3)), example], "right")
        alone = model.collate([model.example(record(0, 3))], "right")
        # the audio record is scored as alone; the text one as the LLM alone (right padding keeps positions)
        assert torch.allclose(model.logits(mixed)[0, :alone.input_ids.shape[1]], model.logits(alone)[0], atol=1e-5)
        assert torch.allclose(model.logits(mixed)[1, :ids.shape[1]], model.llm(input_ids=ids).logits[0], atol=1e-5)
