"""core/metrics/preference.py: labels, the decision from scores, the 0.5 tie rule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mllm.core.metrics import preference


def test_labels_are_read_in_every_spelling_and_others_refused():
    assert [preference.read_label(x) for x in ("a", " A ", "model_a", "b", "MODEL_B", "both", "Neither")] == [1, 1, 1, -1, -1, 0, 0]
    for bad in ("tie", "", "c", None, 1, "a or b"):
        with pytest.raises(ValueError, match="preference is one of"):
            preference.read_label(bad)


def test_the_decision_comes_from_the_score_difference_and_the_margin():
    a = [0.875, 0.25, 0.5, 0.75, 0.25]
    b = [0.125, 0.375, 0.5, 0.5, 0.75]  # differences 0.75, -0.125, 0, 0.25, -0.5 (exact in binary)
    assert preference.decide(a, b).tolist() == [1, -1, 0, 1, -1]  # only equal scores tie without a margin
    assert preference.decide(a, b, margin=0.25).tolist() == [1, 0, 0, 0, -1]  # |d| <= margin is a tie
    assert preference.decide(a, b, margin=0.5).tolist() == [1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="finite"):
        preference.decide([math.nan], [0.0])
    with pytest.raises(ValueError, match="margin"):
        preference.decide([1.0], [0.0], margin=-0.1)
    with pytest.raises(ValueError, match="shape"):
        preference.decide([1.0, 2.0], [0.0])


def test_the_credit_of_every_combination_is_cmi_rewardbenchs():
    # CMI-RewardBench's evaluator: 1 when the labels are equal (a tie for a tie too), 0.5 when either
    # is a tie ("neither" is read as "both"), 0 otherwise; written out as a table here
    table = {("a", "a"): 1.0, ("a", "both"): 0.5, ("a", "b"): 0.0,
             ("both", "a"): 0.5, ("both", "both"): 1.0, ("both", "b"): 0.5,
             ("b", "a"): 0.0, ("b", "both"): 0.5, ("b", "b"): 1.0}
    spell = {"a": ["a", "model_a"], "b": ["b", "model_b"], "both": ["both", "neither"]}
    for (human, model), credit in table.items():
        for h, m in itertools.product(spell[human], spell[model]):
            got = preference.agreement([preference.read_label(h)], [preference.read_label(m)])
            assert got.tolist() == [credit], (h, m)


def test_accuracy_counts_ties_half_and_decided_accuracy_leaves_human_ties_out():
    human = [1, 1, -1, 0, 0, -1, 1]
    model = [1, -1, -1, 1, 0, 0, 0]
    credits = [1, 0, 1, 0.5, 1, 0.5, 0.5]
    assert preference.preference_accuracy(human, model) == pytest.approx(sum(credits) / 7)
    decided = [c for c, h in zip(credits, human) if h != 0]
    assert preference.decided_accuracy(human, model) == pytest.approx(sum(decided) / len(decided))
    figures = preference.evaluate(human, model)
    assert (figures["n"], figures["n_human_ties"], figures["n_model_ties"]) == (7, 2, 3)


def test_no_pair_gives_nan_and_bad_outcomes_are_refused():
    assert math.isnan(preference.preference_accuracy([], []))
    assert math.isnan(preference.decided_accuracy([0, 0], [1, -1]))
    with pytest.raises(ValueError, match="outcomes"):
        preference.agreement([2], [1])
    with pytest.raises(ValueError, match="equal length"):
        preference.agreement([1, 1], [1])


def test_a_model_that_always_calls_a_tie_scores_one_half_on_decided_pairs():
    rng = np.random.default_rng(3)
    human = rng.choice([-1, 1], 200)
    assert preference.preference_accuracy(human, np.zeros(200, int)) == 0.5
    assert preference.preference_accuracy(human, -human) == 0.0
