"""MusicLLM = encoder frames -> projector -> causal LM (+ LoRA); save and load. See docs/model.md."""

from mllm.core.model.chat import (AUDIO_PLACEHOLDER, DEFAULT_SYSTEM_PROMPT, IGNORE_INDEX, Batch, Example,
                                  collate, example_from_record, render_example)
from mllm.core.model.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint
from mllm.core.model.llm import DEFAULT_LLM, load_llm, resolve_llm, smollm2_gguf
from mllm.core.model.musicllm import LoraSettings, MusicLLM
from mllm.core.model.projector import Projector, ProjectorConfig, build_projector

__all__ = ["AUDIO_PLACEHOLDER", "DEFAULT_SYSTEM_PROMPT", "IGNORE_INDEX", "Batch", "Example", "collate",
           "example_from_record", "render_example", "load_checkpoint", "read_checkpoint_config", "save_checkpoint",
           "DEFAULT_LLM", "load_llm", "resolve_llm", "smollm2_gguf", "LoraSettings", "MusicLLM", "Projector",
           "ProjectorConfig", "build_projector"]
