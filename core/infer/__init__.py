"""Inference with a trained MusicLLM and the probe baseline: `caption`, `regress`. See docs/inference.md."""
