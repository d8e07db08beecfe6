"""Projectors: encoder frames [T, D] -> LLM input embeddings [T', H].

Three kinds, chosen by `ProjectorConfig.kind`:

- `linear`:  one linear map per frame (LLark).                     (B, T, D) -> (B, T, H)
- `mlp`:     Linear -> GELU -> Linear per frame (LLaVA-1.5).       (B, T, D) -> (B, T, H)
- `strided`: merge `stride` consecutive frames (concatenate, or average), then a linear or MLP
             `head`: fewer audio tokens for long clips.            (B, T, D) -> (B, ceil(T/k), H)

Every projector first standardises its input with fixed buffers `mean` and `std` (0 and 1 until
`set_standardization` is called with training-set statistics): DSP features are in physical units
(dBFS, kHz), which a linear layer at initialisation would turn into huge embeddings.

Masks: `forward(frames, mask)` takes `mask` (B, T) bool, True on real frames (clips of a batch are
padded at the end to the longest), and returns the projected tokens with their mask. Padded frames
are zeroed before merging, and a merged token is real when any of its frames is. The last group of
a clip whose length is not a multiple of `stride` is kept (zero-filled), so no audio is dropped:
`output_length(T) = ceil(T / stride)`. A clip projects to the same tokens alone or in a batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["ProjectorConfig", "Projector", "build_projector"]

KINDS = ("linear", "mlp", "strided")


@dataclass
class ProjectorConfig:
    """What a checkpoint's config.json stores under "projector"."""

    input_dim: int  # D: the encoder's embedding size (e.g. 39 for `dsp`, 768 for MERT-95M)
    output_dim: int  # H: the LLM's hidden size
    kind: str = "mlp"  # linear | mlp | strided
    hidden_dim: int | None = None  # MLP hidden size; None = output_dim
    stride: int = 4  # strided only: frames merged into one token
    merge: str = "concat"  # strided only: concat (k*D inputs) | mean (D inputs)
    head: str = "mlp"  # strided only: linear | mlp after merging

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"projector kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.merge not in ("concat", "mean"):
            raise ValueError(f"projector merge must be concat or mean, not {self.merge!r}")
        if self.head not in ("linear", "mlp"):
            raise ValueError(f"projector head must be linear or mlp, not {self.head!r}")
        if self.stride < 1:
            raise ValueError(f"projector stride must be >= 1, not {self.stride}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def frames_per_token(self) -> int:
        return self.stride if self.kind == "strided" else 1


def _mlp(input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, output_dim))


class Projector(nn.Module):
    """Standardise -> (merge k frames) -> linear or MLP. See the module docstring."""

    def __init__(self, config: ProjectorConfig):
        super().__init__()
        self.config = config
        d, h = config.input_dim, config.output_dim
        hidden = config.hidden_dim or h
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        head = config.kind if config.kind != "strided" else config.head
        merged = d * config.stride if (config.kind == "strided" and config.merge == "concat") else d
        self.net = nn.Linear(merged, h) if head == "linear" else _mlp(merged, hidden, h)

    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor, floor: float = 1e-6) -> None:
        """Fix the input statistics (per column, from the training set's frames)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).clamp_min(floor))

    def output_length(self, frames: int) -> int:
        """Audio tokens for a clip of `frames` frames."""
        return math.ceil(frames / self.config.frames_per_token)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # frames (B, T, D), mask (B, T) bool -> tokens (B, T', H), mask (B, T')
        b, t, d = frames.shape
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=frames.device)
        x = (frames.to(self.mean.dtype) - self.mean) / self.std
        x = x * mask.unsqueeze(-1)  # padded frames -> 0
        k = self.config.frames_per_token
        if k > 1:
            groups = math.ceil(t / k)
            pad = groups * k - t
            x = nn.functional.pad(x, (0, 0, 0, pad))  # (B, groups*k, D)
            mask = nn.functional.pad(mask, (0, pad))  # (B, groups*k)
            x = x.view(b, groups, k, d)  # (B, T', k, D)
            mask = mask.view(b, groups, k)
            if self.config.merge == "concat":
                x = x.reshape(b, groups, k * d)  # (B, T', k*D)
            else:
                count = mask.sum(-1, keepdim=True).clamp_min(1)  # (B, T', 1)
                x = x.sum(2) / count  # (B, T', D): mean over the real frames of each group
            mask = mask.any(-1)  # (B, T')
        tokens = self.net(x)  # (B, T', H)
        return tokens, mask


def build_projector(config: ProjectorConfig | dict) -> Projector:
    if isinstance(config, dict):
        config = ProjectorConfig(**config)
    return Projector(config)
