"""The default backend: every feature from one numpy/librosa/scipy front end (spectra.py).

    features = analyse(samples, 22050)

Silence: a signal whose integrated loudness is below BS.1770's absolute gate (-70 LUFS, see
loudness.py) is analysed no further: no tempo, beats, meter or key can be heard in it, so the
features say so (`silent_features`): tempo_bpm, meter, key and loudness_lufs None, no beats or
downbeats, key_confidence 0.0, and one "N" chord over the whole excerpt.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mllm.core.features.backend import Features
from mllm.core.features.chords import NO_CHORD, estimate_chords
from mllm.core.features.downbeats import estimate_meter_and_downbeats
from mllm.core.features.key import estimate_key
from mllm.core.features.loudness import integrated_loudness
from mllm.core.features.spectra import Frames, analyse_frames
from mllm.core.features.tempo_beats import estimate_tempo_and_beats

NAME = "librosa"


def times(values) -> list[float]:
    """Seconds rounded to ms, as plain floats (records stay small)."""
    return [round(float(t), 3) for t in np.asarray(values, dtype=float)]


def check_signal(samples: np.ndarray) -> np.ndarray:
    """The samples as float32 (n,); ValueError for no samples, several channels, NaN or inf."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (n,), got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("the audio holds no samples")
    if not np.isfinite(samples).all():
        raise ValueError("the audio holds NaN or infinite samples")
    return samples


def features_record(
    duration: float, *, tempo, beats, downbeats, meter, key, key_confidence, chords, loudness_lufs, backend: str
) -> Features:
    """The `features` field in the order of docs/records.md, numbers rounded for small records."""
    return {
        "duration": round(duration, 3),
        "tempo_bpm": None if tempo is None else round(float(tempo), 2),
        "beats": times(beats),
        "downbeats": times(downbeats),
        "meter": meter,
        "key": key,
        "key_confidence": round(float(key_confidence), 3),
        "chords": chords,
        "loudness_lufs": loudness_lufs,
        "backend": backend,
    }


def silent_features(duration: float, backend: str) -> Features:
    """What a silent excerpt gets (see the module docstring)."""
    chords = [[0.0, round(duration, 3), NO_CHORD]] if round(duration, 3) > 0 else []
    return features_record(
        duration, tempo=None, beats=[], downbeats=[], meter=None, key=None, key_confidence=0.0,
        chords=chords, loudness_lufs=None, backend=backend,
    )


RhythmAndKey = Callable[[np.ndarray, int, Frames], tuple[float | None, np.ndarray, str | None, float]]


def analyse_signal(samples: np.ndarray, sample_rate: int, backend: str, rhythm_and_key: RhythmAndKey) -> Features:
    """The analysis every backend shares: silence check, front end, meter/downbeats and chords
    on the backend's beats, loudness; `rhythm_and_key(samples, sample_rate, frames)` gives
    (tempo or None, beat times, key or None, key confidence)."""
    samples = check_signal(samples)
    duration = samples.size / sample_rate
    loudness = integrated_loudness(samples, sample_rate)
    if loudness is None:
        return silent_features(duration, backend)
    frames = analyse_frames(samples, sample_rate)
    tempo, beats, key, confidence = rhythm_and_key(samples, sample_rate, frames)
    meter, downbeats = estimate_meter_and_downbeats(frames, beats)
    chords = estimate_chords(frames.chroma, frames.sounding(), frames.chroma_rate, duration)
    return features_record(
        duration, tempo=tempo, beats=beats, downbeats=downbeats, meter=meter, key=key,
        key_confidence=confidence, chords=chords, loudness_lufs=loudness, backend=backend,
    )


def _rhythm_and_key(samples: np.ndarray, sample_rate: int, frames: Frames):
    tempo, beats = estimate_tempo_and_beats(frames)
    key, confidence = estimate_key(frames.chroma, frames.sounding())
    return tempo, beats, key, confidence


def analyse(samples: np.ndarray, sample_rate: int) -> Features:
    """Every feature of docs/records.md ("Music fields") for a mono signal."""
    return analyse_signal(samples, sample_rate, NAME, _rhythm_and_key)
