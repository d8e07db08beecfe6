"""An on-disk cache of pooled embeddings, so probing, SFT and inference share one extraction.

    cache = EmbeddingCache("cache/embeddings")
    key = cache.key(audio_sha256=file_sha256(path), start=0.0, end=25.0, encoder=encoder.fingerprint,
                    layer=-1, frame_rate=10.0)
    cache.get(key)            # float32 [T, D] or None
    cache.put(key, embedding, {"audio": path})

Key: sha256 of a JSON document holding
- the sha256 of the audio file's bytes (so a renamed or copied file hits, an edited one misses;
  nothing is decoded to compute it) and the crop (`start`, `end`; null = from the start / to the end);
- the encoder's fingerprint: for DSP encoders their feature list, code version, sample rate, hop
  and the librosa version; for Hugging Face models the sha256 of their config, feature extractor,
  compute dtype, window and every weight (so a hub id and its local copy share entries, and a
  fine-tuned folder at the same path does not);
- the layer and the frame rate.
The device is not part of the key: CPU and GPU results differ only by float rounding.

Files: `DIR/<first two hex digits>/<key>.safetensors` with one float32 tensor `embedding` and
string metadata (encoder, layer, frame rate, audio path, crop) for people who look inside. A file
is written to a temporary name in the same folder and renamed into place, so a reader never sees
half a file and concurrent writers (torchrun ranks) do not corrupt each other. Never pickle: a
cache file is data only. A file that cannot be read counts as a miss and is written again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["EmbeddingCache", "file_sha256", "CACHE_VERSION"]

CACHE_VERSION = 1
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class EmbeddingCache:
    """Pooled embeddings on disk, keyed by `key(...)`; see the module docstring."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not os.access(self.folder, os.W_OK):
            raise OSError(f"cache folder {self.folder} is not writable")
        self.hits = 0
        self.misses = 0
        self.write_errors = 0  # entries that could not be written (disk full...): the records still get their embedding
        self.last_write_error = ""

    @staticmethod
    def key(*, audio_sha256: str, start: float | None, end: float | None, encoder: str, layer: Any, frame_rate: float) -> str:
        document = {
            "version": CACHE_VERSION,
            "audio_sha256": audio_sha256,
            "start": start,
            "end": end,
            "encoder": encoder,
            "layer": layer,
            "frame_rate": float(frame_rate),
        }
        return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> np.ndarray | None:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = self.path(key)
        try:
            embedding = load_file(str(path))["embedding"]
        except FileNotFoundError:
            self.misses += 1
            return None
        except (SafetensorError, OSError, KeyError, ValueError):
            self.misses += 1  # unreadable or foreign: recompute and overwrite
            return None
        self.hits += 1
        return embedding

    def put(self, key: str, embedding: np.ndarray, metadata: dict[str, Any] | None = None) -> Path | None:
        """Store `embedding` (as float32) under `key`; returns the file, or None when it could not be
        written (counted in `write_errors`, the reason in `last_write_error`)."""
        from safetensors.numpy import save_file

        path = self.path(key)
        text = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in (metadata or {}).items()}
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
            os.close(handle)
            save_file({"embedding": np.ascontiguousarray(embedding, dtype=np.float32)}, temporary, metadata=text)
            os.replace(temporary, path)
        except OSError as exc:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            self.write_errors += 1
            self.last_write_error = str(exc)
            return None
        return path
