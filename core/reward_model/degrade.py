"""Musicality degradations at known levels: a clean render made worse by noise, clipping or detuning.

    degraded = degrade(samples, sample_rate, "noise", level=3, rng=np.random.default_rng(0))

Each kind has four levels, 1 (mild) to 4 (severe); level 0 is the clean audio itself. The levels
are the "systems" of a listening test with a known ranking: clean > 1 > 2 > 3 > 4, whatever the
kind. Definitions (x the clean mono signal, float in [-1, 1]):

    kind     level 1    level 2    level 3    level 4
    noise    SNR 30 dB  20 dB      10 dB      0 dB      white Gaussian noise at that ratio of
                                                        x's mean power to the noise's
    clip     t = 0.5    0.25       0.1        0.03      x normalised to peak 1, hard-clipped at
                                                        +-t (the waveform's top cut off: loud
                                                        buzzing distortion), scaled back
    detune   15 cents   25         35         50        x mixed half and half with a copy of
                                                        itself shifted by that many cents
                                                        (librosa's phase vocoder): the beating
                                                        of an out-of-tune double; 50 cents (a
                                                        quarter tone) is the most out of tune

After each degradation the result is scaled to x's RMS level, so a model cannot tell a degraded
clip by loudness alone, and limited to [-1, 1] (a peak above 1 is scaled down, never clipped:
the clip kind alone distorts). The noise is drawn from `rng` (give a seeded one); clipping and
detuning are deterministic.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "LEVELS", "NOISE_SNR_DB", "CLIP_THRESHOLD", "DETUNE_CENTS", "degrade", "system_name"]

NOISE_SNR_DB = {1: 30.0, 2: 20.0, 3: 10.0, 4: 0.0}
CLIP_THRESHOLD = {1: 0.5, 2: 0.25, 3: 0.1, 4: 0.03}
DETUNE_CENTS = {1: 15.0, 2: 25.0, 3: 35.0, 4: 50.0}
KINDS = ("noise", "clip", "detune")
LEVELS = (1, 2, 3, 4)


def system_name(level: int) -> str:
    """The `system` of a clip degraded at `level` (0: "clean"), as the MOS records name it."""
    return "clean" if level == 0 else f"level-{level}"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _noise(x: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    power = np.mean(np.square(x, dtype=np.float64))
    sigma = np.sqrt(power / 10 ** (NOISE_SNR_DB[level] / 10))
    return x + rng.normal(0.0, sigma, size=x.shape)


def _clip(x: np.ndarray, level: int) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    threshold = CLIP_THRESHOLD[level]
    return np.clip(x / peak, -threshold, threshold) * peak


def _detune(x: np.ndarray, level: int, sample_rate: int) -> np.ndarray:
    import librosa

    shifted = librosa.effects.pitch_shift(x.astype(np.float32), sr=sample_rate, n_steps=DETUNE_CENTS[level] / 100.0)
    return 0.5 * x + 0.5 * shifted[: len(x)]


def degrade(samples: np.ndarray, sample_rate: int, kind: str, level: int,
            rng: np.random.Generator | None = None) -> np.ndarray:
    """`samples` (mono, float) degraded by `kind` at `level` (module docstring), float32, same length.
    Level 0 returns the input unchanged. ValueError for an unknown kind or level, or silent audio."""
    if kind not in KINDS:
        raise ValueError(f"unknown degradation {kind!r} (kinds: {', '.join(KINDS)})")
    if level == 0:
        return np.asarray(samples, dtype=np.float32)
    if level not in LEVELS:
        raise ValueError(f"degradation level must be one of {', '.join(map(str, LEVELS))} (0 = clean), got {level!r}")
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"degrade takes mono samples, got shape {list(x.shape)}")
    level_before = _rms(x)
    if level_before == 0.0:
        raise ValueError("the audio is silent: a degradation of silence has no level")
    if kind == "noise":
        y = _noise(x, level, rng if rng is not None else np.random.default_rng(0))
    elif kind == "clip":
        y = _clip(x, level)
    else:
        y = _detune(x, level, sample_rate)
    y *= level_before / max(_rms(y), 1e-12)
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        y /= peak
    return y.astype(np.float32)
