"""Numeric attributes of a rendered clip, `energy` and `brightness` on a 1-9 scale, known exactly.

They are not emotions: the emotion of generated music is not known. They are a fixed rule on
what was rendered, so a regression or GRPO experiment has a target that is learnable from the
audio (tempo, onsets, loudness, chroma and pitch height carry it) and exact.

Inputs, from the notes that start inside the clip:

    tempo     the labelled tempo (BPM)
    density   notes per second, drum hits included
    velocity  mean MIDI velocity of all notes (what the synthesiser turns into loudness)
    drums     1 if the clip has drums, else 0
    pitch     mean MIDI pitch of the pitched (non-drum) notes: the register
    major     1 for a major key, 0 for minor (0.5 for any other mode)

Normalised terms, each clipped to [0, 1]:

    t = (tempo - 60) / 120                     60 BPM -> 0, 180 BPM -> 1
    d = log2(density / 2) / log2(12)           2 notes/s -> 0, 24 notes/s -> 1
    v = (velocity - 45) / 60                   45 -> 0, 105 -> 1
    r = (pitch - 50) / 22                      D3 -> 0, C5 -> 1

    energy     = 1 + 8 * (0.30 t + 0.30 d + 0.25 v + 0.15 drums)
    brightness = 1 + 8 * (0.55 r + 0.30 major + 0.15 v)

each rounded to one decimal. The constants are fixed (they do not depend on the corpus), so a
clip's values do not change with --n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pretty_midi

__all__ = ["NoteStatistics", "note_statistics", "energy", "brightness", "SCALE", "ENERGY_WEIGHTS", "BRIGHTNESS_WEIGHTS"]

SCALE = (1, 9)
ENERGY_WEIGHTS = {"tempo": 0.30, "density": 0.30, "velocity": 0.25, "drums": 0.15}
BRIGHTNESS_WEIGHTS = {"register": 0.55, "major": 0.30, "velocity": 0.15}


@dataclass(frozen=True)
class NoteStatistics:
    density: float  # notes per second
    velocity: float  # mean MIDI velocity
    pitch: float  # mean MIDI pitch of pitched notes
    drums: bool


def note_statistics(midi: pretty_midi.PrettyMIDI, duration: float) -> NoteStatistics:
    notes = [(n, i.is_drum) for i in midi.instruments for n in i.notes if n.start < duration]
    pitched = [n.pitch for n, is_drum in notes if not is_drum]
    return NoteStatistics(
        density=len(notes) / duration if duration > 0 else 0.0,
        velocity=float(np.mean([n.velocity for n, _ in notes])) if notes else 0.0,
        pitch=float(np.mean(pitched)) if pitched else 0.0,
        drums=any(is_drum for _, is_drum in notes),
    )


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def _on_scale(weighted: float) -> float:
    low, high = SCALE
    return round(low + (high - low) * weighted, 1)


def energy(tempo_bpm: float, stats: NoteStatistics) -> float:
    """1 + 8 * (0.30 t + 0.30 d + 0.25 v + 0.15 drums), rounded to 0.1 (terms in the module docstring)."""
    terms = {
        "tempo": _unit((tempo_bpm - 60.0) / 120.0),
        "density": _unit(math.log2(stats.density / 2.0) / math.log2(12.0)) if stats.density > 0 else 0.0,
        "velocity": _unit((stats.velocity - 45.0) / 60.0),
        "drums": 1.0 if stats.drums else 0.0,
    }
    return _on_scale(sum(ENERGY_WEIGHTS[name] * value for name, value in terms.items()))


def brightness(mode: str, stats: NoteStatistics) -> float:
    """1 + 8 * (0.55 r + 0.30 major + 0.15 v), rounded to 0.1 (terms in the module docstring)."""
    terms = {
        "register": _unit((stats.pitch - 50.0) / 22.0),
        "major": {"major": 1.0, "minor": 0.0}.get(mode, 0.5),
        "velocity": _unit((stats.velocity - 45.0) / 60.0),
    }
    return _on_scale(sum(BRIGHTNESS_WEIGHTS[name] * value for name, value in terms.items()))
