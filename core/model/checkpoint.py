"""MusicLLM checkpoints: a folder of safetensors and JSON, written atomically, loaded without pickle.

    ckpt/
      config.json               {"format": "mllm-musicllm", "version": 1, "encoder": {"name", "dim",
                                 "frame_rate"}, "llm": "<spec as given to load_llm>", "projector": {...},
                                 "lora": {...} | null, "system_prompt": "..."}
      projector.safetensors     the projector's state dict (standardisation buffers included)
      adapter/                  peft `save_pretrained` output (LoRA only): adapter_config.json,
                                adapter_model.safetensors
      merged/<i>/adapter_model.safetensors
                                version 2 only: adapters merged into the LLM's weights, in order,
                                before `adapter/` applies (config.json "merged": their LoRA
                                settings). `mllm grpo` writes these: its adapter trains on the SFT
                                policy with the SFT adapter merged in.

`save_checkpoint` writes everything into `<name>.tmp-<random>` beside the target and renames it
into place (an existing checkpoint is moved aside first and removed after), so an interrupted save
leaves the previous checkpoint intact and a reader never sees half a folder.

`load_checkpoint` reads JSON and safetensors only: the adapter weights are read with
`safetensors.torch.load_file` and set with peft's `set_peft_model_state_dict`, never through
`torch.load`; a folder with a `.bin`/`.pt` adapter is refused. The LLM is reloaded from its spec
(`llm=` overrides it, e.g. when the checkpoint moved to a machine where the LLM lives elsewhere).
Optimizer and scheduler state for resuming belong to the training loop (core/train), not here.

Every file is checked before the LLM is loaded, and a file that cannot be used raises
`CheckpointError` (a ValueError) naming it: a config.json that is not JSON or lacks a field; a
missing, empty, truncated or corrupt safetensors file (a folder holding only pickles says so);
weights that are not finite (NaN or inf: a diverged run would otherwise answer '' to everything);
a projector or adapter whose tensors do not fit the model config.json describes.
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

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_config", "read_tensors", "merge_adapter",
           "CheckpointError", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "mllm-musicllm"
CHECKPOINT_VERSION = 2  # 2: "merged" adapters (written as 1 when there are none)
CONFIG_FIELDS = ("encoder", "llm", "projector", "lora", "system_prompt")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file."""


