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
half a file and concurrent writers (torchrun ranks) do not corrupt each other; it gets the user's
normal file permissions (0666 less the umask). Never pickle: a cache file is data only.

A file that cannot be read counts as a miss and is written again. So does an entry that is not
what the record asks for: `get(key, shape=(T, D))` returns only a finite float array of exactly
that shape (encode.py passes [ceil(duration * frame_rate), D] of the record's span, one frame at
frame rate 0), so a stale, foreign or planted entry under the right key is recomputed and
overwritten, never returned.
"""

from __future__ import annotations

import hashlib
import os
import uuid
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
        self.rejected = 0  # entries found but not what was asked (wrong shape, not float, not finite): recomputed
        self.last_rejection = ""

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

    def get(self, key: str, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The float32 embedding stored under `key`, or None (a miss): no file, a file that cannot
        be read, or an entry that is not what was asked (`shape`, when given: [T, D] the record's
        span and the encoder give), not a 2-D float array, or not finite. Such an entry is counted
        in `rejected` (its reason in `last_rejection`) and is overwritten when the record is
        encoded again: a wrong entry is recomputed, never returned."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = self.path(key)
        try:
            embedding = load_file(str(path))["embedding"]
        except FileNotFoundError:
            self.misses += 1
            return None
        except (SafetensorError, OSError, KeyError, ValueError, TypeError):
            self.misses += 1  # unreadable or foreign: recompute and overwrite
            return None
        reason = _wrong_entry(embedding, shape)
        if reason is not None:
            self.misses += 1
            self.rejected += 1
            self.last_rejection = f"{path}: {reason}"
            return None
        self.hits += 1
        return embedding.astype(np.float32, copy=False)

    def put(self, key: str, embedding: np.ndarray, metadata: dict[str, Any] | None = None) -> Path | None:
        """Store `embedding` (as float32) under `key`; returns the file, or None when it could not be
        written (counted in `write_errors`, the reason in `last_write_error`). The file gets the
        permissions of any file the user creates (0666 less the umask: 0644 under umask 022)."""
        from safetensors.numpy import save

        path = self.path(key)
        text = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in (metadata or {}).items()}
        data = save({"embedding": np.ascontiguousarray(embedding, dtype=np.float32)}, metadata=text)
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A new name no other writer uses, created as open() creates files (0666 less the umask);
            # tempfile.mkstemp and safetensors' save_file make 0600 files.
            temporary = path.parent / f".{key}.{uuid.uuid4().hex}.tmp"
            with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except OSError as exc:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            self.write_errors += 1
            self.last_write_error = str(exc)
            return None
        return path


def _wrong_entry(embedding: np.ndarray, shape: tuple[int, int] | None) -> str | None:
    """Why a stored array is not a usable embedding of `shape`, or None."""
    if embedding.dtype.kind != "f":
        return f"dtype {embedding.dtype}, not a float array"
    if embedding.ndim != 2:
        return f"shape {list(embedding.shape)}, not [T, D]"
    if shape is not None and tuple(embedding.shape) != tuple(shape):
        return f"shape {list(embedding.shape)}, the record asks for {list(shape)}"
    if not np.isfinite(embedding).all():
        return "holds NaN or infinite values"
    return None
