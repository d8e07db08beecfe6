"""core.metrics.classification statistics of item indices: the report's numbers per resample.

Every statistic is checked against the report computed on the resampled items (which is
sklearn) to 1e-12, on hand-made and random cases (ties, labels a resample loses, unanswered
items), and through the bootstrap: the one-pass intervals equal those of the per-resample
report that eval-mir computed before.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

from mllm.core.metrics import bootstrap as bs
from mllm.core.metrics import classification as cl

TOL = 1e-12


def report_rows(report, index):
    """A report metric per row of index (B, m): what eval-mir's bootstrap computed before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ill-defined-metric warnings
        reports = [report(row) for row in index]
    names = [name for name, value in reports[0].items() if isinstance(value, float)]
    return {name: np.array([r[name] for r in reports]) for name in names}


def assert_rows_equal(got, expected):
    assert got.shape == expected.shape
    assert np.allclose(got, expected, rtol=0, atol=TOL, equal_nan=True), (got, expected)


# ---------------------------------------------------------------- single label


def single_label_report_of(refs, ests, labels):
    refs, ests = np.asarray(refs, dtype=object), np.asarray(ests, dtype=object)
    return lambda i: cl.single_label_report(list(refs[i]), list(ests[i]), labels)


def test_single_label_issue_example():
    refs, ests, labels = ["rock", "jazz", "rock"], ["metal", "jazz", "rock"], ["rock", "jazz", "metal"]
    stats = cl.single_label_statistics(refs, ests, labels)
    values = {name: float(stats[name](np.arange(3))) for name in cl.SINGLE_LABEL_METRICS}
    sk = precision_recall_fscore_support(refs, ests, labels=labels, average="macro", zero_division=0)
    assert [values[m] for m in ("precision_macro", "recall_macro", "f1_macro")] == pytest.approx(sk[:3], abs=TOL)
    assert values["accuracy"] == pytest.approx(2 / 3, abs=TOL)


def test_single_label_resamples_match_sklearn_directly():
    rng = np.random.default_rng(0)
    labels = ["blues", "jazz", "rock", "pop", "metal"]
    refs = rng.choice(labels + ["folk"], 200).tolist()
    ests = [None if rng.random() < 0.15 else (r if rng.random() < 0.5 else str(rng.choice(labels + ["x"])))
            for r in refs]
    index = rng.integers(200, size=(20, 200))
    stats = cl.single_label_statistics(refs, ests, labels)
    filled = np.array(["<none>" if e is None else e for e in ests], dtype=object)
    refs_a = np.array(refs, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.array([
            precision_recall_fscore_support(refs_a[i], filled[i], labels=labels, average="macro", zero_division=0)[:3]
            for i in index
        ])  # (20, 3)
    for j, name in enumerate(("precision_macro", "recall_macro", "f1_macro")):
        assert_rows_equal(stats[name](index), expected[:, j])
    assert_rows_equal(stats["accuracy"](index), (refs_a[index] == filled[index]).mean(axis=1))


@settings(max_examples=40)  # each example runs the sklearn report on every resample
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4, unique=True),
    st.integers(1, 30),
    st.integers(0, 2**32 - 1),
)
def test_single_label_statistics_equal_the_report_per_resample(labels, n, seed):
    rng = np.random.default_rng(seed)
    refs = rng.choice(labels + ["out"], n).tolist()
    ests = [None if rng.random() < 0.2 else str(rng.choice(labels + ["out", "x"])) for _ in range(n)]
    index = rng.integers(n, size=(4, n))
    expected = report_rows(single_label_report_of(refs, ests, labels), index)
    stats = cl.single_label_statistics(refs, ests, labels)
    combined = cl.single_label_metrics_over_items(refs, ests, labels)(index)  # (4 metrics, 4 resamples)
    for j, name in enumerate(cl.SINGLE_LABEL_METRICS):
        assert_rows_equal(stats[name](index), expected[name])
        assert_rows_equal(combined[j], expected[name])


def test_unanswered_items_are_wrong_and_no_false_positive():
    stats = cl.single_label_statistics(["a", "b", "b"], ["a", None, None], ["a", "b"])
    # a: P 1, R 1; b: no answer -> P 0, R 0
    assert float(stats["accuracy"](np.arange(3))) == pytest.approx(1 / 3)
    assert float(stats["precision_macro"](np.arange(3))) == pytest.approx(0.5)
    assert float(stats["recall_macro"](np.arange(3))) == pytest.approx(0.5)


# ---------------------------------------------------------------- multi-label


def multilabel_report_of(y_true, y_pred, y_score=None):
    return lambda i: cl.multilabel_report(y_true[i], y_pred[i], None if y_score is None else y_score[i])


