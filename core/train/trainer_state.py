"""The JSON half of a training loop's trainer state (sft, grpo): read and checked, naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mllm.core.model.checkpoint import CheckpointError, read_checkpoint_config

__all__ = ["TRAINER_STATE_JSON", "TRAINER_STATE_TENSORS", "read_state_json"]

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
