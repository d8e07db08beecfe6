"""core.metrics.classification: hand counts and the same numbers as scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mllm.core.metrics import classification as cl


def test_accuracy_hand_count():
    assert cl.accuracy(["rock", "jazz", "pop", "pop"], ["rock", None, "rock", "pop"]) == 0.5
    assert cl.accuracy(["a"], [None]) == 0.0
    assert math.isnan(cl.accuracy([], []))
    with pytest.raises(ValueError):
        cl.accuracy(["a"], [])


def test_single_label_report_hand_count():
    refs = ["a", "a", "a", "b", "b", "c"]
    ests = ["a", "a", "b", "b", None, "a"]
    report = cl.single_label_report(refs, ests, labels=["a", "b", "c"])
    # a: TP 2, FP 1 (c->a), FN 1 -> P 2/3, R 2/3; b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2; c: TP 0 -> 0, 0
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["precision_macro"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert report["recall_macro"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert report["f1_macro"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert report["n"] == 6 and report["n_unanswered"] == 1


def test_single_label_report_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = ["blues", "jazz", "rock", "pop", "metal"]
    refs = list(rng.choice(labels, 300))
    ests = [None if rng.random() < 0.1 else (r if rng.random() < 0.6 else str(rng.choice(labels))) for r in refs]
    report = cl.single_label_report(refs, ests, labels)
    filled = ["<none>" if e is None else e for e in ests]
    assert report["accuracy"] == pytest.approx(accuracy_score(refs, filled))
    kwargs = {"labels": labels, "average": "macro", "zero_division": 0}
    assert report["precision_macro"] == pytest.approx(precision_score(refs, filled, **kwargs))
    assert report["recall_macro"] == pytest.approx(recall_score(refs, filled, **kwargs))
    assert report["f1_macro"] == pytest.approx(f1_score(refs, filled, **kwargs))
    assert report["n_unanswered"] == sum(e is None for e in ests)
    assert report["accuracy"] == pytest.approx(cl.accuracy(refs, ests))


def test_unanswered_is_never_a_false_positive():
    # a None must not count as a prediction of any label: precision of "a" stays 1
    report = cl.single_label_report(["a", "b"], ["a", None], labels=["a", "b"])
    assert report["precision_macro"] == pytest.approx((1 + 0) / 2)
    assert report["recall_macro"] == pytest.approx((1 + 0) / 2)


Y_TRUE = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
Y_PRED = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]])


def test_multilabel_hand_count():
    report = cl.multilabel_report(Y_TRUE, Y_PRED)
    # TP 4, FP 1, FN 2
    assert report["precision_micro"] == pytest.approx(4 / 5)
    assert report["recall_micro"] == pytest.approx(4 / 6)
    assert report["f1_micro"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 2))
    # per label: (P, R) = (1, 1), (1, 1/2), (1/2, 1/2)
    assert report["precision_macro"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert report["recall_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    # per item: (P, R) = (1, 1/2), (1/2, 1), (1, 1/2), (1, 1)
    assert report["precision_samples"] == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert report["recall_samples"] == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)


def test_multilabel_matches_sklearn():
    rng = np.random.default_rng(1)
    y_true = (rng.random((200, 8)) < 0.3).astype(int)
    y_pred = np.where(rng.random((200, 8)) < 0.8, y_true, 1 - y_true)
    report = cl.multilabel_report(y_true, y_pred, labels=[f"tag{i}" for i in range(8)])
    for average in ("micro", "macro", "samples"):
        kwargs = {"average": average, "zero_division": 0}
        assert report[f"precision_{average}"] == pytest.approx(precision_score(y_true, y_pred, **kwargs))
        assert report[f"recall_{average}"] == pytest.approx(recall_score(y_true, y_pred, **kwargs))
        assert report[f"f1_{average}"] == pytest.approx(f1_score(y_true, y_pred, **kwargs))
    assert report["labels"] == [f"tag{i}" for i in range(8)]
    assert report["n_items"] == 200 and report["n_labels"] == 8


def test_ranking_scores_skip_labels_without_both_classes():
    rng = np.random.default_rng(2)
    y_true = (rng.random((100, 4)) < 0.4).astype(int)
    y_true[:, 3] = 0  # never present: no ROC curve
    y_score = y_true * 0.3 + rng.random((100, 4))
    y_pred = (y_score > 0.6).astype(int)
    report = cl.multilabel_report(y_true, y_pred, y_score=y_score)
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y_true[:, :3], y_score[:, :3], average="macro"))
    assert report["pr_auc"] == pytest.approx(average_precision_score(y_true[:, :3], y_score[:, :3], average="macro"))
    assert report["n_labels_ranked"] == 3 and report["n_labels_skipped"] == 1
    assert "roc_auc_binary" not in report


def test_binary_auc_without_scores():
    report = cl.multilabel_report(Y_TRUE, Y_PRED)
    assert "roc_auc" not in report and "pr_auc" not in report
    assert report["roc_auc_binary"] == pytest.approx(roc_auc_score(Y_TRUE, Y_PRED, average="macro"))
    assert report["pr_auc_binary"] == pytest.approx(average_precision_score(Y_TRUE, Y_PRED, average="macro"))
    # the documented closed forms: balanced accuracy, and P*R + (1-R)*prevalence, per label
    balanced, ap = [], []
    for j in range(3):
        t, p = Y_TRUE[:, j], Y_PRED[:, j]
        tpr, tnr = (t & p).sum() / t.sum(), ((1 - t) & (1 - p)).sum() / (1 - t).sum()
        precision = (t & p).sum() / p.sum()
        balanced.append((tpr + tnr) / 2)
        ap.append(precision * tpr + (1 - tpr) * t.mean())
    assert report["roc_auc_binary"] == pytest.approx(np.mean(balanced))
    assert report["pr_auc_binary"] == pytest.approx(np.mean(ap))


def test_no_rankable_label_gives_nan():
    report = cl.multilabel_report(np.ones((3, 2), int), np.ones((3, 2), int))
    assert math.isnan(report["roc_auc_binary"]) and report["n_labels_skipped"] == 2


def test_multilabel_bad_input():
    with pytest.raises(ValueError):
        cl.multilabel_report(Y_TRUE, Y_PRED[:, :2])
    with pytest.raises(ValueError):
        cl.multilabel_report(Y_TRUE, Y_PRED * 2)
    with pytest.raises(ValueError):
        cl.multilabel_report(Y_TRUE, Y_PRED, labels=["a"])


# -- the declared label set (issue 9): macro averages over every declared label


def test_macro_averages_use_the_declared_label_set():
    from sklearn.metrics import precision_recall_fscore_support

    refs, ests, labels = ["rock", "jazz", "rock"], ["metal", "jazz", "rock"], ["rock", "jazz", "metal"]
    report = cl.single_label_report(refs, ests, labels)
    expected = precision_recall_fscore_support(refs, ests, labels=labels, average="macro", zero_division=0)[:3]
    got = (report["precision_macro"], report["recall_macro"], report["f1_macro"])
    assert got == pytest.approx(expected, abs=1e-12)
    # rock P 1 R 1/2 F 2/3; jazz 1, 1, 1; metal (answered once, never right) 0, 0, 0
    assert got == pytest.approx((2 / 3, 1 / 2, 5 / 9), abs=1e-12)
    # averaging over the labels seen in the references drops metal's false positive: 1.0 / 0.75 / 0.83
    seen = cl.single_label_report(refs, ests, sorted(set(refs)))
    assert (seen["precision_macro"], seen["recall_macro"]) == pytest.approx((1.0, 0.75))


def test_repeated_labels_are_refused():
    with pytest.raises(ValueError, match="repeat"):
        cl.single_label_report(["a"], ["a"], ["a", "b", "a"])


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LABELS = ["rock", "jazz", "pop", "metal"]


@st.composite
def single_label_cases(draw):
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(1, 25))
    # references may lie outside the declared set; answers may be unanswered (None) or off the set
    refs = draw(st.lists(st.sampled_from(labels + ["folk"]), min_size=n, max_size=n))
    ests = draw(st.lists(st.sampled_from(labels + [None, "folk", "noise"]), min_size=n, max_size=n))
    return refs, ests, labels


@given(single_label_cases())
def test_single_label_report_matches_sklearn_on_random_cases(case):
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    refs, ests, labels = case
    report = cl.single_label_report(refs, ests, labels)
    filled = ["<unanswered>" if e is None else e for e in ests]  # a string no reference equals
    expected = precision_recall_fscore_support(refs, filled, labels=labels, average="macro", zero_division=0)[:3]
    assert (report["precision_macro"], report["recall_macro"], report["f1_macro"]) == pytest.approx(expected, abs=1e-12)
    assert report["accuracy"] == pytest.approx(accuracy_score(refs, filled), abs=1e-12)
    assert report["n_unanswered"] == ests.count(None)
