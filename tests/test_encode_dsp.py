"""DSP encoders: values against librosa called directly, the feature layout, pooling, names."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from mllm.core.encoders import EncoderError, embed_clips, encode_clips, load_encoder
from mllm.core.encoders.dsp import DspEncoder, TEMPO_BPM, feature_columns, is_dsp_name

SR = 22050
HOP = 512


def chord_with_clicks(seconds=6.0, bpm=120.0, notes=(60, 64, 67), amplitude=0.2):
    """A sustained triad (MIDI notes) plus a click every beat."""
    t = np.arange(int(seconds * SR)) / SR
    y = sum(amplitude * np.sin(2 * np.pi * librosa.midi_to_hz(n) * t) for n in notes)
    for beat in np.arange(0, seconds, 60.0 / bpm):
        start = int(beat * SR)
        y[start : start + 200] += np.hanning(400)[200:] * 0.8
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def clip():
    return chord_with_clicks()


@pytest.fixture(scope="module")
def native(clip):
    return encode_clips(DspEncoder("dsp"), [clip])[0]


def reference_tempogram(y):
    """librosa's tempogram read at TEMPO_BPM by np.interp over lags (independent of dsp.tempogram_at_bpm)."""
    onset = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP)
    gram = librosa.feature.tempogram(onset_envelope=onset, sr=SR, hop_length=HOP, win_length=384)
    lags = 60.0 * SR / (HOP * TEMPO_BPM)
    return np.stack([np.interp(lags, np.arange(gram.shape[0]), gram[:, t]) for t in range(gram.shape[1])])


def test_layout_of_the_default_dsp_encoder():
    assert feature_columns("dsp") == {
        "chroma": (0, 12), "onset": (12, 13), "loudness": (13, 14), "centroid": (14, 15), "tempogram": (15, 39),
    }
    encoder = load_encoder("dsp")
    assert encoder.dim == 39 and encoder.sample_rate == SR and encoder.native_frame_rate == pytest.approx(SR / HOP)
    assert encoder.layer is None


def test_native_frames_equal_librosa(clip, native):
    frames = native.frames
    assert frames.shape == (1 + len(clip) // HOP, 39)
    assert np.allclose(native.times, np.arange(len(frames)) * HOP / SR)
    chroma = librosa.feature.chroma_cqt(y=clip, sr=SR, hop_length=HOP).T
    onset = librosa.onset.onset_strength(y=clip, sr=SR, hop_length=HOP)
    rms = librosa.feature.rms(y=clip, frame_length=2048, hop_length=HOP)[0]
    centroid = librosa.feature.spectral_centroid(y=clip, sr=SR, n_fft=2048, hop_length=HOP)[0]
    assert np.allclose(frames[:, 0:12], chroma, atol=1e-5)
    assert np.allclose(frames[:, 12], onset, atol=1e-4)
    assert np.allclose(frames[:, 13], 20 * np.log10(np.maximum(rms, 1e-5)), atol=1e-3)
    assert np.allclose(frames[:, 14], centroid / 1000, atol=1e-4)
    assert np.allclose(frames[:, 15:], reference_tempogram(clip), atol=1e-5)


def test_pooled_frames_are_means_of_the_native_frames(clip, native):
    pooled = embed_clips(DspEncoder("dsp"), [clip], frame_rate=4)[0]
    assert pooled.shape == (24, 39)  # 6 s at 4 Hz
    starts = np.arange(len(native.frames)) * HOP / SR
    for k in range(24):
        inside = (starts >= k / 4) & (starts < (k + 1) / 4)
        assert np.allclose(pooled[k], native.frames[inside].mean(axis=0), atol=1e-4)


def test_features_say_what_they_measure(clip, native):
    mean = native.frames.mean(axis=0)
    assert set(np.argsort(mean[:12])[-3:]) == {0, 4, 7}  # C, E, G
    assert -25 < mean[13] < 0  # dBFS of a 0.6-peak mixture
    assert 0.2 < mean[14] < 3.0  # kHz
    full_scale = DspEncoder("loudness").encode_clip(np.sin(2 * np.pi * 1000 * np.arange(SR) / SR).astype(np.float32))
    assert np.median(full_scale) == pytest.approx(-3.01, abs=0.05)
    tempo_profile = native.frames[:, 15:].mean(axis=0)
    around = (TEMPO_BPM > 80) & (TEMPO_BPM < 170)
    assert TEMPO_BPM[around][np.argmax(tempo_profile[around])] == pytest.approx(120, rel=0.05)


def test_combined_names_concatenate_in_order(clip, native):
    encoder = load_encoder("chroma+onset+loudness")
    assert encoder.dim == 14
    frames = encode_clips(encoder, [clip])[0].frames
    assert np.allclose(frames, native.frames[:, :14], atol=1e-5)
    assert load_encoder("logmel").dim == 64 and load_encoder("tempogram").dim == 24


def test_names():
    assert is_dsp_name("dsp") and is_dsp_name("chroma+onset") and is_dsp_name("Chroma")
    assert not is_dsp_name("openai/whisper-base") and not is_dsp_name("chroma+mfcc")
    with pytest.raises(EncoderError, match="twice"):
        DspEncoder("chroma+dsp")
    with pytest.raises(EncoderError, match="no layers"):
        load_encoder("dsp", layer="3")
    assert DspEncoder("dsp").fingerprint != DspEncoder("chroma").fingerprint


def test_very_short_and_silent_clips_encode():
    encoder = DspEncoder("dsp")
    short = embed_clips(encoder, [np.full(300, 0.1, dtype=np.float32)], frame_rate=10)[0]
    assert short.shape == (1, 39) and np.isfinite(short).all()
    silent = embed_clips(encoder, [np.zeros(SR, dtype=np.float32)], frame_rate=10)[0]
    assert silent.shape == (10, 39) and np.isfinite(silent).all()
    assert np.allclose(silent[:, 13], -100.0)
