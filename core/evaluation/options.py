"""The options of MIR scoring (`mllm eval-mir`), shared by the task kinds and the evaluator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mllm.core.options import check_integer, check_number


@dataclass
class EvalOptions:
    read_from: str = "auto"  # auto | prediction | response
    reference_field: str = "reference"  # falls back to `answer` when the record has no such field
    task_types: Mapping[str, str] = field(default_factory=dict)
    scale: tuple[float, float] | None = None
    clip: bool = True  # numbers outside the scale are clipped to it (and counted)
    standardize: frozenset[str] = frozenset()  # tasks whose references are z-scores (CMI-Bench EMO)
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # task -> label set
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    match: str = "text"  # classification answers: "text" (labels named) or "embedding" (nearest label)
    embedding_model: str | None = None  # local sentence-transformers folder for match="embedding"
    descending_fifths: bool = False
    tag_threshold: float = 0.5  # tagging predictions given as scores: labels scoring at least this
    tempo_tolerance: float = 0.04
    beat_trim: float = 0.0
    chord_comparisons: tuple[str, ...] = ("root", "majmin", "mirex", "thirds", "triads", "sevenths")
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    split: str | None = None  # score only the records of this split (the others pass through)
    include_in_sample: bool = False  # also score records marked `in_sample` (a probe's own training records)

    def check(self) -> EvalOptions:
        """ValueError naming the option when a value is out of range (NaN and infinities included)."""
        check_number("--tag-threshold", self.tag_threshold)
        check_number("--tempo-tolerance", self.tempo_tolerance, above=0, below=1)
        check_number("--beat-trim", self.beat_trim, minimum=0)
        check_integer("--bootstrap", self.n_resamples, minimum=0)
        check_number("--confidence", self.confidence, above=0, below=1)
        if self.scale is not None:
            for bound in self.scale:
                check_number("--scale", bound)
        return self
