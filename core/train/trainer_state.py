"""A training loop's trainer state (sft, grpo, train-reward): the JSON half read and checked, naming the
file, and the optimizer's state flattened into safetensors-ready tensors plus JSON, and back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from mllm.core.model.checkpoint import CheckpointError, read_checkpoint_config

__all__ = ["TRAINER_STATE_JSON", "TRAINER_STATE_TENSORS", "read_state_json", "flatten_optimizer", "restore_optimizer"]

TRAINER_STATE_JSON = "trainer_state.json"
TRAINER_STATE_TENSORS = "trainer_state.safetensors"


def read_state_json(folder: str | os.PathLike, format_name: str, *, missing: str, other_format: str) -> dict:
    """trainer_state.json of the checkpoint `folder` (a model checkpoint first: FileNotFoundError
    when it is none). CheckpointError when the file is missing ("{path} is missing: " + `missing`),
    not JSON, or not of `format_name` ("{path} is not " + `other_format`)."""
    folder = Path(folder)
    read_checkpoint_config(folder)
    path = folder / TRAINER_STATE_JSON
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {missing}")
    try:
        saved = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(saved, dict) or saved.get("format") != format_name:
        raise CheckpointError(f"{path} is not {other_format}")
    return saved


def flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW state dict -> ({"optimizer.<index>.<name>": tensor}, JSON with the param groups and
    the non-tensor per-parameter values)."""
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict, tensors: dict, device, folder) -> None:
    """AdamW's state from the flattened form `flatten_optimizer` made (CheckpointError naming the files when it does not fit)."""
    state: dict[int, dict] = {}
    try:
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value.to(device)
        for index, values in saved["optimizer"]["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": saved["optimizer"]["param_groups"]})
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{Path(folder) / TRAINER_STATE_JSON} and {TRAINER_STATE_TENSORS}: the optimizer state "
                              f"does not fit the model ({type(exc).__name__}: {exc})") from None
