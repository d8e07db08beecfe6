"""core.metrics.tempo: LLark's Acc1/Acc2 at the tolerance boundary; vectorised == scalar."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mllm.core.metrics import tempo


def test_acc1_boundary():
    # 4 % of 120 is 4.8 BPM
    assert tempo.acc1(120, 120) == 1.0
    assert tempo.acc1(120, 124.8) == 1.0
    assert tempo.acc1(120, 115.2) == 1.0
    assert tempo.acc1(120, 124.9) == 0.0
    assert tempo.acc1(120, 115.1) == 0.0
    # 4 % of 130 is 5.2: both decimal boundary values are in, though 130 - 124.8 > 5.2 in binary
    assert 130 - 124.8 > 0.04 * 130
    assert tempo.acc1(130, 124.8) == 1.0
    assert tempo.acc1(130, 135.2) == 1.0
    assert tempo.acc1(130, 135.3) == 0.0


def test_acc1_does_not_accept_octave_errors():
    assert tempo.acc1(120, 240) == 0.0
    assert tempo.acc1(120, 60) == 0.0


@pytest.mark.parametrize("estimate", [120, 240, 60, 40, 360, 249.6, 57.6, 41.6, 38.4])
def test_acc2_metrical_levels_count(estimate):
    assert tempo.acc2(120, estimate) == 1.0


@pytest.mark.parametrize("estimate", [180, 80, 90, 250, 30, 480, 124.9 * 2])
def test_acc2_other_ratios_do_not(estimate):
    assert tempo.acc2(120, estimate) == 0.0


def test_tolerance_is_relative_to_the_scaled_reference():
    # at k = 2 the window is 240 +- 9.6 (4 % of 240), not 240 +- 4.8
    assert tempo.acc2(120, 249.6) == 1.0
    assert tempo.acc2(120, 249.7) == 0.0
    # at k = 1/3 the window is 40 +- 1.6
    assert tempo.acc2(120, 41.6) == 1.0
    assert tempo.acc2(120, 41.7) == 0.0


def test_tolerance_parameter():
    assert tempo.acc1(100, 107, tolerance=0.08) == 1.0
    assert tempo.acc1(100, 107) == 0.0


def test_no_answer_scores_zero():
    assert tempo.acc1(120, None) == 0.0
    assert tempo.acc2(120, None) == 0.0
    assert tempo.acc1(120, math.nan) == 0.0
    assert tempo.acc2(120, math.inf) == 0.0
    assert tempo.acc2(120, -120) == 0.0
    np.testing.assert_array_equal(tempo.acc1_array(np.array([120.0]), np.array([np.nan])), [0.0])
    np.testing.assert_array_equal(tempo.acc2_array(np.array([120.0]), np.array([np.nan])), [0.0])


def test_invalid_reference_raises():
    for reference in (0, -5, math.nan, math.inf):
        with pytest.raises(ValueError):
            tempo.acc1(reference, 120)
    with pytest.raises(ValueError):
        tempo.acc2_array(np.array([120.0, 0.0]), np.array([120.0, 1.0]))
    with pytest.raises(ValueError):
        tempo.acc1_array(np.array([120.0]), np.array([120.0, 1.0]))


def test_evaluate():
    scores = tempo.evaluate([120, 120, 64, 100], [121, 60, 128, None])
    assert scores == {"acc1": pytest.approx(0.25), "acc2": pytest.approx(0.75)}
    assert list(scores) == ["acc1", "acc2"]


tempi = st.floats(min_value=20, max_value=300, allow_nan=False)
estimates = st.one_of(st.floats(min_value=0, max_value=1000, allow_nan=False), st.just(math.nan))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(tempi, estimates), min_size=1, max_size=30), st.sampled_from([0.02, 0.04, 0.08]))
def test_vectorised_equals_scalar(pairs, tolerance):
    references = np.array([p[0] for p in pairs])
    ests = np.array([p[1] for p in pairs])
    np.testing.assert_array_equal(
        tempo.acc1_array(references, ests, tolerance), [tempo.acc1(r, e, tolerance) for r, e in pairs]
    )
    np.testing.assert_array_equal(
        tempo.acc2_array(references, ests, tolerance), [tempo.acc2(r, e, tolerance) for r, e in pairs]
    )


@settings(max_examples=100, deadline=None)
@given(tempi, st.sampled_from([(1, 1), (2, 1), (3, 1), (1, 2), (1, 3)]), st.floats(min_value=-0.039, max_value=0.039))
def test_acc2_accepts_every_level_inside_the_window(reference, factor, offset):
    target = reference * factor[0] / factor[1]
    assert tempo.acc2(reference, target * (1 + offset)) == 1.0


def test_vectorised_on_random_data():
    rng = np.random.default_rng(0)
    references = rng.uniform(40, 250, 5000)
    factors = rng.choice([1, 2, 3, 0.5, 1 / 3, 1.5], 5000)
    ests = references * factors * rng.uniform(0.9, 1.1, 5000)
    a1 = tempo.acc1_array(references, ests)
    a2 = tempo.acc2_array(references, ests)
    assert (a2 >= a1).all()
    assert 0 < a1.mean() < a2.mean() < 1
    assert list(a1[:200]) == [tempo.acc1(r, e) for r, e in zip(references[:200], ests[:200])]
    assert list(a2[:200]) == [tempo.acc2(r, e) for r, e in zip(references[:200], ests[:200])]
