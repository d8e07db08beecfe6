"""Meter (beats per bar) and downbeats from beat-synchronous accents and harmonic change.

    meter, downbeats = estimate_meter_and_downbeats(frames, beats)   # (4, (k,) seconds) or (None, [])

Given the tracked beats, each beat b gets three cues, each z-scored over the excerpt:
- bass accent: the low-band (< 200 Hz) onset envelope at the beat (bass drum, bass notes),
- accent: the full-band onset envelope at the beat,
- harmonic change: cosine distance between the mean chroma of the beat before b and of the beat
  starting at b (chords tend to change on the bar line).
Their weighted sum (`CUE_WEIGHTS`) is the downbeat salience s[b]. For each meter m in `METERS`
and phase p < m, the score is mean(s[b] for b = p mod m) - mean(s[b] otherwise): how much the
beats of that phase stand out. The (m, p) with the best score wins; a meter other than 4 must
beat 4's best score by `METER_MARGIN` (4/4 is by far the most common meter, and with few bars
the contrast of a wrong meter can win by chance). Downbeats are beats[p::m].

Fewer than two bars' worth of beats (2 * 4) gives (None, []): a meter cannot be told. Meters 2
and 6 are not told apart from 4 and 3 (a bar of 2 is half a bar of 4, and 6/8 is heard at the
dotted-quarter level as 2 beats): the estimate says 4 or 3.
"""

from __future__ import annotations

import numpy as np

from mllm.core.features.spectra import Frames

METERS = (3, 4)
CUE_WEIGHTS = {"bass": 1.0, "accent": 0.5, "harmony": 1.0}
METER_MARGIN = 0.1
MIN_BEATS = 8


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-12 else np.zeros_like(values)


def _at_beats(envelope: np.ndarray, rate: float, beats: np.ndarray, reach: int = 2) -> np.ndarray:
    """(n,) maximum of `envelope` within +-`reach` frames of each beat."""
    index = np.clip(np.round(beats * rate).astype(int), 0, envelope.size - 1)
    window = np.stack([envelope[np.clip(index + k, 0, envelope.size - 1)] for k in range(-reach, reach + 1)])
    return window.max(axis=0)


def _harmonic_change(chroma: np.ndarray, rate: float, beats: np.ndarray) -> np.ndarray:
    """(n,) cosine distance between the mean chroma of the inter-beat span before and after each beat."""
    edges = np.clip(np.round(beats * rate).astype(int), 0, chroma.shape[1])
    period = int(np.median(np.diff(edges))) if edges.size > 1 else 1
    bounds = np.concatenate([[max(edges[0] - period, 0)], edges, [min(edges[-1] + period, chroma.shape[1])]])
    spans = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        segment = chroma[:, lo:max(hi, lo + 1)]
        spans.append(segment.mean(axis=1) if segment.size else np.zeros(12))
    spans = np.array(spans)  # (n + 1, 12): span i runs from beat i-1 to beat i
    spans /= np.maximum(np.linalg.norm(spans, axis=1, keepdims=True), 1e-12)
    return 1.0 - np.sum(spans[:-1] * spans[1:], axis=1)


def downbeat_salience(frames: Frames, beats: np.ndarray) -> np.ndarray:
    """(n,) weighted sum of the z-scored cues of each beat (see the module docstring)."""
    cues = {
        "bass": _at_beats(frames.bass_onset_envelope, frames.onset_rate, beats),
        "accent": _at_beats(frames.onset_envelope, frames.onset_rate, beats),
        "harmony": _harmonic_change(frames.chroma, frames.chroma_rate, beats),
    }
    return sum(CUE_WEIGHTS[name] * _zscore(values) for name, values in cues.items())


def meter_scores(salience: np.ndarray, meters: tuple[int, ...] = METERS) -> dict[tuple[int, int], float]:
    """(meter, phase) -> mean salience of that phase's beats minus the mean of the others."""
    scores = {}
    positions = np.arange(salience.size)
    for meter in meters:
        for phase in range(meter):
            on = positions % meter == phase
            if on.any() and (~on).any():
                scores[(meter, phase)] = float(salience[on].mean() - salience[~on].mean())
    return scores


def estimate_meter_and_downbeats(frames: Frames, beats: np.ndarray) -> tuple[int | None, np.ndarray]:
    """Beats per bar and downbeat times (a subset of `beats`); (None, []) with too few beats."""
    beats = np.asarray(beats, dtype=float)
    if beats.size < MIN_BEATS:
        return None, np.zeros(0)
    scores = meter_scores(downbeat_salience(frames, beats))
    best_four = max((v, k) for k, v in scores.items() if k[0] == 4)
    best_other = max(((v, k) for k, v in scores.items() if k[0] != 4), default=None)
    value, (meter, phase) = best_four
    if best_other is not None and best_other[0] > value + METER_MARGIN:
        value, (meter, phase) = best_other
    return meter, beats[phase::meter]
