"""A training loop's trainer state (sft, grpo, train-reward): the JSON half read and checked, naming the
file, and the optimizer's state flattened into safetensors-ready tensors plus JSON, and back."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from mllm.core.model.checkpoint import CheckpointError, read_checkpoint_config
from mllm.core.options import check_integer

__all__ = ["TRAINER_STATE_JSON", "TRAINER_STATE_TENSORS", "read_state_json", "flatten_optimizer", "restore_optimizer",
           "option", "resumed_config"]

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


def option(name: str) -> str:
    """The command-line spelling of a config field, as messages name it: max_grad_norm -> --max-grad-norm."""
    return "--" + name.replace("_", "-")


def resumed_config(config: Any, resume: str | os.PathLike | None, given: Collection[str] | None,
                   extend_to: int | None, *, read_state: Callable[[Any], tuple[dict, dict]],
                   may_change: Collection[str]) -> tuple[Any, dict | None, dict | None]:
    """(the options a run uses, its saved trainer state, its tensors) for sft and train-reward; the
    rule is sft's `resolve_config` docstring. `config` is a dataclass with `check()`; `read_state`
    reads a checkpoint's trainer state (its JSON holds the options under "config"); `may_change`:
    the options a resumed run may take from the command line (`device` always does)."""
    kind = type(config)
    config.check()
    if resume is None:
        if extend_to is not None:
            raise ValueError("--extend-to extends a saved run: give the checkpoint to --resume")
        return config, None, None
    saved, tensors = read_state(resume)
    checkpoint = saved["config"]
    if given is None:  # the fields that differ from the defaults
        defaults = kind()
        given = {f.name for f in fields(kind) if getattr(config, f.name) != getattr(defaults, f.name)}
    given = set(given)
    kept = [name for name in sorted(given) if name in checkpoint and name not in (*may_change, "device")]
    differ = [f"{option(name)} is {getattr(config, name)!r}, the checkpoint's is {checkpoint[name]!r}"
              for name in kept if getattr(config, name) != checkpoint[name]]
    if differ:
        raise ValueError(f"{'; '.join(differ)} (a resumed run keeps its options: only "
                         f"{', '.join(map(option, may_change))} and --device may change; "
                         "--extend-to N trains it for more steps)")
    merged = {**checkpoint, **{name: getattr(config, name) for name in may_change if name in given},
              "device": config.device}
    if "output" not in given:
        merged["output"] = str(resume)
    if extend_to is not None:
        if check_integer("--extend-to", extend_to) <= saved["total_steps"]:
            raise ValueError(f"--extend-to must be more than the {saved['total_steps']} steps {resume} planned, got {extend_to}")
        if saved.get("early_stopped"):
            raise ValueError(f"--extend-to: {resume} ended by early stopping at step {saved['step']}; nothing to extend")
        merged["steps"] = extend_to
    try:
        return kind(**merged).check(), saved, tensors
    except TypeError as exc:  # a field this version does not know
        raise CheckpointError(f"{Path(resume) / TRAINER_STATE_JSON}: {exc}") from None
