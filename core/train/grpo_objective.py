"""The GRPO objective on tensors: advantages within groups, the clipped policy-ratio loss of each
loss type, the k3 KL to the reference policy, and the statistics logged every step.

    advantages = group_advantages(rewards, group_size, scale="group")          # (n,)
    out = policy_loss(logps, old_logps, ref_logps, advantages, mask, settings)  # out.loss (scalar), out.stats

Shapes: n completions = prompts x group_size, laid out group by group (completions
[g*G, (g+1)*G) answer prompt g); per-token tensors are (n, T) over the completion tokens, and
`mask` is 1 on the tokens that carry loss (not padding, not the prompt; a truncated completion's
row is all 0 under --mask-truncated).

Definitions (the meanings of TRL's GRPOConfig and verl's actor options of the same names):

    advantage   A_i = r_i - mean(r of i's group), divided by the std of i's group ("group",
                GRPO), of the whole batch ("batch"), or not at all ("none", Dr. GRPO); the std
                is the unbiased one plus 1e-4, as TRL's, so a zero-spread group has A = 0
    ratio       rho_t = exp(logp_t - old_logp_t)            (1 at the first iteration on a batch)
    clipped     c_t = min(rho_t A, clip(rho_t, 1 - epsilon, 1 + epsilon_high) A)
    KL (k3)     kl_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1   (Schulman's unbiased, >= 0
                estimator of KL(pi || ref); exactly 0 where the policy is the reference)
    token loss  l_t = -(c_t - beta kl_t)
    loss        grpo     mean over completions of  sum_t l_t m_t / sum_t m_t
                dr_grpo  sum_{i,t} l_t m_t / (n * max_completion_length)    (a constant normaliser)
                dapo     sum_{i,t} l_t m_t / sum_{i,t} m_t                  (token-level over the
                         batch; with gradient accumulation or ranks, `total_tokens` of the whole
                         optimizer step replaces the local token count)

Written by hand because no library offers it for a model that is not a text-only transformers
model: TRL's and verl's losses are methods of their trainers (issue 10).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LOSS_TYPES", "SCALE_REWARDS", "ObjectiveSettings", "LossOutput", "group_advantages", "group_spread",
           "keep_groups", "k3_kl", "policy_loss", "overlong_penalty"]

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
STD_EPS = 1e-4  # added to the std the advantages are divided by (TRL's constant)


@dataclass(frozen=True)
class ObjectiveSettings:
    loss_type: str = "dapo"
    epsilon: float = 0.2  # lower clip: the ratio is kept >= 1 - epsilon where A < 0
    epsilon_high: float | None = None  # upper clip (None: epsilon); DAPO's clip-higher uses 0.28
    beta: float = 0.0  # KL weight (0: no reference pass is needed)
    max_completion_length: int | None = None  # dr_grpo's normaliser

    def __post_init__(self):
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"--loss-type must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}")
        if self.loss_type == "dr_grpo" and not self.max_completion_length:
            raise ValueError("loss type dr_grpo needs max_completion_length (its constant normaliser)")

    @property
    def upper(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, to backpropagate
    stats: dict[str, float]  # kl, clip_low, clip_high, clip_region (fractions of loss tokens), ratio_mean


def _groups(values: torch.Tensor, group_size: int) -> torch.Tensor:
    if values.dim() != 1 or values.numel() % group_size:
        raise ValueError(f"rewards must be one value per completion, groups of {group_size}: got shape {tuple(values.shape)}")
    return values.view(-1, group_size)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """A_i = r_i - mean of i's group, scaled as `scale` says (module docstring)."""
    if scale not in SCALE_REWARDS:
        raise ValueError(f"--scale-rewards must be one of {', '.join(SCALE_REWARDS)}, got {scale!r}")
    grouped = _groups(rewards.float(), group_size)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(grouped[:, :1])
        advantages = advantages / (std + STD_EPS)
    elif scale == "batch":
        std = grouped.std() if grouped.numel() > 1 else grouped.new_zeros(())
        advantages = advantages / (std + STD_EPS)
    return advantages.reshape(-1)


