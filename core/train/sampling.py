"""Sampling whose draws do not depend on the batch: each completion has its own random stream.

    processor = SeededSampler(row_seeds, temperature=1.0, top_p=1.0)
    model.generate_ids(batch, max_new_tokens, logits_processor=processor)   # greedy on perturbed logits

The Gumbel-max trick: argmax(logits / T + g) with g = -log(-log(U)), U uniform, is a sample of
softmax(logits / T) (restricted to the top-p nucleus when top_p < 1, the rest set to -inf first).
Each row draws its U from its own torch.Generator seeded with `row_seeds[i]`, so completion i is
the same whether it is generated alone, in a batch of 16 or on another rank: GRPO under torchrun
(N processes) samples exactly what one process with N times the prompts samples, and a resumed run
what the original would have. (transformers' own sampling draws from the global generator, whose
draws depend on the batch's shape and order.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["SeededSampler", "row_seed"]


def row_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, step, prompt index, completion index)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SeededSampler:
    """A transformers logits processor (scores (B, V) -> scores) for greedy decoding that samples."""

    def __init__(self, row_seeds: Sequence[int], temperature: float = 1.0, top_p: float = 1.0):
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in row_seeds]
        self.temperature, self.top_p = float(temperature), float(top_p)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise ValueError(f"{scores.shape[0]} rows to sample, {len(self.generators)} seeds")
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:  # the nucleus: the smallest set of tokens whose probability reaches top_p
            ordered, order = torch.sort(logits, dim=-1, descending=True)
            cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
            outside = cumulative - ordered.softmax(dim=-1) >= self.top_p  # the first token is always kept
            logits = logits.masked_fill(outside.scatter(-1, order, outside), float("-inf"))
        uniform = torch.stack([torch.rand(scores.shape[1], generator=g) for g in self.generators]).to(scores.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
        return logits + gumbel
