"""core.metrics.beats: the same numbers as mir_eval.beat, trimming, empty estimates."""

from __future__ import annotations

import warnings

import mir_eval
import numpy as np
import pytest

from mllm.core.metrics import beats

REFERENCE = np.arange(0.5, 20.0, 0.5)  # 120 BPM, 39 beats


def mir_eval_scores(reference, estimate):
    _, cmlt, _, amlt = mir_eval.beat.continuity(reference, estimate)
    return {"f_measure": mir_eval.beat.f_measure(reference, estimate), "cmlt": cmlt, "amlt": amlt}


ESTIMATES = {
    "jittered": REFERENCE + np.random.default_rng(0).normal(0, 0.03, REFERENCE.size),
    "double tempo": np.arange(0.5, 20.0, 0.25),
    "half tempo": np.arange(0.5, 20.0, 1.0),
    "off-beat": REFERENCE + 0.25,
    "late start": REFERENCE[10:],
    "sparse": np.array([0.52, 3.0, 7.49, 12.0]),
}


@pytest.mark.parametrize("name", sorted(ESTIMATES))
def test_same_as_mir_eval(name):
    estimate = ESTIMATES[name]
    assert beats.evaluate(REFERENCE, estimate) == pytest.approx(mir_eval_scores(REFERENCE, estimate))


def test_metrical_level_errors_separate_cmlt_from_amlt():
    double = beats.evaluate(REFERENCE, ESTIMATES["double tempo"])
    assert double["cmlt"] == 0.0 and double["amlt"] > 0.9
    offbeat = beats.evaluate(REFERENCE, ESTIMATES["off-beat"])
    assert offbeat["f_measure"] == 0.0 and offbeat["cmlt"] == 0.0 and offbeat["amlt"] > 0.9


def test_perfect_estimate():
    assert beats.evaluate(REFERENCE, REFERENCE.copy()) == {"f_measure": 1.0, "cmlt": 1.0, "amlt": 1.0}


def test_keys_in_order():
    assert list(beats.evaluate(REFERENCE, REFERENCE)) == ["f_measure", "cmlt", "amlt"]


def test_empty_and_single_estimates_score_zero_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert beats.evaluate(REFERENCE, np.array([])) == {"f_measure": 0.0, "cmlt": 0.0, "amlt": 0.0}
        single = beats.evaluate(REFERENCE, np.array([0.5]))
    assert single["cmlt"] == 0.0 and single["amlt"] == 0.0
    assert single["f_measure"] == pytest.approx(mir_eval.beat.f_measure(REFERENCE, np.array([0.5])))


def test_empty_reference_raises():
    with pytest.raises(ValueError):
        beats.evaluate(np.array([]), REFERENCE)
    with pytest.raises(ValueError):
        beats.evaluate(np.array([1.0, 2.0]), REFERENCE, trim_before=5.0)


def test_unsorted_estimate_is_sorted():
    shuffled = np.random.default_rng(1).permutation(REFERENCE)
    assert beats.evaluate(REFERENCE, shuffled) == {"f_measure": 1.0, "cmlt": 1.0, "amlt": 1.0}


def test_malformed_input_raises():
    with pytest.raises(ValueError):
        beats.evaluate(REFERENCE[::-1], REFERENCE)  # a reference must be increasing
    with pytest.raises(ValueError):
        beats.evaluate(REFERENCE, np.array([1.0, np.nan]))
    with pytest.raises(ValueError):
        beats.evaluate(REFERENCE.reshape(-1, 1), REFERENCE)


def test_trim_before():
    # wrong in the first 5 s, right afterwards: trimming at 5 s leaves only the right part
    estimate = np.concatenate([REFERENCE[REFERENCE < 5] + 0.2, REFERENCE[REFERENCE >= 5]])
    untrimmed = beats.evaluate(REFERENCE, estimate)
    trimmed = beats.evaluate(REFERENCE, estimate, trim_before=5.0)
    assert untrimmed["f_measure"] < 1.0
    assert trimmed == {"f_measure": 1.0, "cmlt": 1.0, "amlt": 1.0}
    expected = mir_eval_scores(mir_eval.beat.trim_beats(REFERENCE), mir_eval.beat.trim_beats(estimate))
    assert trimmed == pytest.approx(expected)
    # the default keeps every beat (LLM clips are short)
    assert untrimmed == pytest.approx(mir_eval_scores(REFERENCE, estimate))
