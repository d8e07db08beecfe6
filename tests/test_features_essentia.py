"""`extract-features --backend essentia`: Essentia at its native 44.1 kHz, the shared fields at 22.05 kHz.

Skipped when Essentia is not installed (the message of an uninstalled backend is tested in
test_features.py).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import soxr

from mllm.core.features.extract import analyse_record
from mllm.core.metrics import key as key_metrics
from mllm.core.metrics import tempo as tempo_metrics
from mllm.core.synth.corpus import SynthOptions, synthesize

pytestmark = pytest.mark.skipif(importlib.util.find_spec("essentia") is None, reason="essentia is not installed")


def tone_with_clicks(rate: int, seconds: float = 6.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.2 * np.sin(2 * np.pi * 220.0 * t)
    signal[(np.arange(t.size) % (rate // 2)) < rate // 200] += 0.5  # a click every 0.5 s: 120 BPM
    return signal.astype(np.float32)


def test_essentia_gets_44k_samples_as_they_are_and_the_front_end_22k(monkeypatch):
    from mllm.core.features import essentia_backend, librosa_backend

    seen = {}
    real_rhythm, real_key, real_blocks = essentia_backend.rhythm, essentia_backend.key, librosa_backend.analyse_blocks

    def rhythm(samples):
        seen["rhythm"] = samples
        return real_rhythm(samples)

    def key(samples, sample_rate, profile=essentia_backend.KEY_PROFILE):
        seen["key_rate"] = sample_rate
        return real_key(samples, sample_rate, profile)

    def analyse_blocks(blocks, sample_rate, *args):
        blocks = list(blocks)
        seen["shared"] = (blocks[0].size, sample_rate)
        return real_blocks(blocks, sample_rate, *args)

    monkeypatch.setattr(essentia_backend, "rhythm", rhythm)
    monkeypatch.setattr(essentia_backend, "key", key)
    monkeypatch.setattr(librosa_backend, "analyse_blocks", analyse_blocks)

    native = tone_with_clicks(44100)
    features = essentia_backend.analyse(native, 44100)
    assert np.array_equal(seen["rhythm"], native)  # analysed as decoded: no resampling round trip
    assert seen["key_rate"] == 44100 and seen["shared"] == (native.size // 2, 22050)
    assert features["backend"] == "essentia" and features["duration"] == 6.0
    assert features["tempo_bpm"] == pytest.approx(120, rel=0.04) and len(features["beats"]) >= 8

    seen.clear()
    decoded_22k = tone_with_clicks(22050)
    essentia_backend.analyse(decoded_22k, 22050)
    assert seen["rhythm"].size == 2 * decoded_22k.size  # another rate: resampled to 44.1 kHz for Essentia
    assert seen["shared"] == (decoded_22k.size, 22050)  # and handed to the front end as it is


def test_shared_fields_are_the_default_backends_at_22k():
    # Loudness (and meter/chords) come from the default backend's code at 22.05 kHz, whatever rate
    # Essentia analyses at: the same loudness as the default backend on the 22.05 kHz signal.
    from mllm.core.features import essentia_backend, librosa_backend

    native = tone_with_clicks(44100)
    ours = librosa_backend.analyse(soxr.resample(native, 44100, 22050).astype(np.float32), 22050)
    theirs = essentia_backend.analyse(native, 44100)
    assert theirs["loudness_lufs"] == pytest.approx(ours["loudness_lufs"], abs=0.01)


def test_essentia_at_44k_on_rendered_clips(tmp_path):
    records = list(synthesize(tmp_path, 3, SynthOptions(seconds=12.0, seed=3, sample_rate=44100)))
    analysed = [analyse_record(r, backend="essentia", sample_rate=44100)["features"] for r in records]
    acc2 = [tempo_metrics.acc2(r["labels"]["tempo_bpm"], f["tempo_bpm"]) for r, f in zip(records, analysed)]
    weighted = [key_metrics.weighted_score(r["labels"]["key"], f["key"]) for r, f in zip(records, analysed)]
    assert np.mean(acc2) >= 2 / 3, acc2
    assert np.mean(weighted) >= 0.5, weighted
    assert all(set(f["downbeats"]) <= set(f["beats"]) for f in analysed)


def test_extract_features_decodes_at_44k_for_essentia_unless_told(tmp_path, monkeypatch):
    import soundfile

    from mllm.core.features import essentia_backend

    path = tmp_path / "clip.wav"
    soundfile.write(path, tone_with_clicks(22050, seconds=2.0), 22050)
    rates = []
    monkeypatch.setattr(essentia_backend, "analyse", lambda samples, rate: rates.append(rate) or {"backend": "essentia"})
    analyse_record({"id": "c", "audio": str(path)}, backend="essentia")
    analyse_record({"id": "c", "audio": str(path)}, backend="essentia", sample_rate=22050)
    assert rates == [44100, 22050]  # the backend's own rate by default, --sample-rate when given
