"""The analyses of core/features on synthetic audio with known answers, and the backend registry."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest

from mllm.core.features import backend as backend_module
from mllm.core.features.backend import BackendUnavailable, available_backends, backend_names, get_backend
from mllm.core.features.chords import estimate_chords
from mllm.core.features.downbeats import estimate_meter_and_downbeats
from mllm.core.features.key import estimate_key, key_scores, key_templates, PROFILES
from mllm.core.features.librosa_backend import analyse
from mllm.core.features.loudness import integrated_loudness
from mllm.core.features.spectra import analyse_frames
from mllm.core.features.tempo_beats import REPORTED_CANDIDATES, estimate_tempo_and_beats, track_beats
from mllm.core.metrics import beats as beat_metrics
from mllm.core.metrics import chords as chord_metrics
from mllm.core.metrics import tempo as tempo_metrics

from feature_signals import (
    DOTTED_3_3_2, MAJOR_CADENCE, MINOR_CADENCE, NATURAL_MINOR, SR, SWUNG_RIDE, click_track, drum_pattern, progression, transpose,
)

SHARED_FIELDS = ["duration", "tempo_bpm", "beats", "downbeats", "meter", "key", "key_confidence", "chords", "loudness_lufs", "backend"]
FIELDS = ["duration", "tempo_bpm", "tempo_candidates", "beats", "downbeats", "meter", "key", "key_confidence", "tuning_cents",
          "chords", "loudness_lufs", "backend"]


@pytest.mark.parametrize("bpm", [72.0, 97.0, 128.0, 150.0])
def test_tempo_within_4_percent_and_beats_on_the_clicks(bpm):
    samples, beats, _ = click_track(bpm, 4, 16.0)
    estimate = estimate_tempo_and_beats(analyse_frames(samples, SR))
    tempo, estimated = estimate.tempo_bpm, estimate.beats
    assert tempo_metrics.acc1(bpm, tempo) == 1.0, tempo
    assert beat_metrics.evaluate(beats, estimated)["f_measure"] >= 0.9


@pytest.mark.parametrize("pattern,bpm", [(DOTTED_3_3_2, 140.0), (DOTTED_3_3_2, 160.0), (SWUNG_RIDE, 160.0)])
def test_dotted_and_swung_rhythms_are_read_at_the_beat(pattern, bpm):
    # A 3+3+2 loop repeats every 1.5 beats: the autocorrelation peak under the 120 BPM prior alone
    # read 140 and 160 BPM as 92 and 109 (2/3 of the beat). Swung eighths put onsets at 2/3 of a beat.
    samples, beats = drum_pattern(bpm, 16, pattern)
    estimate = estimate_tempo_and_beats(analyse_frames(samples, SR))
    assert tempo_metrics.acc1(bpm, estimate.tempo_bpm) == 1.0, estimate
    assert beat_metrics.evaluate(beats, estimate.beats)["f_measure"] >= 0.9


def test_the_beat_tracker_is_librosas():
    librosa_beat = pytest.importorskip("librosa.beat")
    for samples in (click_track(97.0, 4, 12.0)[0], drum_pattern(140.0, 8, DOTTED_3_3_2)[0]):
        frames = analyse_frames(samples, SR)
        for bpm in (70.0, 97.0, 140.0, 211.0):
            _, expected = librosa_beat.beat_track(onset_envelope=frames.onset_envelope, sr=SR, hop_length=512, bpm=bpm, units="frames")
            assert np.array_equal(track_beats(frames.onset_envelope, frames.onset_rate * 60 / bpm), expected)


def test_tempo_candidates_are_distinct_tempi_strongest_first():
    samples, _ = drum_pattern(140.0, 16, DOTTED_3_3_2)
    chords, _ = progression(MAJOR_CADENCE * 4, 1.0)
    features = analyse(samples + 0.3 * chords[: samples.size], SR)
    candidates = features["tempo_candidates"]
    assert 2 <= len(candidates) <= REPORTED_CANDIDATES
    assert all(set(c) == {"bpm", "strength"} and isinstance(c["bpm"], float) for c in candidates)
    assert candidates[0]["bpm"] == features["tempo_bpm"]
    strengths = [c["strength"] for c in candidates]
    assert strengths == sorted(strengths, reverse=True) and sum(strengths) == pytest.approx(1.0, abs=0.01)
    bpms = [c["bpm"] for c in candidates]
    assert all(abs(a / b - 1) > 0.04 for i, a in enumerate(bpms) for b in bpms[i + 1 :])


@pytest.mark.parametrize("meter,bpm", [(4, 120.0), (3, 100.0), (4, 90.0), (3, 140.0)])
def test_meter_and_downbeats_from_accented_clicks(meter, bpm):
    samples, beats, downbeats = click_track(bpm, meter, 20.0, offset=0.5)
    frames = analyse_frames(samples, SR)
    estimated_beats = estimate_tempo_and_beats(frames).beats
    estimated_meter, estimated_downbeats = estimate_meter_and_downbeats(frames, estimated_beats)
    assert estimated_meter == meter
    assert beat_metrics.evaluate(downbeats, estimated_downbeats)["f_measure"] >= 0.9


def test_meter_needs_two_bars_of_beats():
    samples, beats, _ = click_track(120.0, 4, 3.0)
    meter, downbeats = estimate_meter_and_downbeats(analyse_frames(samples, SR), beats[:5])
    assert meter is None and downbeats.size == 0


@pytest.mark.parametrize(
    "chords,shift,expected",
    [
        (MAJOR_CADENCE, 0, "C major"),
        (MAJOR_CADENCE, 6, "F# major"),
        (MAJOR_CADENCE, 10, "Bb major"),
        (MINOR_CADENCE, 0, "A minor"),
        (MINOR_CADENCE, 6, "Eb minor"),
        (MINOR_CADENCE, 4, "C# minor"),
    ],
)
def test_key_exact_on_cadences(chords, shift, expected):
    samples, _ = progression(transpose(chords, shift), 1.0)
    frames = analyse_frames(samples, SR)
    key, confidence = estimate_key(frames.chroma, frames.sounding())
    assert key == expected
    assert 0.0 < confidence <= 1.0


@pytest.mark.parametrize("chords,cents,expected", [(MINOR_CADENCE, 40.0, "A minor"), (MAJOR_CADENCE, -45.0, "C major")])
def test_tuning_is_estimated_and_the_key_read_off_a440(chords, cents, expected):
    # 40-45 cents off A440 the partials lie nearly between two semitones' filters; with the
    # chroma filters at A440 these cadences read as F major and E minor.
    samples, _ = progression(chords, 1.0, cents=cents)
    frames = analyse_frames(samples, SR)
    assert frames.tuning_cents == pytest.approx(cents, abs=3.0)
    assert estimate_key(frames.chroma, frames.sounding())[0] == expected
    assert analyse(samples, SR)["tuning_cents"] == frames.tuning_cents


def test_tuning_of_an_in_tune_signal_is_near_zero():
    samples, _ = progression(MAJOR_CADENCE, 1.0)
    assert abs(analyse_frames(samples, SR).tuning_cents) <= 2.0


@pytest.mark.parametrize("name", sorted(NATURAL_MINOR))
def test_natural_minor_is_not_read_as_its_relative_major(name):
    for shift, expected in ((0, "A minor"), (3, "C minor"), (7, "E minor")):
        samples, _ = progression(transpose(NATURAL_MINOR[name], shift), 1.0)
        frames = analyse_frames(samples, SR)
        assert estimate_key(frames.chroma, frames.sounding())[0] == expected


def test_a_near_tie_between_a_minor_key_and_its_relative_major_goes_to_the_minor():
    templates = key_templates()
    tie = templates[0] + templates[12 + 9]  # C major and A minor profiles mixed: both fit alike
    scores = key_scores(tie + 1.0)
    assert abs(scores[0] - scores[12 + 9]) < 0.01
    assert int(np.argmax(key_scores(tie + 1.0, minor_bias=0.02))) == 12 + 9
    key, _ = estimate_key(np.tile((tie + 1.0)[:, None], (1, 4)))
    assert key == "A minor"


def test_key_profiles_rotate_with_the_tonic():
    # The C major template moved up two semitones is the D major template (row 2).
    templates = key_templates()
    assert np.allclose(np.roll(templates[0], 2), templates[2])
    for name in PROFILES:
        distribution = np.roll(np.asarray(PROFILES[name][1]), 9)  # the A minor profile itself
        assert int(np.argmax(key_scores(distribution, name))) == 12 + 9


def test_key_confidence_is_lower_when_the_evidence_is_ambiguous():
    clear, _ = progression(MAJOR_CADENCE, 1.0)
    # A lone C major triad fits C major, F major, G major and A minor alike.
    ambiguous, _ = progression([("C", "maj")] * 8, 1.0)
    frames_clear, frames_ambiguous = analyse_frames(clear, SR), analyse_frames(ambiguous, SR)
    _, confidence_clear = estimate_key(frames_clear.chroma, frames_clear.sounding())
    _, confidence_ambiguous = estimate_key(frames_ambiguous.chroma, frames_ambiguous.sounding())
    assert confidence_clear > confidence_ambiguous


def test_chords_of_a_known_sequence():
    sequence = [("C", "maj"), ("A", "min"), ("F", "maj"), ("G", "maj"), ("E", "min"), ("D", "min"), ("Bb", "maj"), ("C", "maj")]
    samples, reference = progression(sequence, 2.0)
    frames = analyse_frames(samples, SR)
    estimated = estimate_chords(frames.chroma, frames.sounding(), frames.chroma_rate, samples.size / SR)
    assert estimated[0][0] == 0.0 and estimated[-1][1] == pytest.approx(samples.size / SR, abs=1e-3)
    assert all(a[1] == b[0] for a, b in zip(estimated, estimated[1:]))  # contiguous
    score, _ = chord_metrics.evaluate(
        [r[:2] for r in reference], [r[2] for r in reference], [e[:2] for e in estimated], [e[2] for e in estimated],
        comparisons=("majmin",),
    )["majmin"]
    assert score >= 0.85


def test_chords_in_silence_are_no_chord():
    samples, _ = progression([("C", "maj")], 2.0)
    padded = np.concatenate([np.zeros(2 * SR, dtype=np.float32), samples])
    frames = analyse_frames(padded, SR)
    estimated = estimate_chords(frames.chroma, frames.sounding(), frames.chroma_rate, padded.size / SR)
    # the 8192-sample chroma window (0.37 s) smears the onset by up to half a window
    assert estimated[0][2] == "N" and estimated[0][1] == pytest.approx(2.0, abs=0.25)
    assert estimated[-1][2] == "C:maj"


@pytest.mark.parametrize("sample_rate", [22050, 48000])
def test_loudness_of_a_sine_matches_pyloudnorm_and_bs1770(sample_rate):
    t = np.arange(10 * sample_rate) / sample_rate
    sine = np.sin(2 * np.pi * 997 * t)  # full scale
    assert integrated_loudness(sine, sample_rate) == pytest.approx(pyloudnorm.Meter(sample_rate).integrated_loudness(sine), abs=0.01)
    if sample_rate == 48000:
        assert integrated_loudness(sine, sample_rate) == pytest.approx(-3.01, abs=0.05)  # BS.1770-4's calibration
    quieter = integrated_loudness(sine * 10 ** (-20 / 20), sample_rate)
    assert quieter == pytest.approx(integrated_loudness(sine, sample_rate) - 20, abs=0.02)


def test_loudness_gating_matches_pyloudnorm_on_a_changing_signal():
    rng = np.random.default_rng(1)
    n = int(33.3 * SR)
    signal = rng.standard_normal(n) * np.linspace(0.001, 0.3, n)
    signal[n // 2 : n // 2 + 3 * SR] = 0.0
    assert integrated_loudness(signal, SR) == pytest.approx(pyloudnorm.Meter(SR).integrated_loudness(signal), abs=0.01)


def test_loudness_of_a_clip_shorter_than_one_block():
    t = np.arange(int(0.2 * SR)) / SR
    short = 0.5 * np.sin(2 * np.pi * 997 * t)
    long = 0.5 * np.sin(2 * np.pi * 997 * np.arange(5 * SR) / SR)
    assert integrated_loudness(short, SR) == pytest.approx(integrated_loudness(long, SR), abs=0.3)


def test_loudness_of_silence_is_none():
    assert integrated_loudness(np.zeros(SR), SR) is None
    assert integrated_loudness(np.full(SR, 1e-5), SR) is None  # below the -70 LUFS gate
    assert integrated_loudness(np.zeros(0), SR) is None


def test_analyse_gives_every_field_in_order():
    clicks, _, _ = click_track(120.0, 4, 12.0)
    chords, _ = progression(MAJOR_CADENCE, 1.5)
    features = analyse(clicks + chords[: clicks.size], SR)
    assert list(features) == FIELDS
    assert features["backend"] == "librosa" and features["duration"] == 12.0
    assert features["key"] == "C major" and features["meter"] == 4
    assert tempo_metrics.acc1(120.0, features["tempo_bpm"]) == 1.0
    assert all(isinstance(t, float) and round(t, 3) == t for t in features["beats"])
    assert set(features["downbeats"]) <= set(features["beats"])
    assert math.isfinite(features["loudness_lufs"])


def test_silence_gives_the_documented_result():
    features = analyse(np.zeros(3 * SR, dtype=np.float32), SR)
    assert features == {
        "duration": 3.0, "tempo_bpm": None, "tempo_candidates": [], "beats": [], "downbeats": [], "meter": None, "key": None,
        "key_confidence": 0.0, "tuning_cents": None, "chords": [[0.0, 3.0, "N"]], "loudness_lufs": None, "backend": "librosa",
    }


def test_very_short_and_one_sample_signals_give_results():
    for n in (1, 10, 1000):
        features = analyse(np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1, SR)
        assert list(features) == FIELDS
        assert features["tempo_bpm"] is None and features["beats"] == []


def test_analyse_rejects_what_is_not_a_mono_signal():
    with pytest.raises(ValueError, match="no samples"):
        analyse(np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(ValueError, match="mono"):
        analyse(np.zeros((2, 100), dtype=np.float32), SR)
    with pytest.raises(ValueError, match="NaN"):
        analyse(np.array([0.0, np.nan, 0.0], dtype=np.float32), SR)


def test_frames_do_not_depend_on_the_block_length():
    samples, _ = progression(MAJOR_CADENCE, 1.0)
    whole = analyse_frames(samples, SR, block_seconds=1000.0)
    blocks = analyse_frames(samples, SR, block_seconds=1.3)
    assert np.allclose(whole.chroma, blocks.chroma, atol=1e-4)
    assert np.allclose(whole.onset_envelope, blocks.onset_envelope, atol=1e-4)


def test_backend_registry():
    assert "librosa" in available_backends()
    assert {"librosa", "essentia", "madmom"} <= set(backend_names())
    assert get_backend("librosa").name == "librosa"
    with pytest.raises(BackendUnavailable, match="unknown feature backend 'nope'"):
        get_backend("nope")


@pytest.mark.parametrize("package", ["essentia", "madmom"])
def test_an_uninstalled_backend_says_what_to_install(monkeypatch, package):
    real_find_spec = backend_module.importlib.util.find_spec
    monkeypatch.setattr(backend_module.importlib.util, "find_spec", lambda name: None if name == package else real_find_spec(name))
    assert package not in available_backends()
    with pytest.raises(BackendUnavailable, match=rf"needs the {package} package: pip install 'mllm\[{package}\]'"):
        get_backend(package)


def test_essentia_backend_when_installed():
    pytest.importorskip("essentia")
    clicks, _, _ = click_track(120.0, 4, 12.0)
    chords, _ = progression(MAJOR_CADENCE, 1.5)
    features = get_backend("essentia").analyse(clicks + chords[: clicks.size], SR)
    assert list(features) == SHARED_FIELDS and features["backend"] == "essentia"
    assert tempo_metrics.acc2(120.0, features["tempo_bpm"]) == 1.0
    assert features["key"] is not None and 0.0 <= features["key_confidence"] <= 1.0


def test_chroma_keeps_peaks_within_the_range_of_the_frames_largest():
    # A 440 Hz tone (A) and a 523 Hz tone (C) 26 dB weaker: the weaker one is below the 20 dB
    # floor and adds nothing to the chroma; at 14 dB weaker it counts.
    t = np.arange(4 * SR) / SR
    for weaker_db, c_counts in ((26.0, False), (14.0, True)):
        samples = np.sin(2 * np.pi * 440.0 * t) + 10 ** (-weaker_db / 20) * np.sin(2 * np.pi * 523.25 * t)
        frames = analyse_frames(samples.astype(np.float32), SR)
        mean = frames.chroma[:, frames.sounding()].mean(axis=1)
        assert int(np.argmax(mean)) == 9  # A
        assert (mean[0] > 0.05 * mean[9]) == c_counts
