"""Where a model argument points - a local folder, a Hugging Face hub id, or nothing - decided at once.

Every model option (`encode --encoder`, `sft --llm`, `caption`/`regress --model`,
`eval-mir --embedding-model`; `eval-caption --bertscore-model` takes local folders only) goes
through `resolve_model(spec)` before anything is loaded:

    spec                                         result
    an existing folder                           that folder (`models/whisper-base` when it exists)
    an existing file                             an error: a model is a folder (GGUF files: core/model/llm.py)
    written as a path and missing:               an error at once; the hub is not asked
      ./x ../x ~/x /abs . ..  a/b/c (2+ slashes)
      x/ (trailing slash)  x.gguf  a\\b
    owner/name or name (a valid hub id):
      hub reachable                              the id as given (transformers downloads or reuses its cache)
      offline, in the local cache                the cached snapshot folder (models--owner--name/snapshots/<refs/main>)
      offline, not in the cache                  an error at once: a hub id, not cached, the hub not reachable
    anything else                                an error: neither a folder nor a valid hub id

`models/whisper-base` has the owner/name form of a hub id, so when no such folder exists it is
asked for as a hub id (and fails fast offline, with a message that also says no folder exists).

Offline means HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is true in the environment now, or the hub
endpoint ($HF_ENDPOINT, default https://huggingface.co) gives no HTTP answer below 500 to a HEAD
within HUB_TIMEOUT seconds. The probe goes through huggingface_hub's own HTTP session (so its
proxy settings apply) and runs once per process and endpoint. With `download=False` (models that
mllm never downloads) a hub id is only looked up in the cache. The cache folder follows
huggingface_hub's rule ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), read
from the environment when asked (huggingface_hub reads it once, at import).

Weights: mllm loads safetensors only. `check_model_folder(folder)` refuses a folder without
config.json, one that holds its weights only as a pickle (pytorch_model.bin, *.pt, *.pth, *.ckpt:
loading a pickle can run code), and a model.safetensors (or a shard listed in
model.safetensors.index.json) whose header cannot be read (empty, truncated, not safetensors).
Every `from_pretrained` of weights also passes `use_safetensors=True`. Decisions: docs/model-sources.md.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

__all__ = ["ModelSourceError", "HUB_TIMEOUT", "looks_like_path", "resolve_model", "offline_reason", "hub_endpoint",
           "hub_cache_dir", "cached_snapshot", "check_weights", "check_model_folder"]

HUB_TIMEOUT = 3.0  # seconds the hub endpoint has to answer before mllm counts it unreachable
DEFAULT_ENDPOINT = "https://huggingface.co"
PICKLE_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")


class ModelSourceError(ValueError):
    """A model argument names nothing that can be loaded here; the message says what and why."""


def looks_like_path(spec: str) -> bool:
    """True when `spec` is written as a file system path, so it can never be a hub id.

    >>> [looks_like_path(s) for s in ("./x", "~/m", "/abs/m", "a/b/c", "m/", "x.gguf", "owner/name", "gpt2")]
    [True, True, True, True, True, True, False, False]
    """
    return (spec.startswith(("/", "./", "../", "~")) or spec in (".", "..") or spec.count("/") >= 2
            or spec.endswith("/") or "\\" in spec or spec.lower().endswith(".gguf"))


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, by its rule, from the environment as it is now."""
    env = os.environ
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if not cache:
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME", os.path.join("~", ".cache")), "huggingface")
        cache = os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def offline_reason() -> str | None:
    """Why the hub cannot be used now (offline mode, or no answer from the endpoint); None when it can."""
    from huggingface_hub.constants import ENV_VARS_TRUE_VALUES

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").upper() in ENV_VARS_TRUE_VALUES:
            return f"offline mode is on ({name}={os.environ[name]})"
    return _probe(hub_endpoint())


@functools.cache
def _probe(endpoint: str) -> str | None:
    from huggingface_hub import get_session

    try:
        response = get_session().head(endpoint, timeout=HUB_TIMEOUT, follow_redirects=False)
    except Exception as exc:  # noqa: BLE001 - no answer of any kind means unreachable
        return f"the hub cannot be reached (no answer from {endpoint} within {HUB_TIMEOUT:g} s: {type(exc).__name__}: {exc})"
    if response.status_code >= 500:
        return f"the hub cannot be reached ({endpoint} answered HTTP {response.status_code})"
    return None


def cached_snapshot(repo_id: str) -> str | None:
    """The folder of `repo_id`'s main revision in the local hub cache, or None when it is not there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, cache_dir=hub_cache_dir(), local_files_only=True)
    except LocalEntryNotFoundError:
        return None


def resolve_model(spec: str | os.PathLike, *, option: str = "model", download: bool = True) -> str:
    """The folder or hub id that `from_pretrained` should read for `spec` (see the module docstring).

    `option` names the argument in messages (e.g. "--encoder"). With `download=False` a hub id
    is taken from the local cache only. Raises ModelSourceError without touching the network
    for a missing path, and after one short probe for a hub id that cannot be had.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise ModelSourceError(f"{option} {text}: a file, not a model folder (a Hugging Face model is a folder "
                               "with config.json and model.safetensors)")
    if looks_like_path(text):
        raise ModelSourceError(f"{option} {text}: no such model folder or file ({path.absolute()} does not exist; "
                               "written as a path, it is not looked up on the Hugging Face hub)")
    try:
        validate_repo_id(text)
    except HFValidationError:
        raise ModelSourceError(f"{option} {text!r}: no such model folder, and not a Hugging Face hub id "
                               "(owner/name)") from None
    reason = offline_reason() if download else "mllm does not download this model"
    if reason is None:
        return text
    snapshot = cached_snapshot(text)
    if snapshot is not None:
        return snapshot
    raise ModelSourceError(
        f"{option} {text}: no such local folder, so it is read as a Hugging Face hub id; it is not in the local "
        f"cache ({hub_cache_dir()}) and {reason}. Give a local model folder instead, or download it first "
        f"where the hub can be reached (`hf download {text}`)"
    )


def check_weights(folder: str | os.PathLike, *, required: bool = True) -> list[Path]:
    """The safetensors files holding `folder`'s weights, each with a readable header.

    Raises ModelSourceError for pickle-only weights, a missing shard, an unreadable file, and
    (when `required`) a folder with no weights at all.
    """
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files = [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelSourceError(f"{index}: not a readable safetensors index ({exc})") from None
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    else:
        pickles = sorted({p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern)})
        if pickles:
            raise ModelSourceError(
                f"{folder} holds its weights only as {', '.join(pickles)} (a Python pickle, which can run code when "
                "loaded); mllm loads safetensors only. Use the model's safetensors release, or convert it once where "
                "you trust the file (docs/model-sources.md)"
            )
        if required:
            raise ModelSourceError(f"{folder} has no model.safetensors: no weights to load")
        return []
    for file in files:
        if not file.is_file():
            raise ModelSourceError(f"{file}: listed in {index.name} but missing")
        try:
            with safe_open(file, framework="numpy"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ModelSourceError(f"{file}: not a readable safetensors file ({exc}); it is empty, truncated or "
                                   "corrupt: download or save it again") from None
    return files


def check_model_folder(folder: str | os.PathLike) -> Path:
    """`folder` when it holds a config.json and readable safetensors weights, else ModelSourceError."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelSourceError(f"{folder} has no config.json: not a Hugging Face model folder")
    check_weights(folder)
    return folder