@st.composite
def tagging_cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n, n_labels = draw(st.integers(2, 30)), draw(st.integers(2, 5))
    y_true = (rng.random((n, n_labels)) < draw(st.floats(0.05, 0.9))).astype(int)
    y_pred = (rng.random((n, n_labels)) < draw(st.floats(0.05, 0.9))).astype(int)
    scores = draw(st.sampled_from(["none", "ties", "continuous"]))
    y_score = None
    if scores == "ties":  # few distinct values: ties within and across classes
        y_score = rng.integers(0, 4, (n, n_labels)) / 4
    elif scores == "continuous":
        y_score = y_true * draw(st.floats(0, 1)) + rng.random((n, n_labels))
    return y_true, y_pred, y_score, rng.integers(n, size=(4, n))


@settings(max_examples=40)
@given(tagging_cases())
def test_multilabel_statistics_equal_the_report_per_resample(case):
    y_true, y_pred, y_score, index = case
    expected = report_rows(multilabel_report_of(y_true, y_pred, y_score), index)
    names = cl.multilabel_metric_names(y_score is not None)
    assert set(expected) == set(names)  # the report's float metrics, no more, no fewer
    stats = cl.multilabel_statistics(y_true, y_pred, y_score)
    assert tuple(stats) == names
    combined = cl.multilabel_metrics_over_items(y_true, y_pred, y_score)(index)  # (11 metrics, 4 resamples)
    for j, name in enumerate(names):
        assert_rows_equal(stats[name](index), expected[name])
        assert_rows_equal(combined[j], expected[name])


def test_ranking_resamples_match_sklearn_directly():
    rng = np.random.default_rng(3)
    n, n_labels = 300, 6
    y_true = (rng.random((n, n_labels)) < 0.2).astype(int)
    y_true[:2, 5], y_true[2:, 5] = 1, 0  # a rare label: some resamples lose both positives
    y_score = np.round(y_true * 0.4 + rng.random((n, n_labels)), 2)  # ties
    y_pred = (y_score > 0.7).astype(int)
    index = rng.integers(n, size=(30, n))
    stats = cl.multilabel_statistics(y_true, y_pred, y_score)
    roc, ap = stats["roc_auc"](index), stats["pr_auc"](index)
    lost = 0
    for r, row in enumerate(index):
        t, s = y_true[row], y_score[row]
        usable = [j for j in range(n_labels) if 0 < t[:, j].sum() < n]
        lost += len(usable) < n_labels
        assert roc[r] == pytest.approx(np.mean([roc_auc_score(t[:, j], s[:, j]) for j in usable]), abs=TOL)
        assert ap[r] == pytest.approx(np.mean([average_precision_score(t[:, j], s[:, j]) for j in usable]), abs=TOL)
    assert lost > 0  # the rare label did leave some averages


def test_binary_ranking_resamples_match_sklearn_directly():
    rng = np.random.default_rng(4)
    y_true = (rng.random((100, 4)) < 0.3).astype(int)
    y_pred = np.where(rng.random((100, 4)) < 0.75, y_true, 1 - y_true)
    y_pred[:, 3] = 0  # a label nobody answers: ROC-AUC 0.5, AP = prevalence
    index = rng.integers(100, size=(10, 100))
    stats = cl.multilabel_statistics(y_true, y_pred)
    for r, row in enumerate(index):
        t, p = y_true[row], y_pred[row].astype(float)
        assert stats["roc_auc_binary"](index)[r] == pytest.approx(roc_auc_score(t, p, average="macro"), abs=TOL)
        expected_ap = average_precision_score(t, p, average="macro")
        assert stats["pr_auc_binary"](index)[r] == pytest.approx(expected_ap, abs=TOL)
        for average in ("micro", "macro", "samples"):
            sk = precision_recall_fscore_support(t, y_pred[row], average=average, zero_division=0)[:3]
            got = [stats[f"{m}_{average}"](index)[r] for m in ("precision", "recall", "f1")]
            assert got == pytest.approx(sk, abs=TOL)


