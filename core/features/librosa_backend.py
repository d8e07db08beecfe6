"""The default backend: every feature from one numpy/librosa/scipy front end (spectra.py).

    features = analyse(samples, 22050)
    features = analyse_blocks(record_audio_stream(record, sample_rate=22050), 22050)   # the same, in blocks

Silence: a signal whose integrated loudness is below BS.1770's absolute gate (-70 LUFS, see
loudness.py) is analysed no further: no tempo, beats, meter or key can be heard in it, so the
features say so (`silent_features`): tempo_bpm, meter, key, tuning_cents and loudness_lufs None,
no beats, downbeats or tempo candidates, key_confidence 0.0, and one "N" chord over the whole
excerpt.

`tempo_candidates` and `tuning_cents` come from this backend's own tempo and tuning estimates;
the backends that reuse this module's shared analysis with their own tempo and key (essentia)
or only its record form (madmom) leave them out. (The front end runs in
the same pass over the audio as the loudness measurement; for silence its frames go unused.)

Long audio: `analyse_blocks` takes the signal block by block as a decoder streams it and keeps
only frame-level results (onset envelopes, chroma: about 8 MB per hour at 22.05 kHz), never the
samples; tempo, beats, key and chords then work on those whole-track frames (`LONGEST_SECONDS`
bounds what that costs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from mllm.core.features.scipy_startup import skip_capability_notes

skip_capability_notes()  # before the imports below load scipy.signal: 0.7 s less CPU per process

from mllm.core.features.backend import Features  # noqa: E402
from mllm.core.features.chords import NO_CHORD, estimate_chords  # noqa: E402
from mllm.core.features.downbeats import estimate_meter_and_downbeats  # noqa: E402
from mllm.core.features.key import estimate_key  # noqa: E402
from mllm.core.features.loudness import LoudnessMeter  # noqa: E402
from mllm.core.features.spectra import FrameAnalyser, Frames  # noqa: E402
from mllm.core.features.tempo_beats import TempoCandidate, estimate_tempo_and_beats  # noqa: E402

NAME = "librosa"
# analyse_blocks keeps frames, not samples; the whole-track steps (frames, beat tracking, the chord
# decoder's float64 lattice) add about 65 MB per hour of audio at 22.05 kHz to a process of about
# 0.55 GB, so 12 hours peak near 1.3 GB (measured to 3 h: 0.72 GB). Longer excerpts are refused.
LONGEST_SECONDS = 12 * 3600.0


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


NOT_REPORTED: Any = object()  # default of the two fields only this backend estimates: the field is left out


def candidates_field(candidates: list[TempoCandidate]) -> list[dict[str, float]]:
    """`tempo_candidates` as records carry it: [{"bpm": 128.0, "strength": 0.71}, ...]."""
    return [{"bpm": round(float(c.bpm), 2), "strength": round(float(c.strength), 3)} for c in candidates]


def features_record(
    duration: float, *, tempo, beats, downbeats, meter, key, key_confidence, chords, loudness_lufs, backend: str,
    tempo_candidates=NOT_REPORTED, tuning_cents=NOT_REPORTED,
) -> Features:
    """The `features` field in the order of docs/records.md, numbers rounded for small records.
    `tempo_candidates` and `tuning_cents` are fields of this backend only: a backend that does
    not pass them has none (not a null)."""
    record = {"duration": round(duration, 3), "tempo_bpm": None if tempo is None else round(float(tempo), 2)}
    if tempo_candidates is not NOT_REPORTED:
        record["tempo_candidates"] = tempo_candidates
    record.update(beats=times(beats), downbeats=times(downbeats), meter=meter, key=key, key_confidence=round(float(key_confidence), 3))
    if tuning_cents is not NOT_REPORTED:
        record["tuning_cents"] = tuning_cents
    record.update(chords=chords, loudness_lufs=loudness_lufs, backend=backend)
    return record


def silent_features(duration: float, backend: str) -> Features:
    """What a silent excerpt gets (see the module docstring)."""
    chords = [[0.0, round(duration, 3), NO_CHORD]] if round(duration, 3) > 0 else []
    own = {"tempo_candidates": [], "tuning_cents": None} if backend == NAME else {}
    return features_record(
        duration, tempo=None, beats=[], downbeats=[], meter=None, key=None, key_confidence=0.0,
        chords=chords, loudness_lufs=None, backend=backend, **own,
    )


RhythmAndKey = Callable[[Frames], tuple[float | None, np.ndarray, str | None, float]]


def analyse_blocks(
    blocks: Iterable[np.ndarray], sample_rate: int, backend: str = NAME, rhythm_and_key: RhythmAndKey | None = None
) -> Features:
    """The analysis every backend shares, on a signal that arrives in blocks (a decoder's stream):
    front end and loudness fed block by block, then the silence check, meter/downbeats and chords
    on the backend's beats. `rhythm_and_key(frames)` gives (tempo or None, beat times, key or
    None, key confidence); the default is this backend's. Memory: one block and the frames."""
    meter, front = LoudnessMeter(sample_rate), FrameAnalyser(sample_rate)
    for block in blocks:
        block = check_signal(block)
        meter.add(block)
        front.add(block)
    if front.n_samples == 0:
        raise ValueError("the audio holds no samples")
    duration = front.n_samples / sample_rate
    loudness = meter.result()
    if loudness is None:
        return silent_features(duration, backend)
    frames = front.finish()
    own: dict = {}
    if rhythm_and_key is None:  # this backend: its tempo candidates and tuning are reported too
        estimate = estimate_tempo_and_beats(frames)
        tempo, beats = estimate.tempo_bpm, estimate.beats
        key, confidence = estimate_key(frames.chroma, frames.sounding())
        own = {"tempo_candidates": candidates_field(estimate.candidates), "tuning_cents": frames.tuning_cents}
    else:
        tempo, beats, key, confidence = rhythm_and_key(frames)
    meter_value, downbeats = estimate_meter_and_downbeats(frames, beats)
    chords = estimate_chords(frames.chroma, frames.sounding(), frames.chroma_rate, duration)
    return features_record(
        duration, tempo=tempo, beats=beats, downbeats=downbeats, meter=meter_value, key=key,
        key_confidence=confidence, chords=chords, loudness_lufs=loudness, backend=backend, **own,
    )


def analyse(samples: np.ndarray, sample_rate: int) -> Features:
    """Every feature of docs/records.md ("Music fields") for a mono signal."""
    return analyse_blocks([check_signal(samples)], sample_rate)
