"""
Correlation with mean opinion scores (MOS): a reward model gives one score per clip, listeners
gave each clip a MOS on one axis (musicality, alignment); the model is good when its scores rank
and track the MOS. CMI-RewardBench reports LCC, SRCC and Kendall's tau on PAM and MusicEval; the
VoiceMOS / AudioMOS challenges report the same figures per clip and per system (the scores
averaged over each system's clips), and MSE.

Conventions
-----------
``mos`` and ``predicted`` are float arrays of one length, finite (a clip without a score is left
out BEFORE calling these). ``systems`` names the system (generator) of each clip. A correlation
is NaN when either array is constant or has fewer than 2 items (no convention value); MSE needs
one item. MSE compares the two on their own scales: it only means something when the model
predicts on the MOS scale (CMI-RewardBench leaves it out for that reason and ranks by SRCC).

Metrics
-------
* :func:`lcc`: linear correlation coefficient, Pearson's r (scipy.stats.pearsonr).
* :func:`srcc`: Spearman's rank correlation, Pearson's r of the average ranks (scipy.stats.spearmanr).
* :func:`kendall_tau`: Kendall's tau-b (scipy.stats.kendalltau; what pandas' ``corr("kendall")``,
  used by CMI-RewardBench's evaluator, computes).
* :func:`mse`: mean squared error, mean (predicted - mos)^2.
* :func:`system_means`: per-system MOS and predicted score (the mean over each system's clips).
* :func:`evaluate`, :func:`evaluate_per_system`: all four, per clip and per system.

Intervals (95 % percentile bootstrap):

* :func:`clip_intervals`: resampling clips (core.metrics.bootstrap.bootstrap_intervals).
* :func:`system_intervals`: resampling systems (their means), leaving out degenerate resamples.
* :func:`clip_comparison`, :func:`system_comparison`: paired bootstrap of two models' scores on the
  same clips / systems.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from mllm.core.metrics.bootstrap import bootstrap_intervals, paired_difference
from mllm.core.metrics.regression import pearson, pearson_vectorised, spearman, spearman_vectorised, validate

__all__ = [
    "METRICS", "lcc", "srcc", "kendall_tau", "mse", "system_means", "evaluate", "evaluate_per_system",
    "VECTORISED", "clip_intervals", "system_intervals", "clip_comparison", "system_comparison",
]

METRICS = ("lcc", "srcc", "kendall_tau", "mse")


def lcc(mos, predicted) -> float:
    """Linear correlation coefficient (Pearson's r, scipy.stats.pearsonr):

        LCC = sum (x - mean x)(y - mean y) / sqrt(sum (x - mean x)^2 * sum (y - mean y)^2)

    Examples
    --------
    >>> round(lcc([1, 2, 3, 4], [2, 4, 6, 9]), 4)
    0.9944
    """
    return pearson(mos, predicted)


def srcc(mos, predicted) -> float:
    """Spearman's rank correlation coefficient (scipy.stats.spearmanr): LCC of the ranks, tied
    values given their average rank.

    Examples
    --------
    >>> srcc([1, 2, 3, 4], [1, 4, 9, 16])
    1.0
    """
    return spearman(mos, predicted)


def kendall_tau(mos, predicted) -> float:
    """Kendall's tau-b (scipy.stats.kendalltau): with P concordant and Q discordant pairs of
    clips, and T, U the pairs tied only in ``mos`` / only in ``predicted``,

        tau_b = (P - Q) / sqrt((P + Q + T) (P + Q + U))

    Examples
    --------
    >>> round(kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]), 4)
    0.6667

    Returns
    -------
    tau : float
        In [-1, 1]; NaN when either array is constant or has fewer than 2 items.
    """
    mos, predicted = validate(mos, predicted)
    if mos.size < 2 or mos.min() == mos.max() or predicted.min() == predicted.max():
        return math.nan
    import scipy.stats

    return float(scipy.stats.kendalltau(mos, predicted).statistic)


def mse(mos, predicted) -> float:
    """Mean squared error, mean (predicted - mos)^2; NaN with no item.

    Examples
    --------
    >>> mse([1, 2, 3], [1, 2, 6])
    3.0
    """
    mos, predicted = validate(mos, predicted)
    return float(np.mean((predicted - mos) ** 2)) if mos.size else math.nan


def system_means(systems: Sequence[str], mos, predicted) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The systems (sorted) and, for each, the mean MOS and the mean predicted score over its clips.

    Examples
    --------
    >>> names, m, p = system_means(["x", "y", "x"], [1.0, 4.0, 3.0], [0.1, 0.9, 0.3])
    >>> names, m.tolist(), [round(float(v), 3) for v in p]
    (['x', 'y'], [2.0, 4.0], [0.2, 0.9])
    """
    mos, predicted = validate(mos, predicted)
    if len(systems) != mos.size:
        raise ValueError(f"{len(systems)} system names for {mos.size} clips")
    names, inverse = np.unique(np.asarray(systems, dtype=str), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(names))
    mean_mos = np.bincount(inverse, weights=mos, minlength=len(names)) / counts
    mean_predicted = np.bincount(inverse, weights=predicted, minlength=len(names)) / counts
    return [str(name) for name in names], mean_mos, mean_predicted


