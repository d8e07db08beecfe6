"""
Classification (one label per item: genre, mood class, instrument family) and tagging (any number
of labels per item: MTG-Jamendo tags, instruments). Thin, documented wrappers around
scikit-learn's metrics with the conventions an LLM answer needs.

Conventions
-----------
Single-label: references are label strings; an estimate is a label string or ``None`` when the
answer named no label. ``None`` (and a string outside the label set) counts as wrong: a miss
for the reference class, never a hit. Precision/recall/F1 are macro averages over the given label
set, with 0 for a label whose value is undefined (scikit-learn ``zero_division=0``).

Multi-label: ``y_true`` and ``y_pred`` are (n_items, n_labels) 0/1 arrays; ``y_score``
(optional) holds a score per item and label (higher = more likely). Ranking metrics need both
classes in a label's column of ``y_true``; labels without both are skipped and counted.

Metrics
-------
* :func:`accuracy`: fraction of items whose estimate equals the reference.
* :func:`single_label_report`: accuracy, macro precision/recall/F1, number of unanswered items.
* :func:`multilabel_report`: precision/recall/F1 (micro, macro, samples); ROC-AUC and PR-AUC
  (average precision) from scores, or from the 0/1 predictions under ``*_binary`` keys.

Statistics of item indices (for core.metrics.bootstrap)
-------------------------------------------------------
The same figures as the reports, computed for many resamples at once: a statistic maps an index
array (..., m) into range(n) to the metric of the items ``index`` per row, shape (...), equal (to
rounding) to the report of those items. A resample is described by how many copies of each item it
holds (counts (n, B)); every sklearn count (TP/FP/FN per label, per item, pooled) is then a sparse
product of a fixed 0/1 design matrix with the counts, with no per-resample call into sklearn.

* :func:`single_label_statistics`, :func:`single_label_metrics_over_items`
* :func:`multilabel_statistics`, :func:`multilabel_metrics_over_items`

``*_statistics`` give one statistic per metric (for bootstrap_interval); ``*_metrics_over_items``
give all metrics as one statistic (k, ...) for bootstrap_intervals, which draws the resamples once
for all of them: use it when every metric needs an interval (the drawing alone costs about as much
as the statistics).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse

# The reports (*_report) are scikit-learn's metrics and import it where they call it: sklearn.metrics
# takes about 0.8 s to import, and eval-mir needs only the statistics (*_statistics,
# *_metrics_over_items), which compute the same values from counts (tested equal to sklearn).

__all__ = [
    "accuracy", "single_label_report", "multilabel_report",
    "SINGLE_LABEL_METRICS", "MULTILABEL_METRICS", "RANKING_METRICS", "BINARY_RANKING_METRICS",
    "multilabel_metric_names", "single_label_statistics", "single_label_metrics_over_items",
    "multilabel_statistics", "multilabel_metrics_over_items",
]


def accuracy(references: Sequence[str], estimates: Sequence[str | None]) -> float:
    """Fraction of items whose estimate equals the reference; ``None`` is wrong.

    Examples
    --------
    >>> accuracy(["rock", "jazz", "pop"], ["rock", None, "rock"])
    0.3333333333333333

    Parameters
    ----------
    references : sequence of str
    estimates : sequence of str or None

    Returns
    -------
    accuracy : float
        In [0, 1]; nan for no items.
    """
    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} references but {len(estimates)} estimates")
    if len(references) == 0:
        return math.nan
    return sum(e is not None and e == r for r, e in zip(references, estimates)) / len(references)


def single_label_report(references: Sequence[str], estimates: Sequence[str | None], labels: Sequence[str]) -> dict:
    """Accuracy and macro-averaged precision, recall and F1 (sklearn) of single-label answers.

    ``precision_macro`` = mean over ``labels`` of TP / (TP + FP), ``recall_macro`` of TP / (TP + FN),
    ``f1_macro`` of the per-label F1 (not the F1 of the macro precision and recall); an undefined
    ratio counts 0. An unanswered item (``None``) or an estimate outside ``labels`` adds a false
    negative to its reference class and a false positive to no class.

    The average is over the DECLARED label set, every label of it, whether or not the items
    contain it: a label that is only ever answered (never a reference) has precision 0 and pulls
    the averages down. Averaging over the labels seen in the references instead leaves out every
    such false positive. A reference outside ``labels`` counts for ``accuracy`` (right only if the
    estimate is the same string) and for no label's average (sklearn's ``labels=`` rule).

    Examples
    --------
    >>> report = single_label_report(["a", "a", "b"], ["a", None, "b"], labels=["a", "b"])
    >>> report["accuracy"], report["recall_macro"], report["n_unanswered"]
    (0.6666666666666666, 0.75, 1)

    "metal" is declared and answered once, wrongly: its precision 0 enters the average.

    >>> report = single_label_report(["rock", "jazz", "rock"], ["metal", "jazz", "rock"], ["rock", "jazz", "metal"])
    >>> [round(report[m], 3) for m in ("precision_macro", "recall_macro", "f1_macro")]
    [0.667, 0.5, 0.556]

    Parameters
    ----------
    references : sequence of str
    estimates : sequence of str or None
    labels : sequence of str
        The declared label set to average over (no repeats).

    Returns
    -------
    report : dict
        ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro`` (floats), ``n`` and
        ``n_unanswered`` (ints).
    """
    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} references but {len(estimates)} estimates")
    labels = _label_list(labels)
    n = len(references)
    n_unanswered = sum(e is None for e in estimates)
    if n == 0:
        nan = math.nan
        metrics = {name: nan for name in ("accuracy", "precision_macro", "recall_macro", "f1_macro")}
        return {**metrics, "n": 0, "n_unanswered": 0}
    # None becomes a string no label equals: sklearn then counts the miss (FN) and no false positive.
    missing = "\x00unanswered"
    y_pred = np.asarray([missing if e is None else e for e in estimates], dtype=object)
    y_true = np.asarray(references, dtype=object)
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, _support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "n": n,
        "n_unanswered": int(n_unanswered),
    }


def _label_list(labels: Sequence[str]) -> list[str]:
    labels = list(labels)
    if len(set(labels)) != len(labels):
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        raise ValueError(f"labels must not repeat, got {repeated} more than once")
    return labels


def _validate_multilabel(y_true, y_pred, y_score):
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 2 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal (n_items, n_labels) arrays")
    for name, array in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1")
    if y_score is not None:
        y_score = np.asarray(y_score, dtype=float)
        if y_score.shape != y_true.shape or not np.isfinite(y_score).all():
            raise ValueError(f"y_score must be a finite array of shape {y_true.shape}")
    return y_true.astype(int), y_pred.astype(int), y_score


def _ranking_scores(y_true: np.ndarray, y_score: np.ndarray) -> tuple[float, float, int, int]:
    """Macro ROC-AUC and average precision over the labels whose column holds both classes."""
    positives = y_true.sum(axis=0)
    usable = (positives > 0) & (positives < y_true.shape[0])  # (n_labels,)
    n_usable = int(usable.sum())
    if n_usable == 0:
        return math.nan, math.nan, 0, int(usable.size)
    t, s = y_true[:, usable], y_score[:, usable]
    from sklearn.metrics import average_precision_score, roc_auc_score

    roc = roc_auc_score(t, s, average="macro")
    pr = average_precision_score(t, s, average="macro")
    return float(roc), float(pr), n_usable, int(usable.size - n_usable)


def multilabel_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> dict:
    """Tagging metrics (sklearn, ``zero_division=0``) of 0/1 predictions, and ranking metrics.

    ``precision_micro``/``recall_micro``/``f1_micro`` pool the (item, label) decisions;
    ``*_macro`` average the per-label values; ``*_samples`` average the per-item values.

    With ``y_score``: ``roc_auc`` (ROC-AUC) and ``pr_auc`` (average precision), macro over the
    labels whose ``y_true`` column has both classes. Without it: ``roc_auc_binary`` and
    ``pr_auc_binary``, the same computed on the 0/1 predictions, which is what CMI-Bench reports
    for LLM answers. With 0/1 "scores" the ROC curve has one operating point, so ``roc_auc_binary``
    is the label's balanced accuracy (TPR + TNR) / 2 and ``pr_auc_binary`` is
    precision x recall + (1 - recall) x prevalence; neither is comparable with a score-based AUC.
    ``n_labels_ranked`` and ``n_labels_skipped`` say how many labels entered the AUC average.

    Examples
    --------
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1]])
    >>> y_pred = np.array([[1, 0], [0, 0], [1, 1]])
    >>> report = multilabel_report(y_true, y_pred)
    >>> report["precision_micro"], report["recall_micro"]
    (1.0, 0.75)

    Parameters
    ----------
    y_true, y_pred : np.ndarray, shape=(n_items, n_labels)
        0/1 reference and predicted label indicators.
    y_score : np.ndarray, shape=(n_items, n_labels), optional
        Scores for the ranking metrics.
    labels : sequence of str, optional
        Column names; when given, the report carries them under ``labels``.

    Returns
    -------
    report : dict
        The float metrics above, and the ints ``n_items``, ``n_labels``, ``n_labels_ranked``,
        ``n_labels_skipped`` (and ``labels`` when given).
    """
    y_true, y_pred, y_score = _validate_multilabel(y_true, y_pred, y_score)
    if labels is not None and len(labels) != y_true.shape[1]:
        raise ValueError(f"{len(labels)} label names for {y_true.shape[1]} columns")
    report: dict = {}
    from sklearn.metrics import precision_recall_fscore_support

    for average in ("micro", "macro", "samples"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        report[f"precision_{average}"] = float(precision)
        report[f"recall_{average}"] = float(recall)
        report[f"f1_{average}"] = float(f1)
    if y_score is not None:
        roc, pr, ranked, skipped = _ranking_scores(y_true, y_score)
        report["roc_auc"], report["pr_auc"] = roc, pr
    else:
        roc, pr, ranked, skipped = _ranking_scores(y_true, y_pred.astype(float))
        report["roc_auc_binary"], report["pr_auc_binary"] = roc, pr
    report["n_items"], report["n_labels"] = int(y_true.shape[0]), int(y_true.shape[1])
    report["n_labels_ranked"], report["n_labels_skipped"] = ranked, skipped
    if labels is not None:
        report["labels"] = list(labels)
    return report


# ---------------------------------------------------------------- statistics of item indices

SINGLE_LABEL_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
MULTILABEL_METRICS = tuple(
    f"{metric}_{average}" for average in ("micro", "macro", "samples") for metric in ("precision", "recall", "f1")
)
RANKING_METRICS = ("roc_auc", "pr_auc")
BINARY_RANKING_METRICS = ("roc_auc_binary", "pr_auc_binary")

# Resamples are counted in chunks of at most _CHUNK_CELLS item x resample cells (the counts stay
# within 8 MB whatever n is) and, with ranking groups, _GROUP_CELLS group x resample cells (their
# arithmetic runs about 1.5 x faster on cache-sized arrays), but at least 8 resamples (the sparse
# product reads each item's counts once per chunk). Measured (2-core AMD EPYC VM, 56 scored
# labels, 1000 resamples): the ranking part of 4,231 items 0.30 s at 21 resamples a chunk,
# 0.39 s at 84; all metrics of 100k items 21.9 s at 2 a chunk, 13.1 s at 9.
_CHUNK_CELLS = 2_000_000
_GROUP_CELLS = 500_000
# float32 holds every integer up to 2**24 exactly, so sums of up to 2**24 copies of 0/1 entries
# (a resample of m <= 2**24 items) are exact, and float32 sparse products run about 2 x faster.
_FLOAT32_EXACT = 2**24


def multilabel_metric_names(scored: bool) -> tuple[str, ...]:
    """The float metrics of :func:`multilabel_report`, in its order: with scores or without."""
    return MULTILABEL_METRICS + (RANKING_METRICS if scored else BINARY_RANKING_METRICS)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    shape = np.broadcast(numerator, denominator).shape
    return np.divide(numerator, denominator, out=np.zeros(shape), where=denominator > 0)


def _prf(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 = 2 TP / (predicted + actual), elementwise, undefined -> 0."""
    return _ratio(tp, predicted), _ratio(tp, actual), _ratio(2 * tp, predicted + actual)


