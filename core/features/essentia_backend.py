"""The Essentia backend: Essentia's tempo, beats and key; the rest from the librosa front end.

    features = analyse(samples, 44100)      # needs `pip install 'mllm[essentia]'`
    mllm extract-features clips.jsonl --backend essentia      # decoded at SAMPLE_RATE, 44.1 kHz

- Tempo and beats: `RhythmExtractor2013(method="multifeature")` (Zapata et al. 2014), and key:
  `KeyExtractor` with profile `KEY_PROFILE` (HPCP with Essentia's defaults; its `strength`, the
  profile correlation, is `key_confidence`), both at `SAMPLE_RATE` (44.1 kHz), the rate Essentia's
  extractors are built for (RhythmExtractor2013 has no sample-rate parameter). Samples at 44.1 kHz
  are analysed as they are; any other rate is resampled to it (soxr) first. A 22.05 kHz decode
  upsampled has nothing above 11 kHz, which moves the onset detection functions: on real tracks
  it changed the metrical level Essentia reads (issue 12; docs/features.md, "Backends").
- Downbeats and meter (Essentia has no downbeat tracker), chords and loudness: the same code as
  the librosa backend, run on Essentia's beats, at that backend's rate (`SHARED_SAMPLE_RATE`,
  22.05 kHz: the signal is resampled down to it when it comes at another rate), so these fields
  are what the default backend computes on the same beats.

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
SAMPLE_RATE = 44100  # Essentia's extractors' rate, and extract-features' decode rate for this backend (extract.decode_rate)
RHYTHM_SAMPLE_RATE = SAMPLE_RATE
SHARED_SAMPLE_RATE = 22050  # the librosa front end's rate (meter, downbeats, chords, loudness)
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


def resampled(samples: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    """float32 samples at `target` Hz: the same samples when already there, else soxr (HQ)."""
    if sample_rate == target:
        return np.asarray(samples, dtype=np.float32)
    return soxr.resample(samples, sample_rate, target).astype(np.float32)


def to_rhythm_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    return resampled(samples, sample_rate, SAMPLE_RATE)


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


def _rhythm_and_key(native: np.ndarray, frames: Frames):
    tempo, beats = rhythm(native)
    key_name, strength = key(native, SAMPLE_RATE)
    return tempo, beats, key_name, min(max(strength, 0.0), 1.0)


def analyse(samples: np.ndarray, sample_rate: int) -> Features:
    """Every feature of docs/records.md; silence as in the librosa backend. Tempo, beats and key
    at SAMPLE_RATE, the rest at SHARED_SAMPLE_RATE (see the module docstring)."""
    samples = librosa_backend.check_signal(samples)
    native = to_rhythm_rate(samples, sample_rate)
    shared = resampled(samples, sample_rate, SHARED_SAMPLE_RATE)
    return librosa_backend.analyse_blocks([shared], SHARED_SAMPLE_RATE, NAME, lambda frames: _rhythm_and_key(native, frames))