def _pickles(folder: Path) -> str:
    """' (it holds x.bin, y.pt: pickled weights are not loaded)' when `folder` has pickles, else ''."""
    names = sorted(p.name for p in folder.glob("*") if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
    return f" (it holds {', '.join(names)}: pickled weights are not loaded, only safetensors)" if names else ""


def read_tensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, all finite; CheckpointError naming the file otherwise
    (missing, empty, truncated, corrupt, or holding NaN/inf)."""
    from safetensors import SafetensorError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing{_pickles(path.parent)}")
    try:
        tensors = load_file(path, device=str(device))
    except (SafetensorError, OSError) as exc:  # an empty or cut file: "header too small", "incomplete metadata"
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"{path} holds non-finite weights (NaN or inf) in {len(bad)} tensors ({', '.join(bad[:3])}): "
                              "the training that wrote it diverged; use an earlier checkpoint")
    return tensors


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
        config = {"format": CHECKPOINT_FORMAT, "version": 2 if model.merged else 1, "encoder": model.encoder,
                  "llm": model.llm_spec, "projector": model.projector.config.to_dict(),
                  "lora": model.lora.to_dict() if model.lora else None, "system_prompt": model.system_prompt,
                  "extra": extra or {}}
        if model.merged:
            config["merged"] = [entry["lora"] for entry in model.merged]
            for i, entry in enumerate(model.merged):
                (temporary / "merged" / str(i)).mkdir(parents=True)
                save_file({k: v.detach().to("cpu").contiguous() for k, v in entry["state"].items()},
                          temporary / "merged" / str(i) / "adapter_model.safetensors")
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
    """config.json of a checkpoint folder: FileNotFoundError when there is none, CheckpointError
    when it is not a MusicLLM checkpoint's (not JSON, another format, a newer version, a field missing)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a MusicLLM checkpoint: no config.json{_pickles(Path(folder))}")
    try:
        config = json.loads(path.read_text())
    except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        format_name = config.get("format") if isinstance(config, dict) else None
        raise CheckpointError(f"{path} is not a MusicLLM checkpoint (format {format_name!r})")
    if not isinstance(config.get("version", 0), int) or config.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {config['version']!r} is newer than this mllm reads")
    missing = [name for name in CONFIG_FIELDS if name not in config]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    return config


def _merged_adapters(folder: Path, config: dict, device) -> list[dict]:
    """The version-2 "merged" adapters of a checkpoint, read and checked (CheckpointError naming the file)."""
    entries = config.get("merged") or []
    if not isinstance(entries, list):
        raise CheckpointError(f"{folder / 'config.json'}: 'merged' must be a list of LoRA settings")
    merged = []
    for i, settings in enumerate(entries):
        try:
            lora = LoraSettings(**settings)
        except TypeError as exc:
            raise CheckpointError(f"{folder / 'config.json'}: merged adapter {i}: {exc}") from None
        merged.append({"lora": lora.to_dict(),
                       "state": read_tensors(folder / "merged" / str(i) / "adapter_model.safetensors", device=device)})
    return merged


def merge_adapter(llm: torch.nn.Module, entry: dict) -> torch.nn.Module:
    """`llm` with the adapter `entry` ({"lora", "state"}, as MusicLLM.merged holds it) merged into its weights."""
    from peft import get_peft_model, set_peft_model_state_dict

    wrapped = get_peft_model(llm, LoraSettings(**entry["lora"]).peft_config())
    result = set_peft_model_state_dict(wrapped, entry["state"])
    if getattr(result, "unexpected_keys", None):
        raise CheckpointError(f"a merged adapter does not fit the LLM: unexpected {result.unexpected_keys[:3]}")
    return wrapped.merge_and_unload()


def load_checkpoint(folder: str | os.PathLike, llm: str | None = None, dtype: torch.dtype | str = torch.float32,
                    device: str = "cpu", trainable: bool = False) -> MusicLLM:
    """Rebuild a MusicLLM from `folder`. In eval mode with nothing trainable unless `trainable`."""
    from peft import LoraConfig, set_peft_model_state_dict

    folder = Path(folder)
    config = read_checkpoint_config(folder)
    # Every file is read and checked before the LLM loads (seconds to minutes for a real one).
    try:
        projector = Projector(ProjectorConfig(**config["projector"]))
        lora = LoraSettings(**config["lora"]) if config["lora"] else None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'config.json'}: {exc}") from None
    weights = folder / "projector.safetensors"
    try:
        projector.load_state_dict(read_tensors(weights))
    except RuntimeError as exc:  # missing keys or a size mismatch
        raise CheckpointError(f"{weights} does not fit the projector of {folder / 'config.json'}: "
                              f"{str(exc).splitlines()[-1].strip()}") from None
    adapter_weights = None
    if lora is not None:
        adapter = folder / "adapter"
        try:
            saved = LoraConfig.from_pretrained(adapter)  # JSON
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{adapter / 'adapter_config.json'} cannot be read ({exc})") from None
        if saved.r != lora.rank or sorted(saved.target_modules) != sorted(lora.targets):
            raise CheckpointError(f"{adapter}/adapter_config.json disagrees with config.json's lora settings")
        adapter_weights = read_tensors(adapter / "adapter_model.safetensors", device=device)
    merged = _merged_adapters(folder, config, device)
    base, tokenizer = load_llm(llm or config["llm"], dtype=dtype, device=device)
    for entry in merged:
        base = merge_adapter(base, entry)
    model = MusicLLM(base, tokenizer, projector, llm_spec=llm or config["llm"], encoder=config["encoder"], lora=lora,
                     system_prompt=config["system_prompt"])
    model.merged = merged
    if adapter_weights is not None:
        path = folder / "adapter" / "adapter_model.safetensors"
        try:
            result = set_peft_model_state_dict(model.llm, adapter_weights)
        except RuntimeError as exc:  # a size mismatch
            raise CheckpointError(f"{path} does not fit the LLM's adapter: {str(exc).splitlines()[-1].strip()}") from None
        missing = [key for key in getattr(result, "missing_keys", []) if "lora_" in key]
        if getattr(result, "unexpected_keys", None) or missing:
            raise CheckpointError(f"{path} does not fit the LLM's adapter: unexpected {result.unexpected_keys[:3]}, "
                                  f"missing {missing[:3]}")
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
