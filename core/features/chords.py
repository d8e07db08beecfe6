"""Timed chords: chroma frames matched to triad templates, smoothed by a Viterbi decoder.

    chords = estimate_chords(frames.chroma, frames.sounding(), frames.chroma_rate, duration)
    # [[0.0, 1.95, "C:maj"], [1.95, 4.1, "A:min"], ...]   Harte labels, "N" for no chord

Vocabulary: the 24 major and minor triads and "N" (mir_eval's majmin comparison scores exactly
this vocabulary; sevenths and other qualities are heard as their triad).

1. Each chroma frame (93 ms) is scaled to unit length and compared (cosine) with 24 binary
   triad templates (root, third, fifth).
2. "N" scores a constant `NO_CHORD_SIMILARITY` (a frame whose best triad fits worse is no
   chord), and wins outright in silent frames (`Frames.sounding`).
3. The similarities become emission probabilities by a softmax with sharpness `SHARPNESS`, and
   Viterbi decoding (`numpy_dsp.viterbi`, librosa.sequence.viterbi's result without loading
   librosa's numba modules) finds the most likely path under a transition matrix that stays
   in the same chord with probability `SELF_TRANSITION` per frame (expected chord length about
   1 / (1 - p) frames = 1.9 s) and moves to any other state uniformly otherwise.
4. Runs of one state become segments. A chroma frame is centred on its time, so a change
   between frames i-1 and i is placed half a frame before frame i; the last segment ends at
   `duration`. Times are rounded to ms.
"""

from __future__ import annotations

import numpy as np

from mllm.core.features.key import NOTE_NAMES
from mllm.core.features.numpy_dsp import transition_loop, viterbi

NO_CHORD = "N"
NO_CHORD_SIMILARITY = 0.55
SHARPNESS = 25.0
SELF_TRANSITION = 0.95


def chord_labels() -> list[str]:
    """The 25 state labels: C:maj..B:maj, C:min..B:min, N."""
    return [f"{NOTE_NAMES[r]}:{q}" for q in ("maj", "min") for r in range(12)] + [NO_CHORD]


def chord_templates() -> np.ndarray:
    """(24, 12) unit-length binary triad templates in the order of `chord_labels`."""
    rows = []
    for third in (4, 3):
        for root in range(12):
            row = np.zeros(12)
            row[[root, (root + third) % 12, (root + 7) % 12]] = 1.0
            rows.append(row / np.linalg.norm(row))
    return np.array(rows)


def chord_similarities(chroma: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    """(25, C) cosine similarity of each frame with each triad, and the "N" score (last row)."""
    chroma = np.asarray(chroma, dtype=float)
    norms = np.linalg.norm(chroma, axis=0)
    unit = chroma / np.maximum(norms, 1e-12)
    similarity = np.empty((25, chroma.shape[1]))
    similarity[:24] = chord_templates() @ unit
    similarity[24] = NO_CHORD_SIMILARITY
    quiet = ~np.asarray(sounding, dtype=bool) | (norms <= 1e-9)
    similarity[:24, quiet] = 0.0
    similarity[24, quiet] = 1.0
    return similarity


def decode_chords(similarity: np.ndarray) -> np.ndarray:
    """(C,) most likely state per frame (indices into `chord_labels`)."""
    probabilities = np.exp(SHARPNESS * (similarity - similarity.max(axis=0, keepdims=True)))
    probabilities /= probabilities.sum(axis=0, keepdims=True)
    return viterbi(probabilities, transition_loop(similarity.shape[0], SELF_TRANSITION))


def segments(states: np.ndarray, frame_rate: float, duration: float, labels: list[str]) -> list[list]:
    """Runs of equal states -> [[start, end, label], ...] covering [0, duration]; times in ms."""
    if states.size == 0 or duration <= 0:
        return []
    changes = np.flatnonzero(np.diff(states)) + 1
    starts = np.concatenate([[0], changes])
    bounds = np.clip((starts - 0.5) / frame_rate, 0.0, duration)
    bounds[0] = 0.0
    bounds = np.append(bounds, duration).round(3)
    out = []
    for i, start in enumerate(starts):
        begin, end = float(bounds[i]), float(bounds[i + 1])
        if end > begin:
            out.append([begin, end, labels[int(states[start])]])
    return out


def estimate_chords(chroma: np.ndarray, sounding: np.ndarray, frame_rate: float, duration: float) -> list[list]:
    """Chord segments [[start, end, Harte label], ...] (see the module docstring)."""
    if chroma.shape[1] == 0:
        return []
    states = decode_chords(chord_similarities(chroma, sounding))
    return segments(states, frame_rate, duration, chord_labels())
