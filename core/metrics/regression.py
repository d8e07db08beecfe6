"""
Regression: predict a number per item (arousal and valence on a 1-9 scale, danceability, a
z-scored emotion value). The predictions are compared with the reference values over the corpus
by error (RMSE, MAE), explained variance (R2) and agreement (Pearson, Spearman, Lin's CCC).

Conventions
-----------
``y_true`` and ``y_pred`` are float arrays of equal length, finite (an unparsed answer is left
out BEFORE calling these; it is never replaced by a guess). A metric that is undefined on the
data returns NaN instead of a convention value: Pearson and Spearman when either array is
constant, R2 when ``y_true`` is constant (scikit-learn would report 0.0 or 1.0 there, or a
meaningless huge number when rounding makes the variance 1e-34 instead of 0), CCC when both
arrays are the same constant. All need at least 2 items, else NaN (RMSE and MAE need 1).

Metrics
-------
* :func:`r2`: coefficient of determination, 1 - SS_res / SS_tot (sklearn.metrics.r2_score).
* :func:`rmse`: root mean squared error.
* :func:`mae`: mean absolute error.
* :func:`pearson`: Pearson's r (scipy.stats.pearsonr).
* :func:`spearman`: Spearman's rho, Pearson's r of the average ranks (scipy.stats.spearmanr).
* :func:`ccc`: Lin's concordance correlation coefficient (population moments).
* :func:`evaluate`: all six.

For the bootstrap (core.metrics.bootstrap):

* :data:`VECTORISED`: the six metrics over the LAST axis of arrays with leading batch axes
  (``*_vectorised`` functions); Spearman sorts every row, slow on large resamples.
* :func:`statistics_over_items`: the six as statistics of item indices, with an exact Spearman
  of a resample that needs no sorting (the ranks follow from the original order and the counts).
* :func:`metrics_over_items`: all six as one statistic of item indices, (6, ...) in the order
  of :data:`METRICS`, for bootstrap_intervals: the fastest way to bootstrap them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# scipy.stats (pearsonr, spearmanr, rankdata) is imported in the functions that call it: it takes
# ~1.5 s to import, and eval-mir's corpus statistics (metrics_over_items) do not need it.

__all__ = [
    "validate", "r2", "rmse", "mae", "pearson", "spearman", "ccc", "evaluate",
    "r2_vectorised", "rmse_vectorised", "mae_vectorised", "pearson_vectorised", "spearman_vectorised",
    "ccc_vectorised", "VECTORISED", "statistics_over_items", "METRICS", "metrics_over_items",
]


def validate(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Return both as 1-d float arrays; raise ValueError if shapes differ or a value is not finite."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-d arrays of equal length")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise ValueError("y_true and y_pred must be finite (leave unparsed answers out)")
    return y_true, y_pred


def _constant(x: np.ndarray) -> bool:
    return bool(x.size == 0 or x.min() == x.max())


def r2(y_true, y_pred) -> float:
    """Coefficient of determination, sklearn.metrics.r2_score:

        R2 = 1 - sum (y_true - y_pred)^2 / sum (y_true - mean(y_true))^2

    1 for a perfect prediction, 0 for predicting the mean, negative when worse; NaN when
    ``y_true`` is constant or has fewer than 2 items.

    Examples
    --------
    >>> r2([1, 2, 3, 4], [1, 2, 3, 5])
    0.8

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)

    Returns
    -------
    r2 : float
    """
    y_true, y_pred = validate(y_true, y_pred)
    if y_true.size < 2 or _constant(y_true):
        return math.nan
    from sklearn.metrics import r2_score  # here, not at the top: scikit-learn takes ~1 s to import and eval-mir's
    # corpus statistics (metrics_over_items) do not need it

    return float(r2_score(y_true, y_pred))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error, sqrt(mean((y_pred - y_true)^2)), in the units of the scale.

    Examples
    --------
    >>> rmse([1, 2, 3, 4], [1, 2, 3, 6])
    1.0

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)

    Returns
    -------
    rmse : float
        NaN for no items.
    """
    y_true, y_pred = validate(y_true, y_pred)
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2))) if y_true.size else math.nan


