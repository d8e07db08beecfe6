"""core/metrics/correlation.py: LCC, SRCC, Kendall's tau, MSE per clip and per system, intervals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from mllm.core.metrics import correlation


def sample(n=40, seed=0):
    rng = np.random.default_rng(seed)
    mos = np.round(rng.uniform(1, 5, n) * 2) / 2  # half-point MOS: many ties
    predicted = 0.3 * mos + rng.normal(0, 0.4, n)
    return mos, predicted


def test_the_four_metrics_are_scipys_and_the_squared_error():
    mos, predicted = sample()
    assert correlation.lcc(mos, predicted) == pytest.approx(scipy.stats.pearsonr(mos, predicted).statistic)
    assert correlation.srcc(mos, predicted) == pytest.approx(scipy.stats.spearmanr(mos, predicted).statistic)
    assert correlation.kendall_tau(mos, predicted) == pytest.approx(scipy.stats.kendalltau(mos, predicted).statistic)
    assert correlation.mse(mos, predicted) == pytest.approx(np.mean((predicted - mos) ** 2))


def test_kendall_is_tau_b_counted_by_hand():
    mos = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0]
    predicted = [0.1, 0.3, 0.2, 0.2, 0.5, 0.9]
    concordant = discordant = tied_mos = tied_predicted = 0
    for i, j in itertools.combinations(range(6), 2):
        dx, dy = mos[i] - mos[j], predicted[i] - predicted[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tied_mos += 1
        elif dy == 0:
            tied_predicted += 1
        elif dx * dy > 0:
            concordant += 1
        else:
            discordant += 1
    tau_b = (concordant - discordant) / math.sqrt((concordant + discordant + tied_mos)
                                                  * (concordant + discordant + tied_predicted))
    assert correlation.kendall_tau(mos, predicted) == pytest.approx(tau_b)


def test_undefined_correlations_are_nan_not_a_convention_value():
    for metric in (correlation.lcc, correlation.srcc, correlation.kendall_tau):
        assert math.isnan(metric([1, 2, 3], [5, 5, 5]))
        assert math.isnan(metric([2.0], [1.0]))
    assert correlation.mse([2.0], [1.0]) == 1.0
    with pytest.raises(ValueError, match="finite"):
        correlation.mse([1, 2], [1, math.nan])


def test_per_system_figures_are_the_metrics_of_the_system_means():
    systems = ["x", "x", "y", "y", "y", "z", "w"]
    mos = [4.0, 5.0, 2.0, 3.0, 1.0, 3.5, 1.5]
    predicted = [0.8, 0.6, 0.2, 0.1, 0.3, 0.4, 0.25]
    names, mean_mos, mean_predicted = correlation.system_means(systems, mos, predicted)
    assert names == ["w", "x", "y", "z"]
    assert mean_mos.tolist() == [1.5, 4.5, 2.0, 3.5]
    assert mean_predicted == pytest.approx([0.25, 0.7, 0.2, 0.4])
    per_system = correlation.evaluate_per_system(systems, mos, predicted)
    assert per_system["n"] == 4
    assert per_system["srcc"] == pytest.approx(scipy.stats.spearmanr([1.5, 4.5, 2.0, 3.5], [0.25, 0.7, 0.2, 0.4]).statistic)


def test_clip_intervals_are_scipys_paired_percentile_bootstrap():
    mos, predicted = sample(30, seed=1)
    entries = correlation.clip_intervals(mos, predicted, n_resamples=300, seed=7)

    def pearson(x, y, axis=-1):
        dx, dy = x - x.mean(axis, keepdims=True), y - y.mean(axis, keepdims=True)
        return (dx * dy).sum(axis) / np.sqrt((dx * dx).sum(axis) * (dy * dy).sum(axis))

    reference = scipy.stats.bootstrap((mos, predicted), pearson, paired=True, vectorized=True, n_resamples=300,
                                      method="percentile", random_state=np.random.default_rng(7))
    assert entries["lcc"]["low"] == pytest.approx(reference.confidence_interval.low)
    assert entries["lcc"]["high"] == pytest.approx(reference.confidence_interval.high)
    for name in correlation.METRICS:
        assert entries[name]["low"] <= entries[name]["value"] <= entries[name]["high"]
    assert correlation.clip_intervals(mos, predicted, n_resamples=300, seed=7) == entries  # seeded


def test_per_system_intervals_resample_systems_not_clips():
    rng = np.random.default_rng(2)
    quality = np.arange(8.0)
    systems = [f"s{i}" for i in range(8) for _ in range(3)]
    mos = np.repeat(quality, 3) + rng.normal(0, 0.3, 24)
    predicted = np.repeat(quality, 3) * 0.1 + rng.normal(0, 0.2, 24)
    once = correlation.system_intervals(systems, mos, predicted, n_resamples=400, seed=0)
    # ten times the clips of each system, same means: the per-system figures cannot change
    tenfold = correlation.system_intervals([s for s in systems for _ in range(10)], np.repeat(mos, 10),
                                           np.repeat(predicted, 10), n_resamples=400, seed=0)
    for name in correlation.METRICS:
        assert tenfold[name] == pytest.approx(once[name])
    per_clip = correlation.clip_intervals(np.repeat(mos, 10), np.repeat(predicted, 10), n_resamples=400)
    narrow = correlation.clip_intervals(mos, predicted, n_resamples=400)
    assert per_clip["lcc"]["high"] - per_clip["lcc"]["low"] < narrow["lcc"]["high"] - narrow["lcc"]["low"]
    assert once["lcc"]["low"] < once["lcc"]["value"] <= once["lcc"]["high"]


def test_per_system_intervals_leave_out_resamples_of_fewer_than_three_systems():
    systems = ["a", "b", "c", "d"] * 2
    mos = [1.0, 2.0, 3.0, 4.0, 1.5, 2.5, 2.9, 4.4]
    predicted = [0.1, 0.3, 0.2, 0.4, 0.2, 0.2, 0.35, 0.5]
    entries = correlation.system_intervals(systems, mos, predicted, n_resamples=500, seed=0)
    index = np.random.default_rng(0).integers(0, 4, (500, 4))
    usable = sum(len(set(row)) >= 3 for row in index.tolist())
    assert entries["srcc"]["n_resamples_used"] <= usable < 500
    assert entries["mse"]["n_resamples_used"] == 500
    two = correlation.system_intervals(["a", "b", "a", "b"], [1, 2, 1.5, 2.5], [0.1, 0.2, 0.3, 0.1])
    assert math.isnan(two["lcc"]["low"]) and two["lcc"]["n_resamples_used"] == 0


def test_a_ranking_right_on_every_resample_has_no_interval_for_any_rank_correlation():
    """Five systems ranked right by the model: every resample gives SRCC and Kendall's tau 1 (the
    latter up to rounding, 0.9999999999999998 on some), so neither has an interval; LCC varies."""
    systems = [f"level-{k}" for k in range(5)] * 4
    mos = [5.0 - k for k in range(5)] * 4
    predicted = [0.9 - 0.2 * k - 0.03 * k * k + 0.01 * (i // 5) for i, k in enumerate(list(range(5)) * 4)]
    entries = correlation.system_intervals(systems, mos, predicted, n_resamples=300, seed=0)
    for name in ("srcc", "kendall_tau"):
        assert entries[name]["value"] == pytest.approx(1.0)
        assert math.isnan(entries[name]["low"]) and math.isnan(entries[name]["high"]), (name, entries[name])
    assert entries["lcc"]["low"] < entries["lcc"]["high"]


def test_comparisons_of_two_models_on_the_same_clips_and_systems():
    mos, predicted = sample(60, seed=4)
    worse = np.random.default_rng(5).permutation(predicted)  # the same scores given to the wrong clips
    clips = correlation.clip_comparison(mos, predicted, worse, n_resamples=300)
    assert clips["srcc"]["a"] == pytest.approx(correlation.srcc(mos, predicted))
    assert clips["srcc"]["b"] == pytest.approx(correlation.srcc(mos, worse))
    assert clips["srcc"]["difference"] > 0 and clips["srcc"]["p_value"] < 0.05
    same = correlation.clip_comparison(mos, predicted, predicted, n_resamples=100)
    assert same["lcc"]["difference"] == 0 and same["lcc"]["p_value"] == 1.0
    systems = [f"s{i % 10}" for i in range(60)]
    by_system = correlation.system_comparison(systems, mos, predicted, predicted, n_resamples=100)
    assert by_system["kendall_tau"]["difference"] == 0 and by_system["kendall_tau"]["p_value"] == 1.0
    assert by_system["kendall_tau"]["low"] == by_system["kendall_tau"]["high"] == 0.0