def evaluate(mos, predicted) -> OrderedDict:
    """Per-clip LCC, SRCC, Kendall's tau, MSE and n.

    Examples
    --------
    >>> {k: round(v, 4) for k, v in evaluate([1, 2, 3, 4], [1, 3, 2, 4]).items()}
    {'lcc': 0.8, 'srcc': 0.8, 'kendall_tau': 0.6667, 'mse': 0.5, 'n': 4}
    """
    mos, predicted = validate(mos, predicted)
    return OrderedDict(lcc=lcc(mos, predicted), srcc=srcc(mos, predicted), kendall_tau=kendall_tau(mos, predicted),
                       mse=mse(mos, predicted), n=int(mos.size))


def evaluate_per_system(systems: Sequence[str], mos, predicted) -> OrderedDict:
    """The same four metrics on the per-system means (:func:`system_means`); n = the number of systems."""
    _, mean_mos, mean_predicted = system_means(systems, mos, predicted)
    return evaluate(mean_mos, mean_predicted)


# ---------------------------------------------------------------- vectorised, for the bootstrap


def _kendall_vectorised(mos: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Kendall's tau-b over the last axis, row by row (scipy's kendalltau takes one pair of 1-d
    arrays): (..., n) -> (...)."""
    import scipy.stats

    mos, predicted = np.broadcast_arrays(np.asarray(mos, float), np.asarray(predicted, float))
    out = np.full(mos.shape[:-1], np.nan)
    flat_t, flat_p, flat_out = mos.reshape(-1, mos.shape[-1]), predicted.reshape(-1, mos.shape[-1]), out.reshape(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant resample: NaN, counted by the caller
        for row in range(flat_t.shape[0]):
            flat_out[row] = scipy.stats.kendalltau(flat_t[row], flat_p[row]).statistic
    return out


def _mse_vectorised(mos: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return np.mean((np.asarray(predicted, float) - mos) ** 2, axis=-1)


VECTORISED: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "lcc": pearson_vectorised,
    "srcc": spearman_vectorised,
    "kendall_tau": _kendall_vectorised,
    "mse": _mse_vectorised,
}


def _all_metrics(mos: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The four metrics over the last axis, stacked: (..., n) -> (4, ...)."""
    return np.stack([VECTORISED[name](mos, predicted) for name in METRICS])


def _entries(values, lows, highs) -> OrderedDict:
    return OrderedDict((name, {"value": float(v), "low": float(lo), "high": float(hi)})
                       for name, v, lo, hi in zip(METRICS, values, lows, highs))


