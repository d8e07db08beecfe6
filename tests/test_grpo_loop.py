"""The GRPO loop (core/train/grpo.py) on a tiny random Llama: the reference is the SFT policy and
the KL at step 0 is exactly 0, the mean reward rises on a reward the tiny model can learn, dynamic
sampling refills and gives up as documented, truncated completions carry no loss."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_llm import build_tiny_llm

from mllm.core.model import Example, LoraSettings, MusicLLM, load_checkpoint, read_checkpoint_config, save_checkpoint
from mllm.core.model.checkpoint import CheckpointError
from mllm.core.train import rewards as rw
from mllm.core.train.grpo import GRPOConfig, group_token_logps, policy_on_top, setup, token_logps, train


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory) -> Path:
    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


def records(n: int = 8) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"id": f"r{i}", "split": "train", "task": "key", "answer": {"key": "A minor"}, "encoder": "dsp",
             "frame_rate": 1.0, "audio_embedding": rng.normal(size=(3, 4)).astype(np.float32).tolist(),
             "messages": [{"role": "user", "content": "<audio>\nWhat key is this music in?"},
                          {"role": "assistant", "content": "A minor"}]} for i in range(n)]


def sft_model(llm_folder, trained: bool = True) -> MusicLLM:
    """A stand-in for an `mllm sft` checkpoint: the tiny LLM with a LoRA adapter that is not zero."""
    torch.manual_seed(0)
    model = MusicLLM.build(str(llm_folder), encoder={"name": "dsp", "dim": 4, "frame_rate": 1.0},
                           lora=LoraSettings(4, 8, 0.0))
    if trained:
        with torch.no_grad():
            for name, parameter in model.llm.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.3)
    return model


def vowels(judged, settings) -> float:
    """A reward the random model can learn: the share of vowels in its answer."""
    return sum(c in "aeiou" for c in judged.text) / max(1, len(judged.text))


@pytest.fixture
def vowel_reward(monkeypatch):
    monkeypatch.setitem(rw.COMPONENTS, "vowels", vowels)  # adding a component: one function
    return rw.Reward.parse("vowels")


def test_the_reference_is_the_sft_policy_and_step_zero_has_no_kl(llm_folder, vowel_reward, tmp_path):
    sft = sft_model(llm_folder)
    batch = sft.batch(records(2))  # prompt + the answer "A minor"
    with torch.no_grad():
        sft_logps, mask, _ = token_logps(sft, batch)
        policy = policy_on_top(sft, LoraSettings(4, 8, 0.0))
        policy_logps, _, _ = token_logps(policy, batch)
        with policy.reference_policy():
            reference_logps, _, _ = token_logps(policy, batch)
    assert torch.allclose(reference_logps, sft_logps, atol=1e-5)  # adapter off = the SFT policy, merged
    assert torch.equal(policy_logps, reference_logps)  # a fresh adapter adds exactly 0
    assert all(not p.requires_grad for p in policy.projector.parameters())
    run = setup(GRPOConfig(output=str(tmp_path / "grpo"), reward="vowels", steps=1, beta=0.1, max_new_tokens=6), records(), model=sft_model(llm_folder),
                reward=vowel_reward)
    (first,) = list(train(run))
    assert first["kl"] == 0.0


@pytest.mark.parametrize("slices_logits", [True, False])
def test_group_log_probs_share_the_prompt_pass_and_equal_the_full_sequences(llm_folder, slices_logits):
    """group_token_logps runs each prompt once and its G completions on its KV cache: the same
    log-probs, entropies and adapter gradients as token_logps on prompt + completion, for prompts
    of different lengths (audio of 3-5 frames, longer questions) and completions of 1-6 tokens;
    also for an LLM whose forward cannot slice the logits (every position's are computed)."""
    model = sft_model(llm_folder)
    model.slices_logits = slices_logits
    model.train()
    rng = np.random.default_rng(1)
    prompts = []
    for i, record in enumerate(records(3)):
        record["audio_embedding"] = rng.normal(size=(3 + i, 4)).astype(np.float32).tolist()
        record["messages"] = [{"role": "user", "content": "<audio>\nWhat key is this music in?" + " Listen." * i}]
        prompts.append(model.example(record, with_answer=False))
    G = 3
    completions = [rng.integers(5, 100, size=rng.integers(1, 7)).tolist() for _ in range(len(prompts) * G)]
    completions[4] = [int(completions[4][0])]  # a one-token completion: only the prompt's last logits
    full = model.collate([Example(p.before, p.after, c, p.audio)
                          for p, c in zip([p for p in prompts for _ in range(G)], completions)], "right")
    expected, mask, entropy = token_logps(model, full, temperature=1.3, with_entropy=True)
    got, got_mask, got_entropy = group_token_logps(model, prompts, completions, G, temperature=1.3, with_entropy=True)
    assert torch.equal(got_mask, mask) and mask.sum() == sum(len(c) for c in completions)
    assert torch.allclose(got, expected, atol=1e-5) and torch.allclose(got_entropy, entropy, atol=1e-5)
    parameters = model.trainable_parameters()
    grads = torch.autograd.grad((expected * mask).sum(), parameters)
    got_grads = torch.autograd.grad((got * got_mask).sum(), parameters)
    for grad, got_grad in zip(grads, got_grads):
        assert float((got_grad - grad).abs().max()) <= 1e-4 * float(grad.abs().max())  # float rounding
    with pytest.raises(ValueError, match="at least one token"):
        group_token_logps(model, prompts[:1], [[5], []], 2)


def test_generation_prefills_each_prompt_once_and_samples_what_the_repeated_prompts_sample(llm_folder, monkeypatch):
    """generate_completions runs a prompt's positions once for its group (the cache is repeated G
    times), then the G rows decode: the same completions as G copies of the prompt."""
    from mllm.core.train import grpo

    if not grpo.SHARED_PREFILL:
        pytest.skip("transformers < 5 cannot continue generate from a prompt cache with inputs_embeds")
    model = sft_model(llm_folder)
    prompts = [model.example(r, with_answer=False) for r in records(3)]
    config = GRPOConfig(group_size=4, max_new_tokens=6)
    rows = []
    layer = model.llm.get_base_model().model.layers[0]
    hook = layer.register_forward_hook(lambda module, args, output: rows.append(tuple(args[0].shape[:2])))
    try:
        shared = grpo.generate_completions(model, prompts, config, [7, 8, 9])
        first_shared, rows[:] = rows[0], []
        monkeypatch.setattr(grpo, "SHARED_PREFILL", False)
        repeated = grpo.generate_completions(model, prompts, config, [7, 8, 9])
        first_repeated = rows[0]
    finally:
        hook.remove()
    assert shared == repeated and len(shared) == 12
    assert first_shared[0] == 3 and first_repeated[0] == 12  # one prefill row per prompt, not per completion
    assert first_shared[1] == first_repeated[1] - 1  # the last prompt position runs with the new tokens


def test_token_logps_are_the_models_log_probabilities_of_the_answer(llm_folder):
    model = sft_model(llm_folder)
    batch = model.batch(records(2), padding_side="right")
    with torch.no_grad():
        logps, mask, _ = token_logps(model, batch, temperature=2.0)
        logits = model.logits(batch)
    for row in range(2):
        positions = torch.nonzero(batch.labels[row] != -100).flatten()
        expected = torch.log_softmax(logits[row, positions - 1].float() / 2.0, -1).gather(
            1, batch.labels[row, positions].unsqueeze(1)).squeeze(1)
        assert int(mask[row].sum()) == positions.numel()
        assert torch.allclose(logps[row, :positions.numel()], expected, atol=1e-5)


def test_mean_reward_rises_on_a_learnable_reward(llm_folder, vowel_reward, tmp_path):
    config = GRPOConfig(output=str(tmp_path / "grpo"), reward="vowels", steps=30, lr=5e-2, group_size=4, batch_size=4, max_new_tokens=12)
    metrics = list(train(setup(config, records(), model=sft_model(llm_folder, trained=False), reward=vowel_reward)))
    first = np.mean([m["reward_mean"] for m in metrics[:5]])
    last = np.mean([m["reward_mean"] for m in metrics[-5:]])
    assert last > first + 0.1, (first, last)
    for key in ("reward_std", "reward_vowels", "parse_rate", "groups_filtered", "zero_spread", "clip_high",
                "entropy", "completion_length", "truncated", "tokens_per_s", "completions_per_s"):
        assert key in metrics[0]


def test_dynamic_sampling_refills_then_gives_up(llm_folder, vowel_reward, tmp_path):
    # a spread no group reaches: every round's groups are dropped, 1 + max_resample rounds, no update
    config = GRPOConfig(output=str(tmp_path / "grpo"), reward="vowels", steps=2, batch_size=2, max_new_tokens=6, min_spread=10.0, max_resample=2)
    run = setup(config, records(), model=sft_model(llm_folder), reward=vowel_reward)
    before = [p.detach().clone() for p in run.model.trainable_parameters()]
    metrics = list(train(run))
    assert [m["groups_sampled"] for m in metrics] == [6, 6] and all(m["groups_filtered"] == 1.0 for m in metrics)
    assert all("skipped" in m for m in metrics)
    assert all(torch.equal(a, b) for a, b in zip(before, run.model.trainable_parameters()))
    # a spread most groups reach: the batch fills in the first round
    config = GRPOConfig(output=str(tmp_path / "grpo"), reward="vowels", steps=1, batch_size=2, max_new_tokens=8, min_spread=1e-3)
    (m,) = list(train(setup(config, records(), model=sft_model(llm_folder), reward=vowel_reward)))
    assert m["groups_sampled"] >= 2 and "skipped" not in m


def test_truncated_completions_carry_no_loss_when_masked(llm_folder, vowel_reward, tmp_path):
    config = GRPOConfig(output=str(tmp_path / "grpo"), reward="vowels", steps=1, max_new_tokens=2, mask_truncated=True, temperature=2.0)
    run = setup(config, records(), model=sft_model(llm_folder), reward=vowel_reward)
    (m,) = list(train(run))
    assert m["truncated"] == 1.0  # 2 tokens never reach the end of the turn
    assert m["loss"] == 0.0 and m["grad_norm"] == 0.0


def test_the_saved_policy_loads_as_a_checkpoint_and_answers_the_same(llm_folder, vowel_reward, tmp_path):
    config = GRPOConfig(output=str(tmp_path / "grpo"), reward="vowels", steps=3, lr=5e-2, max_new_tokens=6)
    run = setup(config, records(), model=sft_model(llm_folder), reward=vowel_reward)
    list(train(run))
    assert read_checkpoint_config(tmp_path / "grpo")["version"] == 2  # the SFT adapter under merged/
    loaded = load_checkpoint(tmp_path / "grpo")
    batch = run.model.batch(records(2))
    with torch.no_grad():
        run.model.eval()
        expected, _, _ = token_logps(run.model, batch)
        got, _, _ = token_logps(loaded, batch)
        with loaded.reference_policy():
            reference, _, _ = token_logps(loaded, batch)
        sft_logps, _, _ = token_logps(sft_model(llm_folder), batch)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(reference, sft_logps, atol=1e-5)  # adapter off: still the SFT policy
    assert not torch.allclose(got, reference, atol=1e-3)  # and the GRPO adapter did move it


def test_resume_in_a_fresh_process_replays_the_uninterrupted_run(llm_folder, vowel_reward, tmp_path):
    config = GRPOConfig(output=str(tmp_path / "a"), reward="vowels", steps=4, save_every=2, lr=5e-2, max_new_tokens=6,
                        beta=0.05, iterations=2)
    run = setup(config, records(), model=sft_model(llm_folder), reward=vowel_reward)
    whole = []
    for m in train(run):
        whole.append(m)
        if m["step"] == 2:
            shutil.copytree(tmp_path / "a", tmp_path / "at2")
    script = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "from mllm.core.train import rewards as rw\n"
              "from mllm.core.train.grpo import GRPOConfig, setup, train\n"
              "from test_grpo_loop import records, vowels\n"
              "rw.COMPONENTS['vowels'] = vowels\n"
              f"run = setup(GRPOConfig(output={str(tmp_path / 'b')!r}), records(), reward=rw.Reward.parse('vowels'), "
              f"resume={str(tmp_path / 'at2')!r}, given={{'output'}})\n"
              "print(json.dumps([[m['step'], m['reward_mean'], m['loss'], m['kl']] for m in train(run)]))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    resumed = json.loads(out.stdout.strip().splitlines()[-1])
    assert resumed == [[m["step"], m["reward_mean"], m["loss"], m["kl"]] for m in whole[2:]]
    with pytest.raises(ValueError, match="--lr is"):
        setup(GRPOConfig(lr=1.0), records(), reward=vowel_reward, resume=tmp_path / "at2", given={"lr"})
    with pytest.raises(ValueError, match="other records"):
        setup(GRPOConfig(), records(5), reward=vowel_reward, resume=tmp_path / "at2")
    with pytest.raises(CheckpointError, match="grpo trainer state"):
        save_checkpoint(sft_model(llm_folder), tmp_path / "sft")
        setup(GRPOConfig(), records(), reward=vowel_reward, resume=tmp_path / "sft")


def test_iterations_reuse_the_samples_with_old_log_probabilities(llm_folder, vowel_reward, tmp_path):
    config = GRPOConfig(output=str(tmp_path / "grpo"), reward="vowels", steps=2, lr=5e-2, iterations=3, max_new_tokens=8,
                        loss_type="grpo", bf16=True, beta=0.1)  # bf16 autocast runs on any CPU (slowly without AMX)
    run = setup(config, records(), model=sft_model(llm_folder), reward=vowel_reward)
    frozen = [p for name, p in run.model.llm.named_parameters() if name.endswith("base_layer.weight")]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)  # stored in bf16 under --bf16, as sft
    metrics = list(train(run))
    assert all(np.isfinite(m["loss"]) and np.isfinite(m["kl"]) for m in metrics)


