"""The Essentia backend: Essentia's tempo, beats and key; the rest from the librosa front end.

    features = analyse(samples, 22050)      # needs `pip install 'mllm[essentia]'`

- Tempo and beats: `RhythmExtractor2013(method="multifeature")` (Zapata et al. 2014). It
  assumes 44.1 kHz audio, so the signal is resampled to 44.1 kHz (soxr) first.
- Key: `KeyExtractor` with profile `KEY_PROFILE` (HPCP with Essentia's defaults); its
  `strength` (the profile correlation) is reported as `key_confidence`.
- Downbeats and meter (Essentia has no downbeat tracker), chords and loudness: the same code as
  the librosa backend, run on Essentia's beats.

The functions `rhythm` and `key` are also what benchmarks/features_vs_essentia.py times.

Essentia's extractors take the whole signal (at 44.1 kHz for the rhythm), so this backend has no
`analyse_blocks`: extract-features decodes the whole excerpt for it, up to `LONGEST_SECONDS`
(core/features/extract.py refuses longer excerpts with an error record).
"""

from __future__ import annotations

import numpy as np
import soxr

from mllm.core.features.backend import Features
from mllm.core.features import librosa_backend  # not its names: this module must not export analyse_blocks
from mllm.core.features.spectra import Frames

NAME = "essentia"
RHYTHM_SAMPLE_RATE = 44100
KEY_PROFILE = "bgate"
# Essentia holds about 45 MB per minute of audio (the signal at 44.1 kHz and its own frames):
# 30 minutes peak near 1.7 GB. Longer excerpts are refused (extract-features: an error record).
LONGEST_SECONDS = 1800.0


def _essentia():
    import essentia

    essentia.log.infoActive = False  # Essentia prints INFO lines on stdout otherwise
    essentia.log.warningActive = False
    import essentia.standard as es

    return es


def to_rhythm_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == RHYTHM_SAMPLE_RATE:
        return np.asarray(samples, dtype=np.float32)
    return soxr.resample(samples, sample_rate, RHYTHM_SAMPLE_RATE).astype(np.float32)


def rhythm(samples_44k: np.ndarray) -> tuple[float | None, np.ndarray]:
    """(tempo BPM or None, beat times) by RhythmExtractor2013 on 44.1 kHz samples."""
    es = _essentia()
    bpm, ticks, _confidence, _estimates, _intervals = es.RhythmExtractor2013(method="multifeature")(samples_44k)
    ticks = np.asarray(ticks, dtype=float)
    return (float(bpm) if bpm > 0 and ticks.size else None), ticks


def key(samples: np.ndarray, sample_rate: int, profile: str = KEY_PROFILE) -> tuple[str | None, float]:
    """(mir_eval key string or None, strength) by KeyExtractor with `profile`."""
    es = _essentia()
    tonic, scale, strength = es.KeyExtractor(profileType=profile, sampleRate=float(sample_rate))(
        np.asarray(samples, dtype=np.float32)
    )
    if not tonic or scale not in ("major", "minor") or not strength > 0:
        return None, 0.0
    return f"{tonic} {scale}", float(strength)


def _rhythm_and_key(samples: np.ndarray, sample_rate: int, frames: Frames):
    tempo, beats = rhythm(to_rhythm_rate(samples, sample_rate))
    key_name, strength = key(samples, sample_rate)
    return tempo, beats, key_name, min(max(strength, 0.0), 1.0)


def analyse(samples: np.ndarray, sample_rate: int) -> Features:
    """Every feature of docs/records.md; silence as in the librosa backend."""
    samples = librosa_backend.check_signal(samples)
    return librosa_backend.analyse_blocks([samples], sample_rate, NAME, lambda frames: _rhythm_and_key(samples, sample_rate, frames))