def clip_intervals(mos, predicted, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> OrderedDict:
    """Per-clip metrics with percentile bootstrap intervals, resampling clips (one shared set of
    resamples for the four; core.metrics.bootstrap.bootstrap_intervals, whose rules apply: an
    interval is NaN when some resample is constant or with fewer than 2 clips).

    Returns
    -------
    entries : OrderedDict
        metric -> {"value", "low", "high"}.
    """
    mos, predicted = validate(mos, predicted)
    with np.errstate(all="ignore"):
        values = [evaluate(mos, predicted)[name] for name in METRICS]
    if n_resamples < 1:
        return _entries(values, [math.nan] * 4, [math.nan] * 4)
    intervals = bootstrap_intervals(_all_metrics, (mos, predicted), n_resamples=n_resamples,
                                    confidence=confidence, seed=seed)
    return _entries(values, [i.low for i in intervals], [i.high for i in intervals])


def _system_resamples(k: int, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_resamples, k) indices of systems drawn with replacement (numpy's default generator), and
    per resample whether it holds fewer than 3 distinct systems (a degenerate resample)."""
    index = np.random.default_rng(seed).integers(0, k, (n_resamples, k))
    ordered = np.sort(index, axis=1)
    distinct = 1 + (np.diff(ordered, axis=1) != 0).sum(axis=1)
    return index, distinct < 3


def _mask_degenerate(name: str, values: np.ndarray, degenerate: np.ndarray) -> np.ndarray:
    """A correlation of a degenerate resample is NaN (MSE is kept)."""
    return values if name == "mse" else np.where(degenerate, np.nan, values)


def _finite_interval(distribution: np.ndarray, confidence: float) -> tuple[float, float, int]:
    """Percentile interval of the finite values of a bootstrap distribution, and how many there
    were; (nan, nan) with fewer than 2 finite values or no spread. "No spread" allows for rounding:
    the same ranking gives Kendall's tau 1.0 on one resample and 0.9999999999999998 on another, and
    that is no spread (SRCC, computed otherwise, gives exactly 1.0 on both and was NaN already)."""
    finite = distribution[np.isfinite(distribution)]
    if finite.size < 2 or np.isclose(finite.min(), finite.max(), rtol=1e-12, atol=1e-12):
        return math.nan, math.nan, int(finite.size)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high), int(finite.size)


def system_intervals(systems: Sequence[str], mos, predicted, *, n_resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> OrderedDict:
    """Per-system metrics (on the system means) with percentile bootstrap intervals, resampling
    SYSTEMS with replacement: the spread says how much the figure depends on which systems were
    in the test, which is what a per-system figure claims to measure.

    Written here rather than through bootstrap_intervals, whose interval is NaN as soon as one
    resample is: with k systems a resample draws a single system k times with probability
    k^(1-k) (1.6 % for k = 4), and a resample of 2 distinct systems gives a correlation of +-1 or
    NaN whatever the model. Resamples of fewer than 3 distinct systems (and any other with a NaN
    metric) are left out of the correlations' intervals, and the number of resamples used is given
    (``n_resamples_used``): the interval is conditional on a resample that can show a correlation.
    With fewer than 3 systems every interval is NaN. With few systems the interval is wide, as it
    should be: 4 systems cannot pin a per-system correlation down.

    Returns
    -------
    entries : OrderedDict
        metric -> {"value", "low", "high", "n_resamples_used"}.
    """
    _, mean_mos, mean_predicted = system_means(systems, mos, predicted)
    k = mean_mos.size
    with np.errstate(all="ignore"):
        values = [evaluate(mean_mos, mean_predicted)[name] for name in METRICS]
    out = _entries(values, [math.nan] * 4, [math.nan] * 4)
    for entry in out.values():
        entry["n_resamples_used"] = 0
    if k < 3 or n_resamples < 1:
        return out
    index, degenerate = _system_resamples(k, n_resamples, seed)
    with np.errstate(all="ignore"):
        distribution = _all_metrics(mean_mos[index], mean_predicted[index])  # (4, n_resamples)
    for name, row in zip(METRICS, distribution):
        row = _mask_degenerate(name, row, degenerate)
        out[name]["low"], out[name]["high"], out[name]["n_resamples_used"] = _finite_interval(row, confidence)
    return out


def clip_comparison(mos, predicted_a, predicted_b, *, n_resamples: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> OrderedDict:
    """Paired bootstrap of model A against model B on the same clips, per metric: the values of
    both, the difference A - B, its interval and p-value (core.metrics.bootstrap.paired_difference;
    one set of resampled clips for both models). For MSE a negative difference favours A."""
    mos, predicted_a = validate(mos, predicted_a)
    _, predicted_b = validate(mos, predicted_b)
    out = OrderedDict()
    for name in METRICS:
        statistic = VECTORISED[name]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = float(statistic(mos, predicted_a)), float(statistic(mos, predicted_b))
            test = paired_difference(statistic, (mos, predicted_a), (mos, predicted_b), n_resamples=n_resamples,
                                     confidence=confidence, seed=seed)
        out[name] = {"a": a, "b": b, **test}
    return out


def system_comparison(systems: Sequence[str], mos, predicted_a, predicted_b, *, n_resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> OrderedDict:
    """Paired bootstrap of two models' per-system metrics, resampling systems (the same systems
    for both); degenerate resamples are left out as in :func:`system_intervals`. The p-value is
    two-sided, min(1, 2 min(P(d* <= 0), P(d* >= 0))) over the resamples used."""
    _, mean_mos, mean_a = system_means(systems, mos, predicted_a)
    _, _, mean_b = system_means(systems, mos, predicted_b)
    k = mean_mos.size
    with np.errstate(all="ignore"):
        values_a, values_b = evaluate(mean_mos, mean_a), evaluate(mean_mos, mean_b)
    out = OrderedDict()
    index, degenerate = _system_resamples(k, n_resamples, seed) if k >= 3 and n_resamples >= 1 else (None, None)
    for name in METRICS:
        a, b = float(values_a[name]), float(values_b[name])
        entry = {"a": a, "b": b, "difference": a - b, "low": math.nan, "high": math.nan, "p_value": math.nan,
                 "n_resamples": n_resamples, "confidence": confidence, "n_resamples_used": 0}
        if index is not None:
            statistic = VECTORISED[name]
            with np.errstate(all="ignore"):
                d = statistic(mean_mos[index], mean_a[index]) - statistic(mean_mos[index], mean_b[index])
            d = _mask_degenerate(name, d, degenerate)
            finite = d[np.isfinite(d)]
            entry["n_resamples_used"] = int(finite.size)
            if finite.size >= 2:  # a zero-width interval is kept: the two scored alike on every resample
                alpha = (1 - confidence) / 2
                entry["low"], entry["high"] = (float(q) for q in np.quantile(finite, [alpha, 1 - alpha]))
                entry["p_value"] = float(min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))))
        out[name] = entry
    return out
