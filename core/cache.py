"""mllm's cache folder: where what is derived once and reused lives.

What is kept there: the safetensors copy of a GGUF LLM (`llm/<16 hex>/`, core.model.llm) and the
LF copy of WordNet 3.0 for NLTK's METEOR (`nltk_data/corpora/wordnet`,
core.metrics.caption_resources). Everything in it can be deleted; it is rebuilt when needed.

This module imports nothing heavy, so any module may ask for the folder without pulling in the
libraries of another (the LLM loader once imported pycocoevalcap to get it).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """mllm's cache folder: $MLLM_CACHE, else $XDG_CACHE_HOME/mllm, else ~/.cache/mllm (not created)."""
    if os.environ.get("MLLM_CACHE"):
        return Path(os.environ["MLLM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mllm"
