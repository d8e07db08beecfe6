"""The GRPO objective (core/train/grpo_objective.py) on hand-made tensors: advantages, both clip
sides, the k3 KL, the normaliser of each loss type, masking, zero-spread groups, the filter."""

from __future__ import annotations

import math

import pytest
import torch

from mllm.core.train.grpo_objective import (ObjectiveSettings, group_advantages, group_spread, k3_kl, keep_groups,
                                            overlong_penalty, policy_loss)


def test_advantages_within_groups_scaled_three_ways():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    std = math.sqrt(4 * 0.25 / 3)  # unbiased std of 1, 0, 0, 1
    group = group_advantages(rewards, 4, "group")
    assert group[:4].tolist() == pytest.approx([0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 1 + [-0.5 / (std + 1e-4),
                                                0.5 / (std + 1e-4)])
    assert group[4:].tolist() == [0.0] * 4  # a zero-spread group teaches nothing
    assert group_advantages(rewards, 4, "none").tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])
    batch_std = rewards.std().item()
    assert group_advantages(rewards, 4, "batch")[0].item() == pytest.approx(0.5 / (batch_std + 1e-4))
    with pytest.raises(ValueError, match="scale-rewards"):
        group_advantages(rewards, 4, "mean")
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(rewards, 3)


def test_the_filter_works_on_the_spread_with_a_tolerance():
    rewards = torch.tensor([0.5, 0.5, 0.5, 0.5000001, 0.0, 0.3, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert group_spread(rewards, 4).tolist() == pytest.approx([1e-7, 0.3, 0.0], abs=1e-7)
    assert keep_groups(rewards, 4, min_spread=1e-3).tolist() == [False, True, False]
    assert keep_groups(rewards, 4, min_spread=0.5).tolist() == [False, False, False]


def one_token(ratio: float, advantage: float, **settings):
    """The loss and gradient of a single token whose ratio to the old policy is `ratio`."""
    old = torch.tensor([[math.log(0.5)]])
    logp = (old + math.log(ratio)).clone().requires_grad_(True)
    out = policy_loss(logp, old, None, torch.tensor([advantage]), torch.ones(1, 1),
                      ObjectiveSettings(loss_type="grpo", **settings))
    out.loss.backward()
    return out.loss.item(), logp.grad.item(), out.stats


def test_both_clip_sides_and_asymmetric_clipping():
    # A > 0: the ratio is capped at 1 + epsilon_high, and past it there is no gradient
    loss, grad, stats = one_token(1.5, 1.0, epsilon=0.2)
    assert loss == pytest.approx(-1.2) and grad == 0.0 and stats["clip_high"] == 1.0 and stats["clip_low"] == 0.0
    loss, grad, stats = one_token(1.25, 1.0, epsilon=0.2, epsilon_high=0.28)  # clip-higher lets it through
    assert loss == pytest.approx(-1.25) and grad == pytest.approx(-1.25) and stats["clip_region"] == 0.0
    # A < 0: the ratio is floored at 1 - epsilon
    loss, grad, stats = one_token(0.5, -1.0, epsilon=0.2)
    assert loss == pytest.approx(0.8) and grad == 0.0 and stats["clip_low"] == 1.0
    # the pessimistic side is never clipped: a large ratio with A < 0 keeps its full gradient
    loss, grad, stats = one_token(1.5, -1.0, epsilon=0.2)
    assert loss == pytest.approx(1.5) and grad == pytest.approx(1.5) and stats["clip_region"] == 0.0


def test_first_iteration_is_the_policy_gradient():
    logp = torch.log(torch.tensor([[0.2, 0.5, 0.9], [0.3, 0.3, 0.3]])).requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    advantages = torch.tensor([2.0, -1.0])
    policy_loss(logp, None, None, advantages, mask, ObjectiveSettings(loss_type="grpo")).loss.backward()
    # d/dlogp of -mean_i (A_i * sum_t m_t logp_t / |m_i|): -A_i m_t / (|m_i| n)
    expected = -(advantages[:, None] * mask / mask.sum(1, keepdim=True)) / 2
    assert torch.allclose(logp.grad, expected)


def test_k3_is_zero_at_the_reference_and_its_expectation_is_the_kl():
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.2, 0.5, 0.3])
    assert k3_kl(p.log(), p.log()).abs().max() == 0.0
    assert (k3_kl(p.log(), q.log()) >= 0).all()
    kl = (p * (p.log() - q.log())).sum()
    assert (p * k3_kl(p.log(), q.log())).sum().item() == pytest.approx(kl.item())  # E_p[k3] = KL(p || q)


