"""Four librosa functions the default backend uses, in plain numpy/scipy, with the same output.

    magnitudes = np.abs(stft(y, n_fft=8192, hop_length=2048))      # librosa.stft(..., center=False)
    basis = chroma_filters(22050, 8192, tuning=0.1, ctroct=4.0)     # librosa.filters.chroma
    tuning = pitch_tuning(frequencies, resolution=0.01)             # librosa.pitch_tuning
    states = viterbi(probabilities, transition_loop(25, 0.95))      # librosa.sequence.*

Why by hand: importing the librosa modules these live in (librosa.util.utils, librosa.core.audio,
which librosa.core.spectrum, librosa.core.pitch and librosa.sequence import) builds their numba
`vectorize`/`guvectorize` ufuncs eagerly, about 0.6-0.75 s of CPU per process even with numba's
cache: an eighth of `mllm extract-features` on 16 excerpts of 30 s, and the largest part of its
start-up (issue 12: >= 100x real time per core for the whole command). What the backend still
takes from librosa (mel filters, FFT and mel frequencies, in librosa.filters and
librosa.core.convert) loads none of those. Each function follows librosa 0.11's arithmetic
step by step (the same dtypes and order of operations), and tests/test_numpy_dsp.py checks that
the results are equal, not close, to librosa's.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import get_window

STFT_BLOCK_BYTES = 1 << 22  # frames transformed at once: about 4 MB of float64 input at a time


def stft(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """(1 + n_fft // 2, 1 + (len(y) - n_fft) // hop_length) complex64: librosa.stft(y, n_fft=n_fft,
    hop_length=hop_length, center=False) with its default periodic Hann window, for float32 y.
    As librosa does, the windowed frames are float64 (the window is) and the transform's
    complex128 result is stored as complex64."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size < n_fft:
        raise ValueError(f"stft needs a 1-d signal of at least n_fft={n_fft} samples, got shape {y.shape}")
    window = get_window("hann", n_fft, fftbins=True)[:, None]  # float64, as librosa.filters.get_window
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length].T  # (n_fft, n_frames), a view
    out = np.empty((1 + n_fft // 2, frames.shape[1]), dtype=np.complex64, order="F")
    step = max(1, STFT_BLOCK_BYTES // (8 * n_fft))
    for start in range(0, frames.shape[1], step):
        out[:, start : start + step] = np.fft.rfft(window * frames[:, start : start + step], axis=0)
    return out


def chroma_filters(sample_rate: float, n_fft: int, tuning: float = 0.0, ctroct: float = 5.0, octwidth: float = 2.0) -> np.ndarray:
    """(12, 1 + n_fft // 2) float32: librosa.filters.chroma(sr=sample_rate, n_fft=n_fft,
    tuning=tuning, ctroct=ctroct, octwidth=octwidth) with its defaults otherwise (12 bins starting
    at C, each column scaled to unit L2 norm before the octave weighting)."""
    n_chroma = 12
    frequencies = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frqbins = n_chroma * np.log2(np.asanyarray(frequencies) / (float(a440) / 16))  # librosa.hz_to_octs
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    distance = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    # librosa.util.normalize(weights, norm=2, axis=0): columns below the smallest float keep length 1
    length = np.sum(np.abs(weights).astype(float) ** 2, axis=0, keepdims=True) ** (1.0 / 2)
    length[length < np.finfo(weights.dtype).tiny] = 1.0
    weights = weights / length
    weights *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    weights = np.roll(weights, -3, axis=0)  # start at C, not A
    return np.ascontiguousarray(weights[:, : int(1 + n_fft / 2)], dtype=np.float32)


def pitch_tuning(frequencies: np.ndarray, resolution: float = 0.01) -> float:
    """librosa.pitch_tuning(frequencies, resolution=resolution) (12 bins per octave): the most
    common deviation of the positive frequencies from the equal-tempered grid on A440, in
    fractions of a semitone, from a histogram of `resolution`-wide bins; 0.0 when none is
    positive (librosa warns there)."""
    frequencies = np.atleast_1d(frequencies)
    frequencies = frequencies[frequencies > 0]
    if not np.any(frequencies):
        return 0.0
    residual = np.mod(12 * np.log2(np.asanyarray(frequencies) / (float(440.0) / 16)), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, tuning = np.histogram(residual, bins)
    return float(tuning[np.argmax(counts)])


def transition_loop(n_states: int, prob: float) -> np.ndarray:
    """(n_states, n_states) librosa.sequence.transition_loop: stay with `prob`, move to each other
    state with (1 - prob) / (n_states - 1)."""
    if n_states < 2 or not 0 <= prob <= 1:
        raise ValueError(f"transition_loop needs n_states > 1 and 0 <= prob <= 1, got {n_states}, {prob}")
    transition = np.full((n_states, n_states), (1.0 - float(prob)) / (n_states - 1))
    np.fill_diagonal(transition, float(prob))
    return transition


def viterbi(prob: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """(T,) uint16 most likely state sequence: librosa.sequence.viterbi(prob, transition) for a
    (n_states, T) array of per-frame probabilities and a uniform initial distribution. The
    recursion runs in numpy over the states of each frame (librosa's runs in numba); ties go to
    the lowest state index in both. Cost: about 10 us per frame (0.37 s for the 38,760 chroma
    frames of an hour at 22.05 kHz, against 0.05 s in librosa's numba loop once compiled): more
    than the start-up it saves only on files over about two hours, where the analysis itself
    takes some 40 s."""
    prob = np.asarray(prob)
    n_states, n_steps = prob.shape
    epsilon = np.finfo(prob.dtype if np.issubdtype(prob.dtype, np.floating) else np.float32).tiny  # librosa.util.tiny
    log_trans = np.log(transition + epsilon)
    log_prob = np.log(prob + epsilon).T  # (T, n_states)
    log_p_init = np.log(np.full(n_states, 1.0 / n_states) + epsilon)
    value = np.empty((n_steps, n_states), dtype=np.float64)
    pointer = np.zeros((n_steps, n_states), dtype=np.uint16)
    value[0] = log_prob[0] + log_p_init
    states = np.arange(n_states)
    for t in range(1, n_steps):
        into = value[t - 1] + log_trans.T  # into[j, i]: come to j from i
        pointer[t] = np.argmax(into, axis=1)
        value[t] = log_prob[t] + into[states, pointer[t]]
    path = np.zeros(n_steps, dtype=np.uint16)
    path[-1] = np.argmax(value[-1])
    for t in range(n_steps - 2, -1, -1):
        path[t] = pointer[t + 1, path[t + 1]]
    return path