def mae(y_true, y_pred) -> float:
    """Mean absolute error, mean(|y_pred - y_true|), in the units of the scale.

    Examples
    --------
    >>> mae([1, 2, 3, 4], [1, 2, 3, 6])
    0.5

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)

    Returns
    -------
    mae : float
        NaN for no items.
    """
    y_true, y_pred = validate(y_true, y_pred)
    return float(np.mean(np.abs(y_pred - y_true))) if y_true.size else math.nan


def pearson(y_true, y_pred) -> float:
    """Pearson's correlation coefficient r (scipy.stats.pearsonr):

        r = sum (x - mean x)(y - mean y) / sqrt(sum (x - mean x)^2 * sum (y - mean y)^2)

    NaN when either array is constant (checked first, so scipy's warning is not raised).

    Examples
    --------
    >>> round(pearson([1, 2, 3], [2, 4, 6]), 12)
    1.0

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)

    Returns
    -------
    r : float
        In [-1, 1], or NaN.
    """
    y_true, y_pred = validate(y_true, y_pred)
    if y_true.size < 2 or _constant(y_true) or _constant(y_pred):
        return math.nan
    import scipy.stats

    return float(scipy.stats.pearsonr(y_true, y_pred).statistic)


def spearman(y_true, y_pred) -> float:
    """Spearman's rank correlation rho (scipy.stats.spearmanr): Pearson's r of the ranks, ties
    given their average rank. NaN when either array is constant.

    Examples
    --------
    >>> spearman([1, 2, 3, 4], [1, 4, 9, 16])
    1.0

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)

    Returns
    -------
    rho : float
        In [-1, 1], or NaN.
    """
    y_true, y_pred = validate(y_true, y_pred)
    if y_true.size < 2 or _constant(y_true) or _constant(y_pred):
        return math.nan
    import scipy.stats

    return float(scipy.stats.spearmanr(y_true, y_pred).statistic)


def ccc(y_true, y_pred) -> float:
    """Lin's concordance correlation coefficient, with population (1/n) moments:

        CCC = 2 cov(x, y) / (var(x) + var(y) + (mean x - mean y)^2)

    1 only when y_pred == y_true; it is Pearson's r scaled down by any shift or change of scale.
    NaN when both arrays are the same constant (0 / 0). Written by hand: numpy, scipy and
    scikit-learn have no CCC.

    Examples
    --------
    >>> ccc([1, 2, 3, 4], [2, 3, 4, 5])   # cov 1.25, var 1.25 and 1.25, mean shift 1
    0.7142857142857143

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)

    Returns
    -------
    ccc : float
        In [-1, 1], or NaN.
    """
    y_true, y_pred = validate(y_true, y_pred)
    if y_true.size < 2:
        return math.nan
    return float(ccc_vectorised(y_true, y_pred))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """All regression metrics: ``{"r2", "rmse", "mae", "pearson", "spearman", "ccc"}``.

    Examples
    --------
    >>> evaluate([1, 2, 3, 4], [1, 2, 3, 4])["ccc"]
    1.0
    """
    y_true, y_pred = validate(y_true, y_pred)
    return {
        "r2": r2(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
        "pearson": pearson(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "ccc": ccc(y_true, y_pred),
    }


# ---------------------------------------------------------------- vectorised over the last axis
# Each takes y_true, y_pred of shape (..., n) and returns (...): one value per batch row, the same
# value (up to rounding) as the scalar function of that row. Used by bootstrap_interval.


def _centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., n) -> mean (...), deviations (..., n), constant (...) bool.

    A constant row gets its value as mean and exact zero deviations: x.mean() of n copies of v is
    not always v in floating point, and a variance of 1e-34 instead of 0 would turn a correlation
    of a constant row into noise instead of NaN.
    """
    constant = x.min(axis=-1) == x.max(axis=-1)
    mean = np.where(constant, x[..., 0], x.mean(axis=-1))
    deviation = np.where(constant[..., None], 0.0, x - mean[..., None])
    return mean, deviation, constant


# The metrics from per-row sums, shared by the single metrics and metrics_over_items:
# sse = sum (p - t)^2, stt = sum dt^2, spp = sum dp^2, stp = sum dt dp (d: deviation from the row mean).


def _r2_from(sse, stt, constant_t):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(constant_t, np.nan, 1.0 - sse / stt)


def _correlation_from(stp, stt, spp, undefined):
    with np.errstate(invalid="ignore", divide="ignore"):
        r = stp / np.sqrt(stt * spp)
    return np.where(undefined, np.nan, np.clip(r, -1.0, 1.0))


def _ccc_from(stp, stt, spp, mean_t, mean_p, n):
    denominator = stt / n + spp / n + (mean_t - mean_p) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * (stp / n) / np.where(denominator > 0, denominator, 1.0), np.nan)


def r2_vectorised(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """R2 over the last axis (see :func:`r2`)."""
    y_true = np.asarray(y_true, float)
    _, dt, constant = _centred(y_true)
    sse = ((y_true - y_pred) ** 2).sum(axis=-1)
    return _r2_from(sse, (dt * dt).sum(axis=-1), constant)


def rmse_vectorised(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """RMSE over the last axis."""
    return np.sqrt(((np.asarray(y_pred, float) - y_true) ** 2).mean(axis=-1))


def mae_vectorised(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """MAE over the last axis."""
    return np.abs(np.asarray(y_pred, float) - y_true).mean(axis=-1)


def pearson_vectorised(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson's r over the last axis; NaN for rows where either is constant."""
    _, dt, constant_t = _centred(np.asarray(y_true, float))
    _, dp, constant_p = _centred(np.asarray(y_pred, float))
    sums = (dt * dp).sum(axis=-1), (dt * dt).sum(axis=-1), (dp * dp).sum(axis=-1)
    return _correlation_from(*sums, constant_t | constant_p)


def spearman_vectorised(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Spearman's rho over the last axis (average ranks per row, then Pearson's r).

    Sorts every row: O(n log n) per row. For bootstrap resamples of one sample,
    :func:`statistics_over_items` has an O(n) exact version.
    """
    import scipy.stats

    ranks_t = scipy.stats.rankdata(y_true, axis=-1)
    ranks_p = scipy.stats.rankdata(y_pred, axis=-1)
    return pearson_vectorised(ranks_t, ranks_p)


def ccc_vectorised(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Lin's CCC over the last axis (population moments); NaN where both rows are the same constant."""
    mean_t, dt, _ = _centred(np.asarray(y_true, float))
    mean_p, dp, _ = _centred(np.asarray(y_pred, float))
    sums = (dt * dp).sum(axis=-1), (dt * dt).sum(axis=-1), (dp * dp).sum(axis=-1)
    return _ccc_from(*sums, mean_t, mean_p, dt.shape[-1])


VECTORISED: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "r2": r2_vectorised,
    "rmse": rmse_vectorised,
    "mae": mae_vectorised,
    "pearson": pearson_vectorised,
    "spearman": spearman_vectorised,
    "ccc": ccc_vectorised,
}


