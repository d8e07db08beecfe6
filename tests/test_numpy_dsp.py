"""core/features/numpy_dsp.py gives librosa's results exactly (equal arrays, not close ones)."""

from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from mllm.core.features import numpy_dsp


def signal(seconds: float = 3.0, sample_rate: int = 22050, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate((220.0, 277.2, 329.6, 880.0)))
    return (0.3 * tones + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("n_fft,hop", [(8192, 2048), (2048, 512), (512, 160)])
def test_stft_equals_librosa(n_fft, hop):
    y = signal()
    ours = numpy_dsp.stft(y, n_fft=n_fft, hop_length=hop)
    theirs = librosa.stft(y, n_fft=n_fft, hop_length=hop, center=False)
    assert ours.dtype == theirs.dtype == np.complex64
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_stft_in_blocks_equals_one_transform(monkeypatch):
    y = signal(seconds=5.0)
    whole = numpy_dsp.stft(y, n_fft=2048, hop_length=512)
    monkeypatch.setattr(numpy_dsp, "STFT_BLOCK_BYTES", 8 * 2048 * 3)  # 3 frames at a time
    assert np.array_equal(numpy_dsp.stft(y, n_fft=2048, hop_length=512), whole)


def test_stft_refuses_a_signal_shorter_than_its_window():
    with pytest.raises(ValueError, match="n_fft"):
        numpy_dsp.stft(np.zeros(100, dtype=np.float32), n_fft=2048, hop_length=512)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 16000])
@pytest.mark.parametrize("tuning", [0.0, 0.37, -0.5, 0.123])
def test_chroma_filters_equal_librosa(sample_rate, tuning):
    ours = numpy_dsp.chroma_filters(sample_rate, 8192, tuning=tuning, ctroct=4.0, octwidth=2.0)
    theirs = librosa.filters.chroma(sr=sample_rate, n_fft=8192, tuning=tuning, ctroct=4.0, octwidth=2.0)
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    assert np.array_equal(numpy_dsp.chroma_filters(sample_rate, 2048), librosa.filters.chroma(sr=sample_rate, n_fft=2048))


def test_pitch_tuning_equals_librosa():
    rng = np.random.default_rng(1)
    for cents in (0.0, 23.0, -41.0, 49.0):
        midi = rng.integers(40, 90, 400) + cents / 100 + rng.normal(0, 0.03, 400)
        frequencies = 440.0 * 2 ** ((midi - 69) / 12)
        frequencies[:5] = 0.0  # non-positive values are left out by both
        ours = numpy_dsp.pitch_tuning(frequencies, resolution=0.01)
        assert ours == librosa.pitch_tuning(frequencies, resolution=0.01)
        assert abs(ours - cents / 100) < 0.03
    assert numpy_dsp.pitch_tuning(np.zeros(3)) == 0.0


def test_viterbi_equals_librosa():
    rng = np.random.default_rng(2)
    for n_states, n_steps, stay in ((25, 400, 0.95), (3, 50, 0.5), (25, 1, 0.9)):
        prob = rng.random((n_states, n_steps)).astype(np.float32)
        prob /= prob.sum(axis=0, keepdims=True)
        transition = numpy_dsp.transition_loop(n_states, stay)
        assert np.array_equal(transition, librosa.sequence.transition_loop(n_states, stay))
        ours = numpy_dsp.viterbi(prob, transition)
        theirs = librosa.sequence.viterbi(prob, librosa.sequence.transition_loop(n_states, stay))
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    # Ties: a constant emission keeps the first state throughout, as librosa's.
    flat = np.full((4, 6), 0.25)
    assert np.array_equal(numpy_dsp.viterbi(flat, numpy_dsp.transition_loop(4, 0.7)),
                          librosa.sequence.viterbi(flat, librosa.sequence.transition_loop(4, 0.7)))


def test_the_default_backend_does_not_load_librosas_numba_modules(tmp_path):
    # The point of numpy_dsp: a whole analysis without librosa.util.utils or librosa.core.audio.
    code = (
        "import sys, numpy as np\n"
        "from mllm.core.features.librosa_backend import analyse\n"
        "t = np.arange(22050 * 6) / 22050\n"
        "features = analyse((0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32), 22050)\n"
        "assert features['key'] is not None, features\n"
        "print(sorted(m for m in ('librosa.util.utils', 'librosa.core.audio', 'librosa.core.spectrum', 'librosa.sequence') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
