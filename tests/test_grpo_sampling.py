"""Seeded sampling (core/train/sampling.py): a sample of softmax(logits / T), the same draws for a
completion whatever batch it is generated in, and the top-p nucleus respected."""

from __future__ import annotations

import torch

from mllm.core.train.sampling import SeededSampler, row_seed


def test_draws_follow_softmax_of_logits_over_temperature():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]]))
    counts = torch.zeros(3)
    for seed in range(4000):
        counts[SeededSampler([seed], temperature=2.0)(None, logits).argmax()] += 1
    expected = torch.softmax(logits[0] / 2.0, -1)
    assert torch.allclose(counts / counts.sum(), expected, atol=0.03)


def test_a_row_draws_the_same_alone_or_in_a_batch():
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    seeds = [row_seed(1, 2, 0, i) for i in range(3)]
    together = SeededSampler(seeds)(None, logits).argmax(-1)
    alone = torch.stack([SeededSampler([seed])(None, logits[i:i + 1]).argmax(-1)[0] for i, seed in enumerate(seeds)])
    assert torch.equal(together, alone)
    reordered = SeededSampler(seeds[::-1])(None, logits.flip(0)).argmax(-1).flip(0)
    assert torch.equal(together, reordered)
    assert row_seed(1, 2, 0, 0) != row_seed(1, 2, 0, 1) != row_seed(1, 3, 0, 1)


def test_top_p_keeps_the_nucleus_only():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    drawn = {int(SeededSampler([seed], top_p=0.7)(None, logits).argmax()) for seed in range(500)}
    assert drawn == {0, 1}  # 0.5 + 0.3 reach 0.7; the tail is never drawn
    assert {int(SeededSampler([seed], top_p=0.4)(None, logits).argmax()) for seed in range(100)} == {0}
