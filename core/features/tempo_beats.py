"""Global tempo and beat times from an onset envelope.

    tempo_bpm, beats = estimate_tempo_and_beats(frames)   # (float | None, (n,) seconds)

1. Tempo: the autocorrelation of the whole excerpt's onset envelope (one FFT, so an hour-long
   file costs one long FFT, no tempogram), read at the lags of MIN_BPM..MAX_BPM and weighted by
   a log-normal prior centred on `PRIOR_BPM` with `PRIOR_OCTAVES` octaves of spread. The best
   lag is the beat period. Measured on 392 labelled `mllm synth` clips (docs/features.md), this
   is more robust than librosa's `feature.tempo`, whose log-compressed tempogram lets the prior
   pull the answer off the autocorrelation peak (90 BPM read as 112, Acc2 0.91 -> 0.97).
2. Beats: librosa's dynamic-programming beat tracker (Ellis 2007) at that tempo.
3. The reported tempo is refined from the tracked beats: the slope of a least-squares line
   through beat index -> beat time. Integer lags are coarse (21 or 22 frames at 120 BPM is 123
   or 117 BPM); the slope over a few dozen beats is not.

Metrical level: an excerpt has one tempo per metrical level (half, double...). Acc2 forgives
those errors, Acc1 does not; the prior picks the level nearest 120 BPM, as most trackers do.

Silence or an excerpt too short to hold `MIN_BEATS` beats gives ``(None, [])``: no tempo is
claimed where none can be heard.
"""

from __future__ import annotations

import librosa
import numpy as np

from mllm.core.features.spectra import ONSET_HOP, Frames

MIN_BEATS = 4
MIN_BPM, MAX_BPM = 30.0, 320.0
PRIOR_BPM = 120.0
PRIOR_OCTAVES = 0.9


def autocorrelation(envelope: np.ndarray) -> np.ndarray:
    """(n,) autocorrelation of the mean-removed envelope, 1.0 at lag 0 (all zeros if constant)."""
    centred = envelope - envelope.mean()
    spectrum = np.fft.rfft(centred, 2 * centred.size)
    correlation = np.fft.irfft(np.abs(spectrum) ** 2)[: centred.size]
    return correlation / correlation[0] if correlation[0] > 0 else np.zeros_like(correlation)


def estimate_tempo(envelope: np.ndarray, frame_rate: float) -> float | None:
    """Beat period from the prior-weighted autocorrelation peak, in BPM; None when nothing repeats."""
    correlation = autocorrelation(envelope)
    lags = np.arange(max(1, int(frame_rate * 60 / MAX_BPM)), min(int(np.ceil(frame_rate * 60 / MIN_BPM)), correlation.size))
    if lags.size == 0:
        return None
    bpm = 60.0 * frame_rate / lags
    prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    score = np.maximum(correlation[lags], 0.0) * prior
    best = int(np.argmax(score))
    return float(bpm[best]) if score[best] > 0 else None


def refine_tempo(beats: np.ndarray) -> float | None:
    """Tempo (BPM) from the slope of beat time against beat index; None for fewer than two beats."""
    if beats.size < 2:
        return None
    index = np.arange(beats.size, dtype=float)
    slope = np.polyfit(index, beats, 1)[0]
    return float(60.0 / slope) if slope > 0 else None


def estimate_tempo_and_beats(frames: Frames) -> tuple[float | None, np.ndarray]:
    """Global tempo in BPM (or None) and beat times in seconds (see the module docstring)."""
    envelope = frames.onset_envelope
    if not np.any(envelope > 0):
        return None, np.zeros(0)
    tempo = estimate_tempo(envelope, frames.onset_rate)
    if tempo is None:
        return None, np.zeros(0)
    _, beats = librosa.beat.beat_track(
        onset_envelope=envelope, sr=frames.sample_rate, hop_length=ONSET_HOP, bpm=tempo, units="time", trim=True
    )
    beats = np.asarray(beats, dtype=float)
    if beats.size < MIN_BEATS:
        return None, np.zeros(0)
    return refine_tempo(beats), beats
