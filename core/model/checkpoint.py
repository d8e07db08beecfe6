"""MusicLLM checkpoints: a folder of safetensors and JSON, written atomically, loaded without pickle.

    ckpt/
      config.json               {"format": "mllm-musicllm", "version": 1, "encoder": {"name", "dim",
                                 "frame_rate"}, "llm": "<spec as given to load_llm>", "projector": {...},
                                 "lora": {...} | null, "system_prompt": "..."}
      projector.safetensors     the projector's state dict (standardisation buffers included)
      adapter/                  peft `save_pretrained` output (LoRA only): adapter_config.json,
                                adapter_model.safetensors

`save_checkpoint` writes everything into `<name>.tmp-<random>` beside the target and renames it
into place (an existing checkpoint is moved aside first and removed after), so an interrupted save
leaves the previous checkpoint intact and a reader never sees half a folder.

`load_checkpoint` reads JSON and safetensors only: the adapter weights are read with
`safetensors.torch.load_file` and set with peft's `set_peft_model_state_dict`, never through
`torch.load`; a folder with a `.bin`/`.pt` adapter is refused. The LLM is reloaded from its spec
(`llm=` overrides it, e.g. when the checkpoint moved to a machine where the LLM lives elsewhere).
Optimizer and scheduler state for resuming belong to the training loop (core/train), not here.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mllm.core.model.llm import load_llm
from mllm.core.model.musicllm import LoraSettings, MusicLLM
from mllm.core.model.projector import Projector, ProjectorConfig

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_config", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "mllm-musicllm"
CHECKPOINT_VERSION = 1


def replace_folder(complete: Path, folder: Path) -> None:
    """Put the fully written folder `complete` in place of `folder`, by renames only.

    An existing `folder` is moved aside first and deleted after, so at every moment `folder` is
    either the old whole checkpoint or the new whole one: a kill never leaves half of one.
    """
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(folder, old)
    os.rename(complete, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(model: MusicLLM, folder: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write `model` to `folder` atomically; `extra` (JSON) is stored in config.json under "extra"."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        config = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "encoder": model.encoder,
                  "llm": model.llm_spec, "projector": model.projector.config.to_dict(),
                  "lora": model.lora.to_dict() if model.lora else None, "system_prompt": model.system_prompt,
                  "extra": extra or {}}
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.projector.state_dict().items()}
        save_file(state, temporary / "projector.safetensors")
        if model.lora is not None:
            model.llm.save_pretrained(temporary / "adapter", safe_serialization=True)
        (temporary / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        replace_folder(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def read_checkpoint_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a MusicLLM checkpoint: no config.json")
    config = json.loads(path.read_text())
    if config.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a MusicLLM checkpoint (format {config.get('format')!r})")
    if config.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {config['version']} is newer than this mllm reads")
    return config


def load_checkpoint(folder: str | os.PathLike, llm: str | None = None, dtype: torch.dtype | str = torch.float32,
                    device: str = "cpu", trainable: bool = False) -> MusicLLM:
    """Rebuild a MusicLLM from `folder`. In eval mode with nothing trainable unless `trainable`."""
    from peft import LoraConfig, set_peft_model_state_dict

    folder = Path(folder)
    config = read_checkpoint_config(folder)
    base, tokenizer = load_llm(llm or config["llm"], dtype=dtype, device=device)
    projector = Projector(ProjectorConfig(**config["projector"]))
    projector.load_state_dict(load_file(folder / "projector.safetensors"))
    lora = LoraSettings(**config["lora"]) if config["lora"] else None
    model = MusicLLM(base, tokenizer, projector, llm_spec=llm or config["llm"], encoder=config["encoder"], lora=lora,
                     system_prompt=config["system_prompt"])
    if lora is not None:
        adapter = folder / "adapter"
        weights = adapter / "adapter_model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{adapter} has no adapter_model.safetensors (pickled adapters are not loaded)")
        saved = LoraConfig.from_pretrained(adapter)  # JSON
        if saved.r != lora.rank or sorted(saved.target_modules) != sorted(lora.targets):
            raise ValueError(f"{adapter}/adapter_config.json disagrees with config.json's lora settings")
        result = set_peft_model_state_dict(model.llm, load_file(weights, device=str(device)))
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"adapter weights not in the model: {result.unexpected_keys[:5]}")
    model.to(device)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if trainable:
        for parameter in model.projector.parameters():
            parameter.requires_grad_(True)
        for name, parameter in model.llm.named_parameters():
            if "lora_" in name:
                parameter.requires_grad_(True)
    return model