def group_spread(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per group, max - min of its rewards (0 when every completion scored the same)."""
    grouped = _groups(rewards.float(), group_size)
    return grouped.max(dim=1).values - grouped.min(dim=1).values


def keep_groups(rewards: torch.Tensor, group_size: int, min_spread: float) -> torch.Tensor:
    """Dynamic sampling's filter: True for the groups whose reward spread exceeds `min_spread`.

    A tolerance on the spread, not float equality and not "all 0 or all 1": MIR rewards are
    graded (a fifth scores 0.5), so a group of 0.5, 0.5, 0.5000001 teaches nothing either."""
    return group_spread(rewards, group_size) > min_spread


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(d) - d - 1 with d = ref - logp."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def policy_loss(logps: torch.Tensor, old_logps: torch.Tensor | None, ref_logps: torch.Tensor | None,
                advantages: torch.Tensor, mask: torch.Tensor, settings: ObjectiveSettings,
                total_tokens: float | None = None) -> LossOutput:
    """The loss of one (micro-)batch of completions (module docstring).

    `old_logps` None: the samples' own policy (the first iteration; the ratio is 1 and its
    gradient is the policy gradient). `ref_logps` is needed when `settings.beta` > 0.
    `total_tokens` (dapo): the loss tokens of the whole optimizer step, so that micro-batches and
    ranks that each divide by it add up to one token-level mean.
    """
    if logps.shape != mask.shape or advantages.shape != logps.shape[:1]:
        raise ValueError(f"logps {tuple(logps.shape)}, mask {tuple(mask.shape)} and advantages "
                         f"{tuple(advantages.shape)} do not match")
    mask = mask.to(logps.dtype)
    old = logps.detach() if old_logps is None else old_logps
    ratio = torch.exp(logps - old)
    a = advantages.unsqueeze(1).to(logps.dtype)
    clipped_ratio = torch.clamp(ratio, 1 - settings.epsilon, 1 + settings.upper)
    objective = torch.min(ratio * a, clipped_ratio * a)
    per_token = -objective
    kl = None
    if settings.beta:
        if ref_logps is None:
            raise ValueError("beta > 0 needs the reference log-probabilities")
        kl = k3_kl(logps, ref_logps)
        per_token = per_token + settings.beta * kl

    if settings.loss_type == "grpo":
        loss = ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()
    elif settings.loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (logps.shape[0] * settings.max_completion_length)
    else:
        tokens = total_tokens if total_tokens is not None else float(mask.sum())
        loss = (per_token * mask).sum() / max(tokens, 1.0)

    with torch.no_grad():
        n_tokens = mask.sum().clamp(min=1)
        low = (ratio < 1 - settings.epsilon) & (a < 0)
        high = (ratio > 1 + settings.upper) & (a > 0)
        stats = {
            "clip_low": float((low * mask).sum() / n_tokens),
            "clip_high": float((high * mask).sum() / n_tokens),
            "clip_region": float(((low | high) * mask).sum() / n_tokens),
            "ratio_mean": float((ratio * mask).sum() / n_tokens),
            "loss_tokens": float(mask.sum()),
        }
        if kl is not None:
            stats["kl"] = float((kl * mask).sum() / n_tokens)
    return LossOutput(loss, stats)


def overlong_penalty(lengths: torch.Tensor, max_completion_length: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the reward: 0 up to max - buffer tokens, then
    falling linearly to -factor at max (and -factor beyond)."""
    if buffer <= 0:
        return torch.zeros_like(lengths, dtype=torch.float)
    start = max_completion_length - buffer
    over = (lengths.float() - start).clamp(min=0) / buffer
    return -factor * over.clamp(max=1.0)
