"""A music reward model in the toolbox's own parts: frozen towers, a small trained head, one score per axis.

    model = RewardModel(RewardModelConfig(audio_dim=78, text_dim=576))
    scores = model(audio, text, reference)         # (B, len(axes)): alignment, musicality
    save_reward_model(model, "runs/rm", encoder=spec, text_encoder="smollm2")
    model, meta = load_reward_model("runs/rm")

CMI-RewardBench's reward models are two towers: frozen encoders of the prompt (text, lyrics,
reference audio) and of the evaluated audio, fused by small transformers, a pooled output and an
MLP giving a musicality and an alignment score. This is the same shape at the size of the inputs
it gets here, one pooled vector per modality:

    a = W_a standardise(audio)                  (B, H)   the evaluated audio's pooled embedding
    t = W_t standardise(text) * has_text        (B, H)   the prompt's embedding (zeros when absent)
    r = W_a standardise(reference) * has_ref    (B, H)   a reference audio, same projection as a
    h = [a, t, a * t, r, a * r, has_text, has_ref]       the products let the head compare them
    scores = W_2 dropout(GELU(W_1 GELU(h)))     (B, K)   one per axis

"Empty modalities are treated as zero tensors" (the paper's rule): a missing prompt or reference
is a zero vector with its flag 0. The audio vector is an encoder's frame embeddings [T, D] pooled
over time as mean and standard deviation (2D values: `pool_frames`); `standardise` uses the
training set's per-dimension mean and std, kept in the model as buffers.

For MOS targets the paper regresses an affine map of the score (scale and offset learned, dropped
at inference): `mos_scale` and `mos_offset`, one pair per axis (core/train/reward.py).

Checkpoint folder (no pickle: safetensors and JSON only):

    config.json           {"format": "mllm-reward-model", "version": 1, "model": RewardModelConfig,
                           "encoder": the audio encoder's spec, "text_encoder": its spec or "none", "extra": {...}}
    model.safetensors     the head's weights, the standardisation buffers, mos_scale / mos_offset
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from mllm.core.model.checkpoint import CheckpointError, read_tensors, replace_folder

__all__ = ["AXES", "RewardModelConfig", "RewardModel", "pool_frames", "save_reward_model", "load_reward_model",
           "read_reward_config", "read_json_of_format", "REWARD_MODEL_FORMAT"]

AXES = ("alignment", "musicality")
REWARD_MODEL_FORMAT = "mllm-reward-model"
REWARD_MODEL_VERSION = 1


def pool_frames(frames: np.ndarray) -> np.ndarray:
    """[T, D] frame embeddings -> (2D,) float32: the mean over time, then the standard deviation
    (0 for one frame). ValueError for an empty or non-finite embedding."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"an audio embedding must be [T, D] with T >= 1, got shape {list(frames.shape)}")
    if not np.isfinite(frames).all():
        raise ValueError("the audio embedding holds NaN or inf")
    return np.concatenate([frames.mean(0), frames.std(0)]).astype(np.float32)


