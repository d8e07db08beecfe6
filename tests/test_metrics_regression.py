"""core.metrics.regression: scikit-learn/scipy values, CCC by hand, vectorised == scalar."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from mllm.core.metrics import regression as rg

RNG = np.random.default_rng(0)
Y_TRUE = RNG.uniform(1, 9, 200)
Y_PRED = np.clip(Y_TRUE + RNG.normal(0, 1.2, 200), 1, 9).round(1)


def test_against_sklearn_and_scipy():
    scores = rg.evaluate(Y_TRUE, Y_PRED)
    assert list(scores) == ["r2", "rmse", "mae", "pearson", "spearman", "ccc"]
    assert scores["r2"] == pytest.approx(r2_score(Y_TRUE, Y_PRED))
    assert scores["rmse"] == pytest.approx(math.sqrt(mean_squared_error(Y_TRUE, Y_PRED)))
    assert scores["mae"] == pytest.approx(mean_absolute_error(Y_TRUE, Y_PRED))
    assert scores["pearson"] == pytest.approx(scipy.stats.pearsonr(Y_TRUE, Y_PRED).statistic)
    assert scores["spearman"] == pytest.approx(scipy.stats.spearmanr(Y_TRUE, Y_PRED).statistic)


def test_ccc_by_hand():
    x = [1.0, 2.0, 3.0, 4.0]
    y = [2.0, 2.0, 5.0, 3.0]
    # means 2.5 and 3; population variances 1.25 and 1.5; covariance
    # ((-1.5)(-1) + (-0.5)(-1) + (0.5)(2) + (1.5)(0)) / 4 = 3 / 4
    expected = 2 * 0.75 / (1.25 + 1.5 + (2.5 - 3.0) ** 2)
    assert rg.ccc(x, y) == pytest.approx(expected)
    assert rg.ccc(x, y) == pytest.approx(0.5)


def test_ccc_penalises_shift_and_scale_unlike_pearson():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert rg.pearson(x, x + 1) == pytest.approx(1.0)
    assert rg.ccc(x, x + 1) == pytest.approx(2 * 1.25 / (1.25 + 1.25 + 1))
    assert rg.ccc(x, 2 * x) < 1.0


def test_perfect_prediction():
    scores = rg.evaluate(Y_TRUE, Y_TRUE.copy())
    assert scores["ccc"] == pytest.approx(1.0)
    assert scores["r2"] == pytest.approx(1.0)
    assert scores["pearson"] == pytest.approx(1.0) and scores["spearman"] == pytest.approx(1.0)
    assert scores["rmse"] == 0.0 and scores["mae"] == 0.0


def test_rmse_mae_by_hand():
    assert rg.rmse([1, 2, 3, 4], [1, 2, 3, 6]) == pytest.approx(1.0)
    assert rg.mae([1, 2, 3, 4], [1, 2, 3, 6]) == pytest.approx(0.5)
    assert rg.r2([1, 2, 3, 4], [1, 2, 3, 5]) == pytest.approx(1 - 1 / 5)


def test_undefined_cases_are_nan():
    x = np.array([1.0, 2.0, 3.0])
    constant = np.array([0.1, 0.1, 0.1])
    assert math.isnan(rg.pearson(x, constant)) and math.isnan(rg.spearman(constant, x))
    assert math.isnan(rg.r2(constant, x))  # sklearn gives about -8.7e31 here (rounding)
    assert math.isnan(rg.ccc(constant, constant))
    assert rg.ccc(constant, constant + 1) == 0.0
    assert math.isnan(rg.r2([1.0], [1.0]))
    assert rg.rmse([1.0], [3.0]) == 2.0


def test_bad_input_raises():
    with pytest.raises(ValueError):
        rg.rmse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        rg.evaluate([1.0, math.nan], [1.0, 2.0])


def test_vectorised_rows_equal_scalar():
    y_true = RNG.normal(0, 1, (6, 50))
    y_pred = (y_true + RNG.normal(0, 1, (6, 50))).round(1)
    y_pred[2] = 0.3  # a constant row
    for name, vectorised in rg.VECTORISED.items():
        scalar = getattr(rg, name)
        rows = vectorised(y_true, y_pred)
        assert rows.shape == (6,)
        np.testing.assert_allclose(rows, [scalar(t, p) for t, p in zip(y_true, y_pred)], rtol=1e-10, err_msg=name)
    # leading batch axes of any rank
    assert rg.VECTORISED["ccc"](y_true.reshape(2, 3, 50), y_pred.reshape(2, 3, 50)).shape == (2, 3)


rounded = st.floats(min_value=-100, max_value=100, allow_nan=False).map(lambda v: round(v, 1))
values = st.lists(rounded, min_size=2, max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_item_statistics_equal_the_metrics_of_the_resample(data):
    y_true = np.array(data.draw(values))
    n = y_true.size
    y_pred = np.array(data.draw(st.lists(st.sampled_from([1.0, 2.0, 2.5, 7.0]), min_size=n, max_size=n)))
    resample = st.lists(st.integers(0, n - 1), min_size=n, max_size=n)
    index = np.array(data.draw(st.lists(resample, min_size=1, max_size=4)))
    statistics = rg.statistics_over_items(y_true, y_pred)
    for name, statistic in statistics.items():
        got = statistic(index)
        expected = [getattr(rg, name)(y_true[row], y_pred[row]) for row in index]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=name)


def test_fast_spearman_equals_scipy_on_resamples_with_ties():
    y_true = RNG.integers(1, 10, 500).astype(float)  # many ties
    y_pred = (y_true + RNG.integers(-2, 3, 500)).astype(float)
    index = RNG.integers(0, 500, (20, 500))
    fast = rg.statistics_over_items(y_true, y_pred)["spearman"](index)
    expected = [scipy.stats.spearmanr(y_true[row], y_pred[row]).statistic for row in index]
    np.testing.assert_allclose(fast, expected, rtol=1e-12)
    # the full sample through a 1-d index
    assert float(rg.statistics_over_items(y_true, y_pred)["spearman"](np.arange(500))) == pytest.approx(
        rg.spearman(y_true, y_pred)
    )


# Both ways of computing the bootstrap sums: the compiled one from 0 items, numpy's always.
SUMS_WAYS = pytest.mark.parametrize("compiled_from", [0, 10**9], ids=["compiled", "numpy"])


@SUMS_WAYS
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_metrics_over_items_equals_the_single_statistics(compiled_from, data):
    with mock.patch.object(rg, "COMPILED_FROM_ITEMS", compiled_from):
        _metrics_over_items_equals_the_single_statistics(data)


def _metrics_over_items_equals_the_single_statistics(data):
    y_true = np.array(data.draw(values))
    n = y_true.size
    y_pred = np.array(data.draw(st.lists(st.sampled_from([1.0, 2.0, 2.5, 7.0]), min_size=n, max_size=n)))
    resample = st.lists(st.integers(0, n - 1), min_size=n, max_size=n)
    index = np.array(data.draw(st.lists(resample, min_size=1, max_size=4)))
    joint = rg.metrics_over_items(y_true, y_pred)(index)
    assert joint.shape == (6, index.shape[0])
    single = rg.statistics_over_items(y_true, y_pred)
    for row, name in zip(joint, rg.METRICS):
        np.testing.assert_allclose(row, single[name](index), rtol=1e-9, atol=1e-12, err_msg=name)
    assert rg.metrics_over_items(y_true, y_pred)(np.arange(n)).shape == (6,)


@SUMS_WAYS
def test_metrics_over_items_matches_the_scalar_metrics_on_large_resamples(compiled_from, monkeypatch):
    monkeypatch.setattr(rg, "COMPILED_FROM_ITEMS", compiled_from)
    # The counts form (the compiled sums of one batch): rounded values with many ties, a resample
    # that is constant in y_true, one constant in y_pred, and one holding a single item.
    n = 3000
    y_true = np.round(RNG.uniform(1, 9, n), 2)
    y_pred = np.round(np.clip(y_true + RNG.normal(0, 1, n), 1, 9), 1)
    y_true[:2], y_pred[:2] = 5.0, [3.0, 3.0]
    index = RNG.integers(0, n, (6, n))
    index[1] = 0  # one item: both constant
    index[2] = RNG.integers(0, 2, n)  # y_true constant, y_pred constant too
    index[3, : n // 2] = 0  # half the copies on one item
    got = rg.metrics_over_items(y_true, y_pred)(index)
    for row, name in zip(got, rg.METRICS):
        expected = [getattr(rg, name)(y_true[i], y_pred[i]) for i in index]
        np.testing.assert_allclose(row, expected, rtol=1e-12, atol=1e-12, err_msg=name)
    assert np.isnan(got[rg.METRICS.index("r2"), 1]) and got[rg.METRICS.index("rmse"), 1] == 2.0


def test_the_compiled_and_numpy_sums_agree_and_small_samples_do_not_import_numba():
    import subprocess
    import sys

    from mllm.core.metrics.regression_compiled import resample_sums

    n = 500
    y_true = np.round(RNG.uniform(1, 9, n), 1)
    y_pred = np.round(np.clip(y_true + RNG.normal(0, 1, n), 1, 9), 1)
    index = RNG.integers(0, n, (20, n))
    index[0] = 7  # a constant resample
    ct, cp, abs_error = y_true - y_true.mean(), y_pred - y_pred.mean(), np.abs(y_pred - y_true)
    blocks_t, blocks_p = rg._TieBlocks(y_true), rg._TieBlocks(y_pred)
    sums, modes = resample_sums(index, ct, cp, abs_error, blocks_t.block, blocks_t.n_blocks,
                                blocks_p.block, blocks_p.n_blocks)
    sums_np, modes_np = rg._resample_sums_numpy(index, ct, cp, abs_error, blocks_t, blocks_p)
    np.testing.assert_allclose(sums_np, sums, rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(modes_np, modes)
    assert modes[0].tolist() == [blocks_t.block[7], blocks_p.block[7]] and (modes[1:] == -1).all()

    probe = ("import sys\nimport numpy as np\nfrom mllm.core.metrics.regression import metrics_over_items\n"
             "metrics_over_items(np.arange(50.0), np.arange(50.0) % 7)(np.zeros((3, 50), int))\n"
             "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]