@pytest.mark.parametrize("field, value, message", [
    ("group_size", 1, "group-size"), ("loss_type", "ppo", "loss-type"), ("scale_rewards", "mean", "scale-rewards"),
    ("epsilon", 1.5, "epsilon"), ("beta", -1.0, "beta"), ("reward", "style:1", "unknown component"),
    ("overlong_buffer", 64, "overlong-buffer"), ("top_p", 0.0, "top-p"),
])
def test_options_out_of_range_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**{field: value}).check()


def test_a_base_llm_aligns_on_text_only_records(llm_folder, vowel_reward, tmp_path):
    text_records = [{"id": f"t{i}", "split": "train", "task": "key", "answer": {"key": "A minor"},
                     "messages": [{"role": "user", "content": "Name a key."}, {"role": "assistant", "content": "A minor"}]}
                    for i in range(4)]
    config = GRPOConfig(output=str(tmp_path / "grpo"), llm=str(llm_folder), reward="vowels", steps=8, lr=5e-2,
                        max_new_tokens=8, beta=0.1)
    metrics = list(train(setup(config, text_records, reward=vowel_reward)))
    assert metrics[0]["kl"] == 0.0 and len(metrics) == 8
    assert all(np.isfinite(m["loss"]) for m in metrics)
    with pytest.raises(ValueError, match="records with audio need --checkpoint"):
        setup(config, records(), reward=vowel_reward)


def test_records_from_another_encoder_are_refused_by_name(llm_folder, vowel_reward, tmp_path):
    wrong = records(3)
    wrong[1] = {**wrong[1], "audio_embedding": np.zeros((3, 7), np.float32).tolist()}  # 7 dims, the model reads 4
    with pytest.raises(ValueError, match="'r1'"):
        setup(GRPOConfig(output=str(tmp_path / "g"), reward="vowels"), wrong, model=sft_model(llm_folder),
              reward=vowel_reward)