def test_no_rankable_label_gives_nan():
    y = np.ones((4, 2), int)
    assert math.isnan(float(cl.multilabel_statistics(y, y)["roc_auc_binary"](np.arange(4))))
    assert math.isnan(float(cl.multilabel_statistics(y, y, y * 0.5)["pr_auc"](np.arange(4))))
    # rankable in the data, not in a resample holding one item only
    y_true = np.array([[1, 0], [0, 1]])
    stats = cl.multilabel_statistics(y_true, y_true, np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert float(stats["roc_auc"](np.arange(2))) == 1.0
    assert np.isnan(stats["roc_auc"](np.array([[0, 0]]))).all()


# ---------------------------------------------------------------- shapes, chunks and exactness paths


def test_index_shapes():
    rng = np.random.default_rng(5)
    y_true = (rng.random((12, 3)) < 0.5).astype(int)
    y_pred = (rng.random((12, 3)) < 0.5).astype(int)
    y_score = rng.random((12, 3))
    stat = cl.multilabel_statistics(y_true, y_pred, y_score)["roc_auc"]
    full = stat(np.arange(12))  # 1-d index: 0-d value
    assert full.shape == ()
    assert float(full) == pytest.approx(cl.multilabel_report(y_true, y_pred, y_score)["roc_auc"], abs=TOL)
    index = rng.integers(12, size=(2, 3, 7))  # leading axes; m (7) need not be n (12)
    assert stat(index).shape == (2, 3)
    assert cl.multilabel_metrics_over_items(y_true, y_pred)(index).shape == (11, 2, 3)
    assert cl.single_label_metrics_over_items(["a"] * 12, ["a"] * 12, ["a"])(index).shape == (4, 2, 3)
    with pytest.raises(IndexError):
        stat(np.array([0, 12]))
    with pytest.raises(IndexError):
        stat(np.array([-1, 0]))
    assert np.isnan(stat(np.zeros(0, dtype=int)))


@pytest.mark.parametrize("chunk_cells, exact32", [(1, 2**24), (50, 2**24), (10**6, 0)])
def test_chunks_and_float64_path_give_the_same_numbers(monkeypatch, chunk_cells, exact32):
    rng = np.random.default_rng(6)
    y_true = (rng.random((40, 4)) < 0.3).astype(int)
    y_pred = (rng.random((40, 4)) < 0.3).astype(int)
    y_score = rng.integers(0, 5, (40, 4)) / 5
    index = rng.integers(40, size=(9, 40))
    expected = cl.multilabel_metrics_over_items(y_true, y_pred, y_score)(index)
    monkeypatch.setattr(cl, "_CHUNK_CELLS", chunk_cells)  # one resample per chunk, a few, all at once
    monkeypatch.setattr(cl, "_FLOAT32_EXACT", exact32)  # 0: counts in float64
    got = cl.multilabel_metrics_over_items(y_true, y_pred, y_score)(index)
    assert np.allclose(got, expected, rtol=0, atol=TOL, equal_nan=True)


def test_bad_inputs():
    with pytest.raises(ValueError):
        cl.single_label_statistics(["a"], [], ["a"])
    with pytest.raises(ValueError):
        cl.single_label_statistics(["a"], ["a"], [])
    with pytest.raises(ValueError):
        cl.multilabel_statistics(np.ones((2, 2), int), np.ones((2, 3), int))
    with pytest.raises(ValueError):
        cl.multilabel_statistics(np.ones((2, 2), int), np.ones((2, 2), int), labels=["a"])


# ---------------------------------------------------------------- through the bootstrap


def _rowwise(function):
    """eval-mir's lift of a per-index-vector metric before this change (core/evaluation/mir.py);
    a function returning k values gives (k, ...)."""

    def statistic(index):
        index = np.asarray(index)
        if index.ndim == 1:
            return np.asarray(function(index))
        flat = index.reshape(-1, index.shape[-1])
        values = np.array([function(row) for row in flat])  # (B,) or (B, k)
        return np.moveaxis(values, 0, -1).reshape(values.shape[1:] + index.shape[:-1])

    return statistic


def test_one_pass_intervals_equal_the_per_resample_report_intervals():
    rng = np.random.default_rng(7)
    n = 50
    y_true = (rng.random((n, 4)) < 0.3).astype(int)
    y_score = np.round(y_true * 0.3 + rng.random((n, 4)), 1)
    y_pred = (y_score > 0.6).astype(int)
    refs = rng.choice(["a", "b", "c"], n).tolist()
    ests = [None if rng.random() < 0.2 else str(rng.choice(["a", "b", "c", "d"])) for _ in range(n)]
    options = {"n_resamples": 30, "seed": 3}
    index = (np.arange(n),)
    cases = [
        (cl.multilabel_metric_names(True), cl.multilabel_metrics_over_items(y_true, y_pred, y_score),
         cl.multilabel_statistics(y_true, y_pred, y_score), multilabel_report_of(y_true, y_pred, y_score)),
        (cl.multilabel_metric_names(False), cl.multilabel_metrics_over_items(y_true, y_pred),
         cl.multilabel_statistics(y_true, y_pred), multilabel_report_of(y_true, y_pred)),
        (cl.SINGLE_LABEL_METRICS, cl.single_label_metrics_over_items(refs, ests, ["a", "b", "c"]),
         cl.single_label_statistics(refs, ests, ["a", "b", "c"]), single_label_report_of(refs, ests, ["a", "b", "c"])),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for names, combined, per_metric, report in cases:
            # the report on every resample, all metrics at once (the same intervals as one call per metric)
            every = _rowwise(lambda i: (lambda r: np.array([r[m] for m in names]))(report(i)))
            old = bs.bootstrap_intervals(every, index, **options)
            one_pass = bs.bootstrap_intervals(combined, index, **options)
            for name, before, after in zip(names, old, one_pass):
                assert (after.low, after.high) == pytest.approx((before.low, before.high), abs=TOL, nan_ok=True), name
            # eval-mir's path before: one bootstrap per metric of the report (the AUC shown), and now
            name = names[-2]
            before = bs.bootstrap_interval(_rowwise(lambda i: report(i)[name]), index, **options)
            after = bs.bootstrap_interval(per_metric[name], index, **options)
            assert (after.low, after.high) == pytest.approx((before.low, before.high), abs=TOL, nan_ok=True)