def _mean_where(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the usable entries, (k, B) -> (B,); nan where none is usable."""
    count = usable.sum(axis=0)
    total = np.where(usable, values, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _indicator(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> scipy.sparse.csr_matrix:
    """0/1 matrix with ones at (rows, columns), float32 (see _FLOAT32_EXACT)."""
    return scipy.sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, columns)), shape=shape)


def _codes_indicator(codes: Sequence[np.ndarray], width: int, n: int) -> scipy.sparse.csr_matrix:
    """(len(codes) * width, n): in block r, row codes[r][i] of column i is 1 (none where -1).

    Times item counts (n, B) it gives, block by block, how many copies of each code a resample holds.
    """
    rows = [code[code >= 0] + r * width for r, code in enumerate(codes)]
    columns = [np.flatnonzero(code >= 0) for code in codes]
    return _indicator(np.concatenate(rows), np.concatenate(columns), (len(codes) * width, n))


def _product(design, counts: np.ndarray) -> np.ndarray:
    """design (k, n) @ counts (n, B) as float64 (exact integers for 0/1 designs)."""
    return np.asarray(design @ counts, dtype=float)


class _IndexStatistics:
    """Metrics of item indices, computed from the counts of each item in every resample.

    A subclass sets ``names``, ``n`` (items) and ``_compute(counts, m, wanted)``: counts (n, B)
    -> {metric: (B,)} for the metrics in ``wanted``.
    """

    names: tuple[str, ...]
    n: int

    def _chunk(self) -> int:
        """Resamples counted at a time."""
        return max(1, _CHUNK_CELLS // max(self.n, 1))

    def values(self, index: np.ndarray, wanted: Sequence[str]) -> dict[str, np.ndarray]:
        index = np.asarray(index)
        if index.ndim == 0:
            raise ValueError("index must have an item axis (..., m)")
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"index must hold integers, got {index.dtype}")
        lead, m = index.shape[:-1], index.shape[-1]
        rows = index.reshape(math.prod(lead), m)  # (B, m)
        out = {name: np.full(rows.shape[0], np.nan) for name in wanted}
        if m == 0 or rows.shape[0] == 0:
            return {name: value.reshape(lead) for name, value in out.items()}
        if rows.min() < 0 or rows.max() >= self.n:
            raise IndexError(f"index must lie in [0, {self.n})")
        dtype = np.float32 if m <= _FLOAT32_EXACT else np.float64
        chunk = self._chunk()
        for start in range(0, rows.shape[0], chunk):
            part = rows[start:start + chunk]  # (b, m)
            b = part.shape[0]
            key = part * b
            key += np.arange(b)[:, None]  # item i of resample r -> i * b + r: counts come out item-major
            counts = np.bincount(key.ravel(), minlength=self.n * b).reshape(self.n, b).astype(dtype)  # (n, b)
            for name, value in self._compute(counts, m, wanted).items():
                out[name][start:start + b] = value
        return {name: value.reshape(lead) for name, value in out.items()}

    def _compute(self, counts: np.ndarray, m: int, wanted: Sequence[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def statistics(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        def one(name):
            return lambda index: self.values(index, (name,))[name]

        return {name: one(name) for name in self.names}

    def combined(self) -> Callable[[np.ndarray], np.ndarray]:
        def statistic(index: np.ndarray) -> np.ndarray:
            values = self.values(index, self.names)
            return np.stack([values[name] for name in self.names])  # (k, ...)

        return statistic


class _SingleLabel(_IndexStatistics):
    """Single-label counts: per resample, right answers, and TP / references / answers per label."""

    names = SINGLE_LABEL_METRICS

    def __init__(self, references: Sequence[str], estimates: Sequence[str | None], labels: Sequence[str]):
        if len(references) != len(estimates):
            raise ValueError(f"{len(references)} references but {len(estimates)} estimates")
        labels = _label_list(labels)
        if not labels:
            raise ValueError("labels must hold at least one label")
        column = {label: j for j, label in enumerate(labels)}
        self.n = len(references)
        self.n_labels = len(labels)
        reference = np.array([column.get(r, -1) for r in references], dtype=np.int64)
        estimate = np.array([-1 if e is None else column.get(e, -1) for e in estimates], dtype=np.int64)
        right = np.array([e is not None and e == r for r, e in zip(references, estimates)], dtype=bool)
        # rows: [right answers (1) | TP per label | references per label | answers per label]
        self.design = scipy.sparse.vstack([
            _codes_indicator([np.where(right, 0, -1)], 1, self.n),
            _codes_indicator([np.where(right, reference, -1), reference, estimate], self.n_labels, self.n),
        ]).tocsr()

    def _compute(self, counts, m, wanted):
        totals = _product(self.design, counts)  # (1 + 3L, B)
        tp, actual, predicted = totals[1:].reshape(3, self.n_labels, -1)  # (L, B) each
        precision, recall, f1 = _prf(tp, predicted, actual)
        out = {"accuracy": totals[0] / m, "precision_macro": precision.mean(axis=0),
               "recall_macro": recall.mean(axis=0), "f1_macro": f1.mean(axis=0)}
        return {name: out[name] for name in wanted}


class _Multilabel(_IndexStatistics):
    """Tagging counts: pooled, per item and per label; ranking groups when scores are given.

    Ranking from scores, per label with both classes in the data (a resample may still lose
    one, and then leaves the label out of its average, as the report does): the distinct scores
    of the label's positive items, v_0 < ... < v_{g-1}, cut its items into groups: P_k, positives
    scoring v_k; T_k, negatives scoring v_k; D_k, negatives in [v_{k-1}, v_k) (D_0: below v_0,
    D_g: from v_{g-1} up). From the copies of each group in a resample, the negatives below v_k
    number ``below_k = D_0 + ... + D_k`` and the positives ``P_0 + ... + P_{k-1}``; with W_pos
    positives, W_neg negatives and m items,

        ROC-AUC = sum_k P_k (below_k + T_k / 2) / (W_pos W_neg)        (Mann-Whitney, ties 1/2)
        AP      = sum_k P_k / W_pos * TP_k / A_k                        (step-wise, as sklearn)

    with TP_k = W_pos - (P_0 + ... + P_{k-1}) and A_k = m - below_k - (P_0 + ... + P_{k-1}) the
    positives and all items scoring >= v_k: what sklearn's trapezoidal ROC-AUC and average
    precision give on the resampled items. Each item enters at most two groups per label (one
    when not tied with a positive): O(labels) per item and resample, with no sorting. The
    largest D group of a label is left out of the product (often most negatives: those below
    every positive) and recovered as W_neg minus the other D groups.
    """

    def __init__(self, y_true, y_pred, y_score, labels):
        y_true, y_pred, y_score = _validate_multilabel(y_true, y_pred, y_score)
        if labels is not None and len(labels) != y_true.shape[1]:
            raise ValueError(f"{len(labels)} label names for {y_true.shape[1]} columns")
        self.names = multilabel_metric_names(y_score is not None)
        self.n, self.n_labels = y_true.shape
        both = y_true & y_pred
        tp, predicted, actual = both.sum(axis=1), y_pred.sum(axis=1), y_true.sum(axis=1)  # per item
        # (6, n): pooled TP, answered, true; then the per-item precision, recall and F1 ("samples")
        self.items = np.vstack([tp, predicted, actual, *_prf(tp, predicted, actual)]).astype(float)
        label, item = np.nonzero(np.vstack([both.T, y_pred.T, y_true.T]))  # rows: TP | answered | true
        self.label_design = _indicator(label, item, (3 * self.n_labels, self.n))
        self.scored = y_score is not None
        if self.scored:
            self._group_scores(y_true, y_score)

    def _chunk(self) -> int:
        chunk = super()._chunk()
        if not self.scored or self.segments is None:
            return chunk
        return min(chunk, max(8, _GROUP_CELLS // self.segments.shape[0]))

    def _group_scores(self, y_true: np.ndarray, y_score: np.ndarray) -> None:
        counts = y_true.sum(axis=0)
        ranked = np.flatnonzero((counts > 0) & (counts < self.n))  # labels with both classes
        items = np.arange(self.n)
        d_rows, t_rows, p_rows, d_items, t_items, p_items = [], [], [], [], [], []
        sizes, dropped, base = [], [], 0
        for j in ranked:
            score, positive = y_score[:, j], y_true[:, j].astype(bool)
            values = np.unique(score[positive])  # v_0 < ... < v_{g-1}
            g = values.size
            group = np.searchsorted(values, score, side="right")  # scores in [v_{k-1}, v_k) -> k
            tied = ~positive & (group > 0) & (values[np.maximum(group - 1, 0)] == score)
            # D_0 .. D_g sum to W_neg: the largest is left out of the product
            largest = int(np.argmax(np.bincount(group[~positive], minlength=g + 1)))
            keep = ~positive & (group != largest)
            d_rows.append(base + len(sizes) + group[keep])  # g + 1 rows per label
            d_items.append(items[keep])
            t_rows.append(base + group[tied] - 1)
            t_items.append(items[tied])
            p_rows.append(base + group[positive] - 1)
            p_items.append(items[positive])
            dropped.append(base + len(sizes) + largest)
            sizes.append(g)
            base += g
        self.n_groups, n_ranked = base, len(sizes)
        self.group_sizes = np.asarray(sizes, dtype=np.int64)
        self.group_starts = np.cumsum(self.group_sizes) - self.group_sizes
        self.d_starts = self.group_starts + np.arange(n_ranked)  # a label's D_0 row
        self.d_dropped = np.asarray(dropped, dtype=np.int64)
        # (G,): the rows D_0 .. D_{g-1} of every label, in the order of the T and P groups
        self.d_take = np.concatenate([np.zeros(0, np.int64), *(s + np.arange(g) for s, g in zip(self.d_starts, sizes))])
        self.segments = None
        if base:  # (3 G + n_ranked, n): blocks D (g + 1 per label) | T | P
            n_d = base + n_ranked
            rows = np.concatenate([*d_rows, *(r + n_d for r in t_rows), *(r + n_d + base for r in p_rows)])
            columns = np.concatenate([*d_items, *t_items, *p_items])
            self.segments = _indicator(rows, columns, (3 * base + n_ranked, self.n))

    def _compute(self, counts, m, wanted):
        wanted = set(wanted)
        out: dict[str, np.ndarray] = {}
        if wanted & {name for name in MULTILABEL_METRICS if not name.endswith("_macro")}:
            items = self.items @ counts  # (6, B): pooled TP, answered, true; sums of per-item P, R, F1
            out["precision_micro"], out["recall_micro"], out["f1_micro"] = _prf(*items[:3])
            out["precision_samples"], out["recall_samples"], out["f1_samples"] = items[3:] / m
        if wanted & {"precision_macro", "recall_macro", "f1_macro", *BINARY_RANKING_METRICS}:
            tp, predicted, actual = _product(self.label_design, counts).reshape(3, self.n_labels, -1)  # (L, B)
            precision, recall, f1 = _prf(tp, predicted, actual)
            out["precision_macro"], out["recall_macro"], out["f1_macro"] = (v.mean(axis=0) for v in (precision, recall, f1))
            if not self.scored:
                # 0/1 scores: one operating point; ROC-AUC = (TPR + TNR) / 2, AP = P R + (1 - R) prevalence
                negatives = m - actual
                usable = (actual > 0) & (negatives > 0)
                tpr, fpr = _ratio(tp, actual), _ratio(predicted - tp, negatives)
                out["roc_auc_binary"] = _mean_where((1 + tpr - fpr) / 2, usable)
                out["pr_auc_binary"] = _mean_where(tpr * _ratio(tp, predicted) + (1 - tpr) * actual / m, usable)
        if wanted & set(RANKING_METRICS):
            out.update(self._ranking(counts, m))
        return {name: out[name] for name in wanted}

    def _ranking(self, counts: np.ndarray, m: int) -> dict[str, np.ndarray]:
        b = counts.shape[1]
        if self.segments is None:
            return {"roc_auc": np.full(b, np.nan), "pr_auc": np.full(b, np.nan)}
        # Group copies in the counts' dtype (exact integers <= m), sums and products in float64.
        groups = self.segments @ counts
        n_d, g = self.n_groups + self.d_starts.size, self.n_groups
        d, t, p = groups[:n_d], groups[n_d:n_d + g], groups[n_d + g:]  # (G + n_ranked, B), (G, B), (G, B)
        starts, sizes = self.group_starts, self.group_sizes
        w_pos = np.add.reduceat(p, starts, axis=0, dtype=float)  # (n_ranked, B)
        w_neg = m - w_pos
        d[self.d_dropped] = w_neg - np.add.reduceat(d, self.d_starts, axis=0, dtype=float)  # the D left out
        # Cumulative sums over all groups, corrected per label (exact integers in float64):
        # below_k = cum_d[k] - d_before[label], positives below v_k = cum_p[k] - p[k] - p_before[label].
        cum_d, cum_p = np.cumsum(d, axis=0, dtype=float), np.cumsum(p, axis=0, dtype=float)
        d_before, p_before = cum_d[self.d_starts] - d[self.d_starts], cum_p[starts] - p[starts]
        cum_d = cum_d[self.d_take]  # (G, B): D_0 .. D_k of every group k
        cum_p -= p  # positives below v_k, before the correction
        usable = (w_pos > 0) & (w_neg > 0)
        # ROC-AUC: sum_k p_k (below_k + t_k / 2) / (W_pos W_neg)
        term = np.multiply(t, 0.5, dtype=float)
        term += cum_d
        term *= p
        num = np.add.reduceat(term, starts, axis=0) - d_before * w_pos
        # AP: sum_k p_k TP_k / A_k / W_pos, TP_k = W_pos - positives below, A_k = TP_k + W_neg - below_k
        tp = np.repeat(w_pos + p_before, sizes, axis=0)
        tp -= cum_p
        at_least = np.repeat(w_neg + d_before, sizes, axis=0)
        at_least -= cum_d
        at_least += tp
        np.maximum(at_least, 1, out=at_least)  # only where p_k = 0 can A_k be 0 (integers: >= 1 elsewhere)
        tp /= at_least
        tp *= p
        with np.errstate(invalid="ignore", divide="ignore"):
            roc = num / (w_pos * w_neg)
            ap = np.add.reduceat(tp, starts, axis=0) / w_pos
        return {"roc_auc": _mean_where(roc, usable), "pr_auc": _mean_where(ap, usable)}


def single_label_statistics(
    references: Sequence[str], estimates: Sequence[str | None], labels: Sequence[str]
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The metrics of :func:`single_label_report` as statistics of item indices, for bootstrap_interval.

    ``stats[metric](index)`` maps an index array (..., m) into ``range(n)`` to
    ``single_label_report(references[index], estimates[index], labels)[metric]`` per row, shape
    (...), for ``metric`` in :data:`SINGLE_LABEL_METRICS`; a 1-d index gives a 0-d array. Each
    row costs O(m) (its counts of each item, then a sparse product with the label indicators),
    never a call into sklearn.

    Examples
    --------
    >>> stats = single_label_statistics(["rock", "jazz", "rock"], ["metal", "jazz", "rock"], ["rock", "jazz", "metal"])
    >>> round(float(stats["f1_macro"](np.arange(3))), 3)
    0.556
    >>> stats["accuracy"](np.array([[0, 0, 0], [1, 2, 2]])).tolist()   # two resamples
    [0.0, 1.0]

    Parameters
    ----------
    references : sequence of str
    estimates : sequence of str or None
    labels : sequence of str
        The declared label set (as for :func:`single_label_report`).

    Returns
    -------
    statistics : dict
        metric name -> statistic(index) -> (...).
    """
    return _SingleLabel(references, estimates, labels).statistics()


def single_label_metrics_over_items(
    references: Sequence[str], estimates: Sequence[str | None], labels: Sequence[str]
) -> Callable[[np.ndarray], np.ndarray]:
    """All of :data:`SINGLE_LABEL_METRICS` as ONE statistic (4, ...), for bootstrap_intervals.

    Examples
    --------
    >>> statistic = single_label_metrics_over_items(["a", "b"], ["a", None], ["a", "b"])
    >>> dict(zip(SINGLE_LABEL_METRICS, statistic(np.arange(2)).tolist()))["recall_macro"]
    0.5
    """
    return _SingleLabel(references, estimates, labels).combined()


def multilabel_statistics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The float metrics of :func:`multilabel_report` as statistics of item indices.

    ``stats[metric](index)`` maps an index array (..., m) into ``range(n)`` to
    ``multilabel_report(y_true[index], y_pred[index], y_score[index])[metric]`` per row, shape
    (...); the metrics are :func:`multilabel_metric_names` (``roc_auc``/``pr_auc`` with
    ``y_score``, the ``*_binary`` ones without), labels without both classes in a resample left
    out of its AUC averages as the report leaves them out. Pooled and per-item counts, per-label
    counts and the ranking groups (see ``_Multilabel``) are sparse products with each row's counts
    of each item: O(m x labels) at most per row, no sorting and no call into sklearn.

    Examples
    --------
    >>> y_true = np.array([[1, 0], [0, 1], [1, 1]])
    >>> y_pred = np.array([[1, 0], [0, 0], [1, 1]])
    >>> stats = multilabel_statistics(y_true, y_pred)
    >>> float(stats["recall_micro"](np.arange(3))), stats["precision_micro"](np.array([[1, 1, 1]])).tolist()
    (0.75, [0.0])

    Parameters
    ----------
    y_true, y_pred, y_score, labels
        As for :func:`multilabel_report`.

    Returns
    -------
    statistics : dict
        metric name -> statistic(index) -> (...).
    """
    return _Multilabel(y_true, y_pred, y_score, labels).statistics()


def multilabel_metrics_over_items(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """All float metrics of :func:`multilabel_report` as ONE statistic (11, ...), for bootstrap_intervals.

    The rows follow ``multilabel_metric_names(y_score is not None)``.

    Examples
    --------
    >>> statistic = multilabel_metrics_over_items(np.array([[1, 0], [0, 1]]), np.array([[1, 1], [0, 1]]))
    >>> dict(zip(multilabel_metric_names(False), statistic(np.arange(2)).tolist()))["precision_micro"]
    0.6666666666666666
    """
    return _Multilabel(y_true, y_pred, y_score, labels).combined()
