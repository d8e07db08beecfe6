"""Training loops for the MusicLLM: supervised fine-tuning (sft.py), data-parallel under torchrun
(distributed.py). See docs/training.md."""

from mllm.core.train.sft import SFTConfig, TrainerState, evaluate, lr_factor, save, setup, train

__all__ = ["SFTConfig", "TrainerState", "evaluate", "lr_factor", "save", "setup", "train"]
