"""core.metrics.bootstrap: percentile intervals, the paired test, Clopper-Pearson."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mllm.core.metrics import bootstrap as bs
from mllm.core.metrics import regression as rg

def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_interval_contains_the_observed_mean():
    scores = (rng().random(5000) < 0.7).astype(float)
    interval = bs.bootstrap_interval(bs.mean_statistic, (scores,))
    assert interval.low < scores.mean() < interval.high
    # the binomial standard error is sqrt(.7 * .3 / 5000) = 0.0065: a 95 % interval is about 0.025 wide
    assert 0.018 < interval.high - interval.low < 0.032
    assert (interval.confidence, interval.n_resamples) == (0.95, 1000)
    assert "percentile" in interval.method


def test_width_shrinks_like_one_over_sqrt_n():
    widths = {}
    for n in (400, 6400):
        values = rng(n).normal(0, 1, n)
        interval = bs.bootstrap_interval(bs.mean_statistic, (values,), n_resamples=2000)
        widths[n] = interval.high - interval.low
    # 16 x the items -> about a quarter of the width
    assert 3.0 < widths[400] / widths[6400] < 5.3


def test_same_seed_same_interval_other_seed_other_interval():
    values = rng().normal(0, 1, 300)
    a = bs.bootstrap_interval(bs.mean_statistic, (values,), seed=7)
    b = bs.bootstrap_interval(bs.mean_statistic, (values,), seed=7)
    c = bs.bootstrap_interval(bs.mean_statistic, (values,), seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)


def test_confidence_level_widens_the_interval():
    values = rng().normal(0, 1, 500)
    narrow = bs.bootstrap_interval(bs.mean_statistic, (values,), confidence=0.8)
    wide = bs.bootstrap_interval(bs.mean_statistic, (values,), confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_paired_arrays_are_resampled_together():
    # item i of x and of y travel together: x - y is exactly -1 on every resample (no spread,
    # hence NaN); resampled independently, the mean difference would spread by about 0.2
    x = rng().integers(0, 10, 200).astype(float)
    interval = bs.bootstrap_interval(lambda a, b: (a - b).mean(axis=-1), (x, x + 1))
    assert math.isnan(interval.low) and math.isnan(interval.high)
    y = rng().normal(0, 1, 200)
    interval = bs.bootstrap_interval(rg.mae_vectorised, (y, y + rng(1).normal(0, 1, 200)))
    assert 0.6 < interval.low < interval.high < 1.0


def test_regression_statistics_over_items():
    n = 2000
    y_true = rng().normal(5, 1, n)
    y_pred = y_true + rng(1).normal(0, 0.8, n)
    index = np.arange(n)
    for name, statistic in rg.statistics_over_items(y_true, y_pred).items():
        observed = getattr(rg, name)(y_true, y_pred)
        interval = bs.bootstrap_interval(statistic, (index,), n_resamples=300)
        assert interval.low < observed < interval.high, name
        by_values = bs.bootstrap_interval(rg.VECTORISED[name], (y_true, y_pred), n_resamples=300)
        # the same resamples (same seed, same indices) through values or through indices
        assert (by_values.low, by_values.high) == pytest.approx((interval.low, interval.high), rel=1e-9), name


def test_degenerate_cases_give_nan_not_an_exception():
    for data in ((np.array([1.0]),), (np.array([]),)):
        interval = bs.bootstrap_interval(bs.mean_statistic, data)
        assert math.isnan(interval.low) and math.isnan(interval.high)
    interval = bs.bootstrap_interval(bs.mean_statistic, (np.ones(50),))  # 50 of 50 correct
    assert math.isnan(interval.low) and math.isnan(interval.high)
    constant = np.full(30, 2.0)
    interval = bs.bootstrap_interval(rg.pearson_vectorised, (rng().normal(0, 1, 30), constant))
    assert math.isnan(interval.low)


def test_bad_data_raises():
    with pytest.raises(ValueError):
        bs.bootstrap_interval(bs.mean_statistic, (np.ones(5), np.ones(4)))
    with pytest.raises(ValueError):
        bs.bootstrap_interval(bs.mean_statistic, (np.ones((5, 2)),))


def test_large_n_uses_bounded_batches():
    seen = []

    def statistic(values):
        seen.append(values.shape)
        return values.mean(axis=-1)

    values = rng().random(bs.MAX_BATCH_ELEMENTS // 4)
    bs.bootstrap_interval(statistic, (values,), n_resamples=10)
    assert max(shape[0] * shape[1] for shape in seen) <= bs.MAX_BATCH_ELEMENTS
    assert sum(shape[0] for shape in seen) == 10


def test_paired_difference_of_identical_systems():
    scores = (rng().random(300) < 0.6).astype(float)
    test = bs.paired_difference(bs.mean_statistic, (scores,), (scores.copy(),))
    assert test["difference"] == 0.0
    assert test["p_value"] == 1.0
    assert test["low"] == 0.0 and test["high"] == 0.0
    assert set(test) == {"difference", "low", "high", "p_value", "n_resamples", "confidence"}


def test_paired_difference_clearly_better_system():
    a = (rng(1).random(400) < 0.9).astype(float)  # 90 % right
    b = (rng(2).random(400) < 0.6).astype(float)  # 60 % right
    test = bs.paired_difference(bs.mean_statistic, (a,), (b,))
    assert test["difference"] == pytest.approx(a.mean() - b.mean())
    assert test["p_value"] < 0.01
    assert 0 < test["low"] < test["difference"] < test["high"]
    reverse = bs.paired_difference(bs.mean_statistic, (b,), (a,))
    assert reverse["high"] < 0 and reverse["p_value"] < 0.01


def test_paired_difference_of_equally_good_systems_is_not_significant():
    # A and B disagree on 10 of 200 items, each right on 5 of them: no difference
    a = (rng(3).random(200) < 0.7).astype(float)
    b = a.copy()
    right_a = np.flatnonzero(a == 1)[:5]
    right_b = np.flatnonzero(a == 0)[:5]
    b[right_a], b[right_b] = 0.0, 1.0
    test = bs.paired_difference(bs.mean_statistic, (a,), (b,))
    assert test["difference"] == 0.0
    assert test["p_value"] > 0.5
    assert test["low"] < 0 < test["high"]


def test_pairing_removes_item_difficulty():
    # hard and easy items: both systems share the item effect, B is 0.1 worse everywhere
    difficulty = rng().normal(0, 3, 100)
    a = difficulty + rng(1).normal(0, 0.05, 100)
    b = a - 0.1
    test = bs.paired_difference(bs.mean_statistic, (a,), (b,))
    assert test["p_value"] < 0.01  # unpaired, the item spread (sd 3) would swamp 0.1
    assert test["difference"] == pytest.approx(0.1)


def test_paired_difference_p_value_definition():
    a = rng().normal(0.1, 1, 80)
    b = rng(1).normal(0.0, 1, 80)
    test = bs.paired_difference(bs.mean_statistic, (a,), (b,), n_resamples=500, seed=3)
    # recompute d* with the same generator stream scipy uses: the interval bounds must be quantiles of it
    import scipy.stats

    result = scipy.stats.bootstrap(
        (a, b), lambda x, y, axis=-1: x.mean(axis=-1) - y.mean(axis=-1), n_resamples=500, batch=500,
        vectorized=True, paired=True, axis=-1, method="percentile", rng=np.random.default_rng(3),
    )
    d = result.bootstrap_distribution
    assert test["p_value"] == pytest.approx(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))
    assert (test["low"], test["high"]) == pytest.approx(tuple(result.confidence_interval))


def test_paired_difference_small_n():
    test = bs.paired_difference(bs.mean_statistic, (np.array([1.0]),), (np.array([0.0]),))
    assert test["difference"] == 1.0 and math.isnan(test["p_value"]) and math.isnan(test["low"])


@pytest.mark.parametrize(
    "successes, n, low, high",
    [
        (0, 10, 0.0, 0.30850),
        (10, 10, 0.69150, 1.0),
        (5, 10, 0.18709, 0.81291),
        (1, 3, 0.0084038, 0.90570),
    ],
)
def test_clopper_pearson_known_values(successes, n, low, high):
    got = bs.clopper_pearson(successes, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_clopper_pearson_edges():
    assert all(math.isnan(v) for v in bs.clopper_pearson(0, 0))
    with pytest.raises(ValueError):
        bs.clopper_pearson(11, 10)
    wide = bs.clopper_pearson(5, 10, confidence=0.99)
    narrow = bs.clopper_pearson(5, 10, confidence=0.9)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_bootstrap_intervals_share_resamples_and_equal_separate_calls():
    n = 500
    y_true = rng().normal(5, 1, n)
    y_pred = np.round(y_true + rng(1).normal(0, 1, n), 1)
    index = np.arange(n)
    joint = bs.bootstrap_intervals(rg.metrics_over_items(y_true, y_pred), (index,), n_resamples=200, seed=4)
    separate = rg.statistics_over_items(y_true, y_pred)
    assert len(joint) == len(rg.METRICS) == 6
    for name, interval in zip(rg.METRICS, joint):
        alone = bs.bootstrap_interval(separate[name], (index,), n_resamples=200, seed=4)
        assert (interval.low, interval.high) == pytest.approx((alone.low, alone.high), rel=1e-9), name
        assert interval.low < getattr(rg, name)(y_true, y_pred) < interval.high, name


def test_bootstrap_intervals_nan_rules_per_output():
    statistic = lambda x: np.stack([x.mean(axis=-1), np.zeros(x.shape[:-1])])  # noqa: E731
    spread, constant = bs.bootstrap_intervals(statistic, (rng().random(100),))
    assert spread.low < spread.high and math.isnan(constant.low)
    few = bs.bootstrap_intervals(statistic, (np.array([0.5]),))
    assert len(few) == 2 and all(math.isnan(i.low) for i in few)
    with pytest.raises(ValueError):
        bs.bootstrap_intervals(bs.mean_statistic, (rng().random(100),))


def test_one_array_resamples_as_the_paired_draw_does():
    # one array is resampled unpaired (one look-up fewer per resample): the same indices as the
    # paired draw of several arrays, so the same interval as a statistic of (x, anything)
    x = rng(11).normal(0, 1, 200)
    alone = bs.bootstrap_interval(bs.mean_statistic, (x,), seed=5)
    paired = bs.bootstrap_interval(lambda a, b: a.mean(axis=-1), (x, np.zeros(200)), seed=5)
    assert (alone.low, alone.high) == (paired.low, paired.high)


@pytest.mark.parametrize("successes, n", [(0, 7), (3, 7), (7, 7), (1, 1), (42, 100), (999, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_clopper_pearson_equals_scipy_binomtest(successes, n, confidence):
    import scipy.stats

    scipy_interval = scipy.stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="exact")
    assert bs.clopper_pearson(successes, n, confidence) == pytest.approx((scipy_interval.low, scipy_interval.high), abs=1e-10)


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("n, n_resamples", [(37, 1000), (bs.MAX_BATCH_ELEMENTS // 300, 700)])
def test_same_distribution_and_interval_as_scipy_bootstrap(paired, n, n_resamples):
    # the bootstrap is written out (no scipy.stats import); it must draw and cut what scipy does
    import scipy.stats

    x, y = rng(2).normal(0, 1, n), rng(3).normal(0, 1, n)
    data = (x, y) if paired else (x,)
    statistic = (lambda a, b: (a * b).mean(axis=-1)) if paired else bs.mean_statistic
    batch = max(1, min(n_resamples, bs.MAX_BATCH_ELEMENTS // n))
    expected = scipy.stats.bootstrap(
        data, lambda *arrays, axis=-1: statistic(*arrays), n_resamples=n_resamples, batch=batch, vectorized=True,
        paired=paired, axis=-1, confidence_level=0.9, method="percentile", rng=np.random.default_rng(8),
    )
    got = bs._bootstrap(statistic, list(data), n_resamples, 0.9, 8)
    np.testing.assert_allclose(got.distribution, expected.bootstrap_distribution, rtol=0, atol=1e-12)
    assert (float(got.low), float(got.high)) == pytest.approx(tuple(expected.confidence_interval), abs=1e-12)


def test_a_statistic_of_item_indices_gets_the_drawn_indices():
    # data = (arange(n),): the statistic sees the indices themselves, the same as a look-up would give
    n = 50
    values = rng(4).normal(0, 1, n)
    by_index = bs.bootstrap_interval(lambda index: values[index].mean(axis=-1), (np.arange(n),), seed=2)
    by_value = bs.bootstrap_interval(bs.mean_statistic, (values,), seed=2)
    assert (by_index.low, by_index.high) == (by_value.low, by_value.high)


def test_no_spread_allows_for_rounding():
    # every resample perfectly ordered: Kendall's tau 1.0 on some, 1 - 2e-16 on others (scipy's rounding)
    from scipy.stats import kendalltau

    x, y = np.arange(30.0), np.arange(30.0) ** 1.7 + 0.1
    tau = lambda a, b: np.array([kendalltau(a[i], b[i]).statistic for i in range(a.shape[0])])  # noqa: E731
    (interval,) = bs.bootstrap_intervals(lambda a, b: np.atleast_2d(tau(np.atleast_2d(a), np.atleast_2d(b))), (x, y),
                                      n_resamples=50)
    assert math.isnan(interval.low) and math.isnan(interval.high)
