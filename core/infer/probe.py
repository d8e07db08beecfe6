"""`mllm regress --method probe`: the supervised baseline MIR papers compare LLMs with.

    features   mean of `audio_embedding` over time: (T, D) -> (D,)
    model      standardised features -> RidgeCV (alphas 10^-3 .. 10^4, chosen by leave-one-out) or
               MLPRegressor (one hidden layer of 64, early stopping off, seeded); one per target
    fit on     records with `split` "train" and a number for the target in `labels.<name>` or
               `answer.<name>` (a record missing one target still trains the others); a clip that
               appears in several records (one instruction record per task) counts once
               (a record without `split` is never fitted on: core/io/splits.py)
    predict    every record (of `split`, when given: the others pass through untouched), clipped
               to the target's scale when it has one (DEFAULT_SCALES, --scale, or the record's
               `scale` for its own task)

Written fields: `prediction` {name: value, ..., "parse_ok": {name: true}} (the form eval-mir
reads), `probe` {"method", "clipped": {name: bool}}, and `in_sample: true` on the train records,
whose predictions are of the data the probe was fitted on: eval-mir leaves them out of its
figures unless asked (--include-in-sample). Two passes over the records: `fit_probe` then
`predict_records`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from mllm.core.evaluation.tasks import DEFAULT_SCALES
from mllm.core.io.errors import Record, StreamSummary, has_error, map_records
from mllm.core.io.splits import TRAIN, in_split

__all__ = ["STAGE", "METHODS", "pooled", "label_of", "Probe", "fit_probe", "predict_records"]

STAGE = "regress"
METHODS = ("ridge", "mlp")
ALPHAS = np.logspace(-3, 4, 15)


def pooled(record: Mapping) -> np.ndarray:
    """Mean over time of the record's `audio_embedding`: (D,) float64."""
    if "audio_embedding" not in record:
        raise KeyError(f"record {record.get('id')!r} has no 'audio_embedding' (run `mllm encode` first)")
    frames = np.asarray(record["audio_embedding"], dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"audio_embedding must be [T, D] with T >= 1, got shape {frames.shape}")
    return frames.mean(axis=0)


def label_of(record: Mapping, name: str) -> float | None:
    """The record's number for `name` from `labels` or `answer`, or None."""
    for container in ("labels", "answer"):
        value = record.get(container)
        if isinstance(value, Mapping):
            number = value.get(name)
            if isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number):
                return float(number)
    return None


@dataclass
class Probe:
    method: str
    models: dict = field(default_factory=dict)  # target -> fitted sklearn pipeline
    train_counts: dict = field(default_factory=dict)  # target -> training records
    unsplit: int = 0  # records without a `split` (never fitted on)

    def predict(self, features: np.ndarray) -> dict[str, float]:
        return {name: float(model.predict(features[None, :])[0]) for name, model in self.models.items()}


def _estimator(method: str, seed: int):
    from sklearn.linear_model import RidgeCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if method == "ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))
    if method == "mlp":
        return make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=2000,
                                                            random_state=seed))
    raise ValueError(f"probe must be one of {', '.join(METHODS)}, not {method!r}")


def fit_probe(records: Iterable[Record], targets: tuple[str, ...], method: str = "ridge", seed: int = 0) -> Probe:
    """Fit one model per target on the train split; ValueError when a target has under 2 examples."""
    rows: dict[str, tuple[list, list]] = {name: ([], []) for name in targets}
    seen: dict[str, set] = {name: set() for name in targets}  # (features, value) already taken
    unsplit = 0
    for record in records:
        if has_error(record):
            continue
        unsplit += record.get("split") is None
        if record.get("split") != TRAIN or "audio_embedding" not in record:
            continue
        features = None
        for name in targets:
            value = label_of(record, name)
            if value is None:
                continue
            features = pooled(record) if features is None else features
            key = (features.tobytes(), value)
            if key in seen[name]:
                continue
            seen[name].add(key)
            rows[name][0].append(features)
            rows[name][1].append(value)
    probe = Probe(method, unsplit=unsplit)
    for name, (x, y) in rows.items():
        if len(y) < 2:
            why = (f" ({unsplit} records have no `split` and are never fitted on: give the training "
                   f"records \"split\": \"train\", e.g. with mllm build-instructions)") if unsplit else ""
            raise ValueError(f"target {name!r}: {len(y)} records of split 'train' with a number in labels.{name} "
                             f"or answer.{name}; a probe needs at least 2{why}")
        model = _estimator(method, seed)
        model.fit(np.stack(x), np.asarray(y))
        probe.models[name] = model
        probe.train_counts[name] = len(y)
    return probe


def _scale(record: Mapping, name: str, scales: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    if name in scales:
        return tuple(scales[name])
    if record.get("task") == name and record.get("scale") is not None:
        low, high = record["scale"]
        return float(low), float(high)
    return DEFAULT_SCALES.get(name.lower())


def predict_records(records: Iterable[Record], probe: Probe, scales: Mapping[str, tuple[float, float]] | None = None,
                    summary: StreamSummary | None = None, split: str | None = None) -> Iterator[Record]:
    """Every record (of `split`, when given) with `prediction` (clipped to the scale) and `probe`
    added, and `in_sample: true` on the records of the train split."""
    scales = dict(scales or {})

    def process(record: Record) -> Record:
        if not in_split(record, split):
            return record
        raw = probe.predict(pooled(record))
        prediction, clipped = {}, {}
        for name, value in raw.items():
            scale = _scale(record, name, scales)
            kept = value if scale is None else min(max(value, scale[0]), scale[1])
            prediction[name], clipped[name] = kept, kept != value
        prediction["parse_ok"] = {name: True for name in raw}
        out = {**record, "prediction": prediction, "probe": {"method": probe.method, "clipped": clipped}}
        if record.get("split") == TRAIN:
            out["in_sample"] = True
        return out

    return map_records(records, process, STAGE, summary)