def test_kl_term_enters_with_beta_and_is_zero_at_step_zero():
    logp = torch.log(torch.tensor([[0.5, 0.4]])).requires_grad_(True)
    settings = ObjectiveSettings(loss_type="dapo", beta=0.1)
    same = policy_loss(logp, None, logp.detach(), torch.tensor([0.0]), torch.ones(1, 2), settings)
    assert same.stats["kl"] == 0.0 and same.loss.item() == 0.0
    ref = torch.log(torch.tensor([[0.25, 0.4]]))
    out = policy_loss(logp, None, ref, torch.tensor([0.0]), torch.ones(1, 2), settings)
    expected = 0.1 * k3_kl(logp.detach(), ref).mean()
    assert out.loss.item() == pytest.approx(expected.item()) and out.stats["kl"] > 0
    with pytest.raises(ValueError, match="reference"):
        policy_loss(logp, None, None, torch.tensor([0.0]), torch.ones(1, 2), settings)


def test_each_loss_type_has_its_normaliser_and_masked_tokens_count_for_nothing():
    # token losses -A * 1 (ratio 1): completion 0 has 1 loss token, completion 1 has 3
    logp = torch.zeros(2, 4)
    mask = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    advantages = torch.tensor([1.0, -0.5])
    values = {}
    for loss_type in ("grpo", "dr_grpo", "dapo"):
        settings = ObjectiveSettings(loss_type=loss_type, max_completion_length=4)
        values[loss_type] = policy_loss(logp, None, None, advantages, mask, settings).loss.item()
        # whatever sits under the mask (padding, a truncated completion) changes nothing
        noisy = logp + (1 - mask) * 7.0
        assert policy_loss(noisy, None, None, advantages, mask, settings).loss.item() == pytest.approx(values[loss_type])
    assert values["grpo"] == pytest.approx(((-1.0) + (0.5)) / 2)  # mean of per-completion means
    assert values["dapo"] == pytest.approx((-1.0 + 3 * 0.5) / 4)  # mean over the batch's 4 tokens
    assert values["dr_grpo"] == pytest.approx((-1.0 + 3 * 0.5) / (2 * 4))  # n * max_completion_length
    with pytest.raises(ValueError, match="max_completion_length"):
        ObjectiveSettings(loss_type="dr_grpo")
    with pytest.raises(ValueError, match="loss-type"):
        ObjectiveSettings(loss_type="ppo")


def test_dapo_micro_batches_dividing_by_the_steps_tokens_add_up_to_one_batch():
    torch.manual_seed(0)
    logp = torch.randn(4, 5).requires_grad_(True)
    old = logp.detach() + 0.1 * torch.randn(4, 5)
    mask = (torch.rand(4, 5) > 0.3).float()
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    settings = ObjectiveSettings(loss_type="dapo", epsilon=0.2)
    whole = policy_loss(logp, old, None, advantages, mask, settings).loss
    (grad_whole,) = torch.autograd.grad(whole, logp)
    total = float(mask.sum())
    parts = sum(policy_loss(logp[s], old[s], None, advantages[s], mask[s], settings, total_tokens=total).loss
                for s in (slice(0, 1), slice(1, 4)))
    (grad_parts,) = torch.autograd.grad(parts, logp)
    assert parts.item() == pytest.approx(whole.item()) and torch.allclose(grad_parts, grad_whole)


def test_overlong_penalty_is_zero_then_linear_to_minus_factor():
    lengths = torch.tensor([10, 12, 14, 16, 20])
    assert overlong_penalty(lengths, 16, 4).tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])
    assert overlong_penalty(lengths, 16, 4, factor=0.5).tolist() == pytest.approx([0.0, 0.0, -0.25, -0.5, -0.5])
    assert overlong_penalty(lengths, 16, 0).tolist() == [0.0] * 5
