"""The mix: a channel volume (MIDI CC 7) per General MIDI program, so that no instrument drowns the others.

TimGM6mb's presets differ by about 20 dB at the same velocity (its French horn is 19 dB louder
than its piano). `LEVEL_DB` holds each program's level as `measure_level` measures it (RMS in
dB of a one-second note at velocity 100, averaged over A2, A3 and A4, tinysoundfont with 0 dB
gain, TimGM6mb);
`volume` turns it into a CC 7 value that brings louder programs down to `TARGET_DB` under the
General MIDI volume curve (gain = 40 log10(value / 127) dB). Quieter programs stay at 127. The
CC 7 event is written into the MIDI at time 0, so FluidSynth and a MIDI file saved with --midi
hear the same mix. Drums keep full volume.
"""

from __future__ import annotations

import math

import numpy as np
import pretty_midi

__all__ = ["LEVEL_DB", "TARGET_DB", "volume", "set_volume", "measure_level", "cc7_gain"]

TARGET_DB = -27.0
LEVEL_DB = {
    0: -35.7, 4: -27.8, 6: -33.8, 8: -32.3, 10: -26.3, 11: -20.6, 18: -26.2, 19: -28.1, 21: -29.6, 22: -27.5,
    24: -23.2, 25: -27.9, 26: -20.1, 29: -27.4, 30: -25.0, 32: -22.4, 33: -19.1, 34: -23.1, 38: -22.4, 39: -18.2,
    40: -21.8, 41: -21.3, 42: -19.5, 43: -21.8, 46: -16.8, 48: -29.3, 51: -22.9, 52: -20.8, 53: -26.6, 56: -21.3,
    57: -24.1, 58: -20.3, 60: -16.4, 62: -24.0, 66: -25.5, 68: -18.4, 70: -25.1, 71: -23.6, 73: -18.6, 80: -29.2,
    81: -27.0, 88: -19.0, 89: -19.7, 90: -27.8, 94: -21.4, 98: -23.6, 105: -22.2,
}
LEVEL_PITCHES = (45, 57, 69)


def cc7_gain(value: int) -> float:
    """Linear amplitude of a CC 7 value under the General MIDI curve, (value / 127) ** 2."""
    return (max(0, min(127, value)) / 127.0) ** 2


def volume(program: int, is_drum: bool = False) -> int:
    """The CC 7 value of `program`: 127 at or below the target level, lower above it."""
    level = LEVEL_DB.get(program)
    if is_drum or level is None or level <= TARGET_DB:
        return 127
    return int(round(127 * 10 ** ((TARGET_DB - level) / 40.0)))


def set_volume(instrument: pretty_midi.Instrument) -> None:
    """Put the program's CC 7 at time 0 into `instrument` (replacing any volume event there)."""
    instrument.control_changes = [c for c in instrument.control_changes if not (c.number == 7 and c.time == 0.0)]
    instrument.control_changes.insert(0, pretty_midi.ControlChange(7, volume(instrument.program, instrument.is_drum), 0.0))


def measure_level(program: int, soundfont: str | None = None, sample_rate: int = 22050) -> float:
    """A program's level as `LEVEL_DB` holds it (full volume, no CC 7)."""
    from mllm.core.synth.render import GAIN_DB, render

    levels = []
    for pitch in LEVEL_PITCHES:
        midi = pretty_midi.PrettyMIDI()
        instrument = pretty_midi.Instrument(program=program)
        instrument.notes.append(pretty_midi.Note(100, pitch, 0.0, 1.0))
        midi.instruments.append(instrument)
        audio, _ = render(midi, 1.0, sample_rate, soundfont=soundfont)
        levels.append(20 * math.log10(float(np.sqrt(np.mean(audio**2))) + 1e-12))
    return float(np.mean(levels)) - GAIN_DB