# ---------------------------------------------------------------- statistics of item indices


class _TieBlocks:
    """One sample's values grouped into runs of equal values in sorted order (tie blocks).

    ``block[j]`` is the tie block of item j, blocks numbered in increasing value. A resample is
    described by how many copies of each block it holds, ``c`` (B, n_blocks); its average ranks
    follow without sorting: a value of block b ranks after the ``sum(c[:b])`` smaller values and
    shares ``c[b]`` positions, so its average rank is ``sum(c[:b]) + (c[b] + 1) / 2`` (exactly what
    scipy.stats.rankdata(method="average") gives on the resampled values).
    """

    def __init__(self, values: np.ndarray):
        self.unique, self.block = np.unique(values, return_inverse=True)  # block: (n,) in [0, n_blocks)
        self.block = self.block.ravel()
        self.n_blocks = self.unique.size

    def centred_block_ranks(self, counts: np.ndarray, m: int) -> np.ndarray:
        """Block counts (B, n_blocks) of resamples of m values -> their average ranks minus the
        mean rank (m + 1) / 2, per block: sum(c[:b]) + (c[b] + 1) / 2 - (m + 1) / 2, which is
        cumsum(c)[b] - c[b] / 2 - m / 2."""
        block_rank = np.cumsum(counts, axis=1)
        block_rank -= 0.5 * counts
        block_rank -= 0.5 * m
        return block_rank

    def centred_ranks(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """index (B, m) -> ranks of the resampled values minus their mean (m + 1) / 2, (B, m);
        the per-block centred ranks (B, n_blocks) and block counts (B, n_blocks)."""
        b, m = index.shape
        flat = self.block[index]  # (B, m) block of each resampled value
        flat += (np.arange(b) * self.n_blocks)[:, None]  # ... numbered per row: row r uses [r*nb, (r+1)*nb)
        counts = np.bincount(flat.ravel(), minlength=b * self.n_blocks).astype(float)
        counts = counts.reshape(b, self.n_blocks)  # (B, n_blocks) copies of each block
        block_rank = self.centred_block_ranks(counts, m)  # (B, n_blocks)
        ranks = block_rank.ravel()[flat]  # (B, m)
        return ranks, block_rank, counts


def _spearman_of_indices(blocks_t: _TieBlocks, blocks_p: _TieBlocks, index: np.ndarray) -> np.ndarray:
    """Spearman's rho of the resamples y[index] for index (B, m), in O(B m) without sorting."""
    m = index.shape[1]
    ranks_t, block_rank_t, counts_t = blocks_t.centred_ranks(index)
    ranks_p, block_rank_p, counts_p = blocks_p.centred_ranks(index)
    sxy = np.einsum("ij,ij->i", ranks_t, ranks_p)
    sxx = (counts_t * block_rank_t**2).sum(axis=1)  # sum over the resample, by block
    syy = (counts_p * block_rank_p**2).sum(axis=1)
    constant = (counts_t.max(axis=1) == m) | (counts_p.max(axis=1) == m)  # one block holds every value
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = sxy / np.sqrt(sxx * syy)
    return np.where(constant, np.nan, np.clip(rho, -1.0, 1.0))


def statistics_over_items(y_true, y_pred) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The regression metrics as statistics of item indices, for bootstrap_interval.

    Each statistic maps an index array (..., m) into ``range(n)`` to the metric of
    ``y_true[index], y_pred[index]`` per row, shape (...). Use as
    ``bootstrap_interval(stats["spearman"], (np.arange(n),))``. Spearman does not sort the
    resamples: the ranks of a resample follow from the original order of the values and the
    resample's counts (see ``_TieBlocks``), O(m) per resample instead of O(m log m).

    Examples
    --------
    >>> stats = statistics_over_items([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    >>> float(stats["spearman"](np.array([0, 1, 2, 3])))
    0.8

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)
        Finite values.

    Returns
    -------
    statistics : dict
        metric name -> statistic(index) for r2, rmse, mae, pearson, spearman, ccc.
    """
    y_true, y_pred = validate(y_true, y_pred)

    def gathered(function):
        return lambda index: function(y_true[index], y_pred[index])

    statistics = {name: gathered(function) for name, function in VECTORISED.items()}
    blocks_t, blocks_p = _TieBlocks(y_true), _TieBlocks(y_pred)

    def spearman_statistic(index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        rows = index.reshape(-1, index.shape[-1])  # (B, m)
        return _spearman_of_indices(blocks_t, blocks_p, rows).reshape(index.shape[:-1])

    statistics["spearman"] = spearman_statistic
    return statistics


METRICS = ("r2", "rmse", "mae", "pearson", "spearman", "ccc")


# Bootstrap sums: the numpy version below for small samples, the compiled one
# (regression_compiled.resample_sums, one pass per resample, 15-20x faster) from this many items.
# Importing numba and loading the compiled kernel from its cache cost 0.6-0.9 s per process, what
# the numpy version takes for 1000 resamples of about this many items (0.3 s at 2,000, 0.9 s at
# 10,000 on a 2-core AMD EPYC Zen 4 VM), so a small evaluation starts fast and a large one runs fast.
COMPILED_FROM_ITEMS = 10_000


def _resample_sums_numpy(index, ct, cp, abs_error, blocks_t: _TieBlocks, blocks_p: _TieBlocks):
    """regression_compiled._resample_sums computed with numpy: index (B, m) -> sums (B, 10) in the
    order of regression_compiled.SUMS and the tie block holding all m values (B, 2), -1 if none."""
    m = index.shape[1]
    t, p, e = ct[index], cp[index], abs_error[index]  # (B, m)
    ranks_t, block_rank_t, counts_t = blocks_t.centred_ranks(index)
    ranks_p, block_rank_p, counts_p = blocks_p.centred_ranks(index)
    sums = np.stack([
        t.sum(axis=1), p.sum(axis=1), np.einsum("ij,ij->i", t, t), np.einsum("ij,ij->i", p, p),
        np.einsum("ij,ij->i", t, p), e.sum(axis=1), np.einsum("ij,ij->i", e, e),
        np.einsum("ij,ij->i", ranks_t, ranks_p),
        (counts_t * block_rank_t**2).sum(axis=1), (counts_p * block_rank_p**2).sum(axis=1),
    ], axis=1)
    modes = np.stack([np.where(counts.max(axis=1) == m, counts.argmax(axis=1), -1)
                      for counts in (counts_t, counts_p)], axis=1)
    return sums, modes


def metrics_over_items(y_true, y_pred) -> Callable[[np.ndarray], np.ndarray]:
    """All six metrics as ONE statistic of item indices, for bootstrap.bootstrap_intervals.

    ``statistic(index)`` maps an index array (..., m) to an array (6, ...) holding, in the order
    of :data:`METRICS`, the metrics of ``y_true[index], y_pred[index]`` per row. One bootstrap
    then serves all six (same resamples for the same seed, so the same intervals as six
    bootstraps of :func:`statistics_over_items`).

    A resample is reduced to how many copies of each item it holds, as the classification
    statistics do; every sum the six metrics need (of t, p, t^2, p^2, t p, |p - t|, (p - t)^2,
    with t and p centred on the whole sample's means so that the variances lose no digits) is
    then the copies times the item's values, and Spearman's ranks follow from the same copies
    grouped by tie block (``_TieBlocks``): three passes over the items per resample (the compiled
    ``regression_compiled._resample_sums``, from COMPILED_FROM_ITEMS items; numpy's version below
    that) instead of about thirty over the resampled values.

    Examples
    --------
    >>> statistic = metrics_over_items([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    >>> dict(zip(METRICS, statistic(np.arange(4)).round(3).tolist()))["spearman"]
    0.8

    Parameters
    ----------
    y_true, y_pred : array-like, shape=(n,)
        Finite values.

    Returns
    -------
    statistic : callable
        index (..., m) -> (6, ...).
    """
    y_true, y_pred = validate(y_true, y_pred)
    n = y_true.size
    blocks_t, blocks_p = _TieBlocks(y_true), _TieBlocks(y_pred)
    centre_t = float(y_true.mean()) if n else 0.0
    centre_p = float(y_pred.mean()) if n else 0.0
    ct, cp, abs_error = y_true - centre_t, y_pred - centre_p, np.abs(y_pred - y_true)

    def statistic(index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        rows = np.ascontiguousarray(index.reshape(-1, index.shape[-1]), dtype=np.int64)  # (B, m)
        m = rows.shape[1]
        if n >= COMPILED_FROM_ITEMS:
            from mllm.core.metrics.regression_compiled import resample_sums

            sums, modes = resample_sums(rows, ct, cp, abs_error, blocks_t.block, blocks_t.n_blocks,
                                        blocks_p.block, blocks_p.n_blocks)
        else:
            sums, modes = _resample_sums_numpy(rows, ct, cp, abs_error, blocks_t, blocks_p)
        s_t, s_p, s_tt, s_pp, s_tp, sae, sse, sxy, sxx, syy = sums.T
        # A constant row (one tie block holds all m values) gets its value as mean and exact zero
        # deviations, as _centred gives it (a variance of 1e-34 instead of 0 is no NaN).
        constant_t, constant_p = modes[:, 0] >= 0, modes[:, 1] >= 0
        mean_t = np.where(constant_t, blocks_t.unique[np.maximum(modes[:, 0], 0)], centre_t + s_t / m)
        mean_p = np.where(constant_p, blocks_p.unique[np.maximum(modes[:, 1], 0)], centre_p + s_p / m)
        stt = np.where(constant_t, 0.0, s_tt - s_t * s_t / m)
        spp = np.where(constant_p, 0.0, s_pp - s_p * s_p / m)
        stp = np.where(constant_t | constant_p, 0.0, s_tp - s_t * s_p / m)
        out = np.stack([
            _r2_from(sse, stt, constant_t),
            np.sqrt(sse / m),
            sae / m,
            _correlation_from(stp, stt, spp, constant_t | constant_p),
            _correlation_from(sxy, sxx, syy, constant_t | constant_p),  # Spearman: Pearson's r of the ranks
            _ccc_from(stp, stt, spp, mean_t, mean_p, m),
        ])  # (6, B)
        return out.reshape((len(METRICS), *index.shape[:-1]))

    return statistic