@dataclass
class RewardModelConfig:
    audio_dim: int  # the pooled audio vector's size (2 x the encoder's D)
    text_dim: int = 0  # 0: no prompt tower
    hidden: int = 64
    dropout: float = 0.1
    axes: list[str] = field(default_factory=lambda: list(AXES))

    def check(self) -> RewardModelConfig:
        if self.audio_dim < 1 or self.text_dim < 0 or self.hidden < 1:
            raise ValueError(f"reward model sizes must be positive, got {asdict(self)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not self.axes or len(set(self.axes)) != len(self.axes):
            raise ValueError(f"--axes must name distinct axes, got {self.axes}")
        return self


class RewardModel(nn.Module):
    """The head of the module docstring; the frozen encoders live outside it (features.py)."""

    def __init__(self, config: RewardModelConfig):
        super().__init__()
        self.config = config.check()
        hidden = config.hidden
        self.register_buffer("audio_mean", torch.zeros(config.audio_dim))
        self.register_buffer("audio_std", torch.ones(config.audio_dim))
        self.register_buffer("text_mean", torch.zeros(config.text_dim))
        self.register_buffer("text_std", torch.ones(config.text_dim))
        self.audio = nn.Linear(config.audio_dim, hidden)
        self.text = nn.Linear(config.text_dim, hidden) if config.text_dim else None
        width = hidden * 5 + 2 if config.text_dim else hidden * 3 + 1  # [a, (t, a*t), r, a*r, flags]
        self.head = nn.Sequential(nn.GELU(), nn.Linear(width, hidden), nn.GELU(), nn.Dropout(config.dropout),
                                  nn.Linear(hidden, len(config.axes)))
        self.mos_scale = nn.Parameter(torch.ones(len(config.axes)))
        self.mos_offset = nn.Parameter(torch.zeros(len(config.axes)))

    @property
    def axes(self) -> list[str]:
        return list(self.config.axes)

    def set_standardization(self, audio: torch.Tensor, text: torch.Tensor | None) -> None:
        """Mean and std per dimension from training vectors (N, D); a constant dimension gets std 1."""
        self.audio_mean.copy_(audio.mean(0))
        self.audio_std.copy_(torch.where(audio.std(0) > 1e-6, audio.std(0), torch.ones_like(self.audio_std)))
        if text is not None and self.config.text_dim:
            self.text_mean.copy_(text.mean(0))
            self.text_std.copy_(torch.where(text.std(0) > 1e-6, text.std(0), torch.ones_like(self.text_std)))

    def forward(self, audio: torch.Tensor, text: torch.Tensor | None = None, has_text: torch.Tensor | None = None,
                reference: torch.Tensor | None = None, has_reference: torch.Tensor | None = None) -> torch.Tensor:
        """audio (B, audio_dim); text (B, text_dim) with has_text (B,) in {0, 1}; reference (B,
        audio_dim) with has_reference (B,). Absent inputs count as absent for every row. -> (B, K)."""
        batch = audio.shape[0]
        no = audio.new_zeros(batch)
        a = self.audio((audio - self.audio_mean) / self.audio_std)  # (B, H)
        parts = [a]
        flags = []
        if self.text is not None:
            has_text = no if text is None or has_text is None else has_text.to(audio.dtype)
            t = self.text((text - self.text_mean) / self.text_std) if text is not None else torch.zeros_like(a)
            t = t * has_text[:, None]
            parts += [t, a * t]
            flags.append(has_text)
        has_reference = no if reference is None or has_reference is None else has_reference.to(audio.dtype)
        r = self.audio((reference - self.audio_mean) / self.audio_std) if reference is not None else torch.zeros_like(a)
        r = r * has_reference[:, None]
        parts += [r, a * r]
        flags.append(has_reference)
        return self.head(torch.cat([*parts, torch.stack(flags, 1)], 1))  # (B, K)


def save_reward_model(model: RewardModel, folder: str | os.PathLike, *, encoder: dict, text_encoder: str,
                      extra: dict | None = None, also: dict[str, bytes] | None = None) -> Path:
    """Write the checkpoint folder atomically (a temporary folder renamed into place); `also`:
    more files (name -> bytes) written into it, e.g. the trainer state."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        broken = [name for name, t in model.state_dict().items() if not bool(torch.isfinite(t).all())]
        if broken:
            raise FloatingPointError(f"the reward model's weights are not finite in {', '.join(broken[:3])}: not saved")
        save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()},
                  staging / "model.safetensors")
        config = {"format": REWARD_MODEL_FORMAT, "version": REWARD_MODEL_VERSION, "model": asdict(model.config),
                  "encoder": encoder, "text_encoder": text_encoder, "extra": extra or {}}
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for name, data in (also or {}).items():
            (staging / name).write_bytes(data)
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def read_json_of_format(path: Path, format_name: str, version: int, what: str) -> dict:
    """The JSON object in `path` whose "format" is `format_name` and "version" `version`;
    CheckpointError naming the file otherwise (`what` says what it should have been)."""
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != format_name:
        found = data.get("format") if isinstance(data, dict) else None
        raise CheckpointError(f"{path} is not {what} (format {found!r})")
    if data.get("version") != version:
        raise CheckpointError(f"{path}: {what} version {data.get('version')!r}, this mllm reads version {version}")
    return data


def read_reward_config(folder: str | os.PathLike) -> dict:
    """config.json of a reward model folder; FileNotFoundError when there is none, CheckpointError
    naming the file when it is not a reward model's."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a reward model (`mllm train-reward -o`): no config.json")
    config = read_json_of_format(path, REWARD_MODEL_FORMAT, REWARD_MODEL_VERSION,
                                 "a reward model's config (`mllm train-reward` writes them)")
    missing = [name for name in ("model", "encoder", "text_encoder") if name not in config]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    return config


def load_reward_model(folder: str | os.PathLike, device: str = "cpu") -> tuple[RewardModel, dict]:
    """(the model in eval mode, its config.json); CheckpointError naming the file that cannot be used."""
    config = read_reward_config(folder)
    try:
        model = RewardModel(RewardModelConfig(**config["model"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{Path(folder) / 'config.json'}: {exc}") from None
    weights = Path(folder) / "model.safetensors"
    try:
        model.load_state_dict(read_tensors(weights))
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not fit {Path(folder) / 'config.json'}: "
                              f"{str(exc).splitlines()[-1].strip()}") from None
    return model.to(device).eval(), config
