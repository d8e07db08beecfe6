"""core.metrics.chords: hand-counted durations, comparisons, no-chord handling, corpus pooling."""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import pytest

from mllm.core.metrics import chords


def test_hand_counted_majmin():
    # ref C:maj 0-2, A:min 2-4; est C:maj 0-3, A:min 3-4: wrong only over 2-3 -> 3 of 4 s
    ref = np.array([[0, 2], [2, 4]]), ["C:maj", "A:min"]
    est = np.array([[0, 3], [3, 4]]), ["C:maj", "A:min"]
    scores = chords.evaluate(*ref, *est)
    assert scores["majmin"] == (pytest.approx(0.75), pytest.approx(4.0))
    assert scores["root"] == (pytest.approx(0.75), pytest.approx(4.0))
    assert list(scores) == list(chords.COMPARISONS)


def test_same_scores_as_mir_eval_evaluate():
    ref_i = np.array([[0.0, 1.5], [1.5, 3.0], [3.0, 4.2], [4.2, 6.0], [6.0, 7.0]])
    ref_l = ["C:maj7", "A:min", "F:maj/3", "G:7", "N"]
    est_i = np.array([[0.3, 1.0], [1.0, 2.5], [2.5, 4.0], [4.0, 6.5], [6.5, 8.0]])
    est_l = ["C:maj", "A:min7", "F:maj", "G:maj", "C:maj"]
    ours = chords.evaluate(ref_i, ref_l, est_i, est_l)
    theirs = mir_eval.chord.evaluate(ref_i, ref_l, est_i, est_l)
    for comparison in chords.COMPARISONS:
        assert ours[comparison][0] == pytest.approx(theirs[comparison]), comparison


def test_mirex_versus_root_and_sevenths():
    # C:maj7 (C E G B) against C:maj (C E G): same root, 3 shared notes, wrong seventh
    scores = chords.evaluate(np.array([[0, 4]]), ["C:maj7"], np.array([[0, 4]]), ["C:maj"])
    assert scores["root"][0] == 1.0
    assert scores["mirex"][0] == 1.0
    assert scores["majmin"][0] == 1.0  # maj7 reduces to maj
    assert scores["sevenths"][0] == 0.0
    assert scores["tetrads"][0] == 0.0
    # A:min (A C E) against C:maj (C E G): different root, 2 shared notes
    scores = chords.evaluate(np.array([[0, 4]]), ["A:min"], np.array([[0, 4]]), ["C:maj"])
    assert scores["root"][0] == 0.0 and scores["mirex"][0] == 0.0
    # A:min7 (A C E G) against C:maj (C E G): different root, but 3 shared notes: mirex counts it
    scores = chords.evaluate(np.array([[0, 4]]), ["A:min7"], np.array([[0, 4]]), ["C:maj"])
    assert scores["root"][0] == 0.0 and scores["mirex"][0] == 1.0


def test_left_out_reference_chords_shrink_the_duration():
    # majmin leaves C:dim out; sevenths leaves C:dim out too, root keeps it
    ref_i, ref_l = np.array([[0, 1], [1, 4]]), ["C:dim", "G:maj"]
    est_i, est_l = np.array([[0, 4]]), ["G:maj"]
    scores = chords.evaluate(ref_i, ref_l, est_i, est_l)
    assert scores["majmin"] == (pytest.approx(1.0), pytest.approx(3.0))
    assert scores["root"] == (pytest.approx(0.75), pytest.approx(4.0))


def test_nothing_comparable_gives_nan_and_zero_duration():
    score, duration = chords.evaluate(np.array([[0, 2]]), ["C:dim"], np.array([[0, 2]]), ["C:maj"])["majmin"]
    assert math.isnan(score) and duration == 0.0


def test_no_chord_handling():
    ref_i, ref_l = np.array([[0, 2], [2, 4]]), ["N", "C:maj"]
    # "N" against "N" is right, "N" against a chord is wrong
    assert chords.evaluate(ref_i, ref_l, np.array([[0, 2], [2, 4]]), ["N", "C:maj"])["majmin"][0] == 1.0
    assert chords.evaluate(ref_i, ref_l, np.array([[0, 4]]), ["C:maj"])["majmin"][0] == pytest.approx(0.5)
    # an estimate that covers only part of the reference is padded with "N"
    assert chords.evaluate(ref_i, ref_l, np.array([[2, 3]]), ["C:maj"])["majmin"] == (pytest.approx(0.75), 4.0)
    # an empty estimate is all "N"
    assert chords.evaluate(ref_i, ref_l, np.zeros((0, 2)), [])["majmin"] == (pytest.approx(0.5), 4.0)
    # an estimate running past the reference is cropped to it
    assert chords.evaluate(ref_i, ref_l, np.array([[0, 2], [2, 9]]), ["N", "C:maj"])["root"] == (1.0, 4.0)


def test_corpus_score_is_duration_weighted():
    ref_1 = np.array([[0, 2], [2, 4]]), ["C:maj", "A:min"]
    item_1 = chords.evaluate(*ref_1, np.array([[0, 3], [3, 4]]), ["C:maj", "A:min"])
    item_2 = chords.evaluate(np.array([[0, 12]]), ["G:maj"], np.array([[0, 12]]), ["G:maj"])
    per_item = [item_1["majmin"], item_2["majmin"]]
    # (0.75 * 4 + 1.0 * 12) / 16, not the item mean (0.75 + 1) / 2
    assert chords.corpus_score(per_item) == pytest.approx(15 / 16)
    assert chords.corpus_score([(0.75, 4.0), (math.nan, 0.0)]) == pytest.approx(0.75)
    assert math.isnan(chords.corpus_score([(math.nan, 0.0)]))
    assert math.isnan(chords.corpus_score([]))


def test_comparison_subset_and_unknown_name():
    one = np.array([[0, 1]]), ["C:maj"]
    scores = chords.evaluate(*one, *one, comparisons=("root", "triads_inv"))
    assert list(scores) == ["root", "triads_inv"]
    with pytest.raises(ValueError):
        chords.evaluate(np.array([[0, 1]]), ["C:maj"], np.array([[0, 1]]), ["C:maj"], comparisons=("bogus",))


def test_bad_input_raises():
    with pytest.raises(ValueError):
        chords.evaluate(np.zeros((0, 2)), [], np.array([[0, 1]]), ["C:maj"])
    with pytest.raises(ValueError):
        chords.evaluate(np.array([[0, 1]]), ["C:maj", "G:maj"], np.array([[0, 1]]), ["C:maj"])
    with pytest.raises(ValueError):
        chords.evaluate(np.array([[2, 1]]), ["C:maj"], np.array([[0, 1]]), ["C:maj"])
    with pytest.raises(ValueError, match="C:major"):
        chords.evaluate(np.array([[0, 1]]), ["C:major"], np.array([[0, 1]]), ["C:maj"])
