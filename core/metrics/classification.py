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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

__all__ = ["accuracy", "single_label_report", "multilabel_report"]


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

    Examples
    --------
    >>> report = single_label_report(["a", "a", "b"], ["a", None, "b"], labels=["a", "b"])
    >>> report["accuracy"], report["recall_macro"], report["n_unanswered"]
    (0.6666666666666666, 0.75, 1)

    Parameters
    ----------
    references : sequence of str
    estimates : sequence of str or None
    labels : sequence of str
        The label set to average over.

    Returns
    -------
    report : dict
        ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro`` (floats), ``n`` and
        ``n_unanswered`` (ints).
    """
    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} references but {len(estimates)} estimates")
    labels = list(labels)
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
