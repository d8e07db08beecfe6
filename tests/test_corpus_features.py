"""extract-features on the rendered corpus: the analysis recovers the labels `mllm synth` knows exactly.

This is the pipeline of the demo (`mllm synth | mllm extract-features`) on real rendered audio:
General MIDI instruments and drums through the TimGM6mb soundfont, not test tones. The bars are
below what the 240-clip benchmark measures (benchmarks/RESULTS.md: tempo Acc2 0.95, key weighted
score 0.92) so that a small sample of clips passes reliably, and far above chance (tempo Acc2 of
a constant 120 BPM guess on 60-180 BPM: about 0.15; key weighted score of a fixed key: about 0.1).
"""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from mllm.core.features.extract import analyse_record
from mllm.core.metrics import key as key_metrics
from mllm.core.metrics import tempo as tempo_metrics
from mllm.core.synth.corpus import SynthOptions, synthesize


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    options = SynthOptions(seconds=12.0, seed=3, meters=("4/4", "3/4"))
    records = list(synthesize(folder, 24, options))
    assert all("error" not in r for r in records)
    return [analyse_record(r) for r in records]


def test_tempo_and_key_are_recovered_on_most_clips(analysed):
    acc2 = np.mean([tempo_metrics.acc2(r["labels"]["tempo_bpm"], r["features"]["tempo_bpm"]) for r in analysed])
    weighted = np.mean([key_metrics.weighted_score(r["labels"]["key"], r["features"]["key"]) for r in analysed])
    assert acc2 >= 0.75, acc2
    assert weighted >= 0.75, weighted


def test_beats_and_chords_agree_with_the_rendering(analysed):
    f_measures = [
        mir_eval.beat.f_measure(np.array(r["labels"]["beats"]), np.array(r["features"]["beats"]))
        for r in analysed
    ]
    assert np.median(f_measures) >= 0.7, f_measures
    scores = []
    for r in analysed:
        ref, est = np.array(r["labels"]["chords"], dtype=object), np.array(r["features"]["chords"], dtype=object)
        ref_int, ref_lab = ref[:, :2].astype(float), list(ref[:, 2])
        est_int, est_lab = est[:, :2].astype(float), list(est[:, 2])
        est_int, est_lab = mir_eval.util.adjust_intervals(est_int, est_lab, ref_int.min(), ref_int.max(), "N", "N")
        merged = mir_eval.util.merge_labeled_intervals(ref_int, ref_lab, est_int, est_lab)
        durations = mir_eval.util.intervals_to_durations(merged[0])
        scores.append(mir_eval.chord.weighted_accuracy(mir_eval.chord.majmin(merged[1], merged[2]), durations))
    assert np.median(scores) >= 0.5, scores


def test_loudness_and_duration_are_sane(analysed):
    for r in analysed:
        assert r["features"]["duration"] == pytest.approx(r["labels"]["duration"], abs=0.05)
        assert -40 < r["features"]["loudness_lufs"] < 0
