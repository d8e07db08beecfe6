"""The parts of a generated piece, written bar by bar on a metrical grid: bass, harmony, lead, drums.

Positions inside a bar are counted in beats (1.5 = the eighth after beat 2 in 4/4; in 6/8 a beat
is a dotted quarter and its eighths sit at 1/3 and 2/3). Every part puts something on the
downbeat: the bass plays the chord's root there, and drums (when present) put the kick there.
Velocities follow the piece's level with accents (downbeat > beat > offbeat) and a little noise;
onsets other than the kick move by a few milliseconds (humanised, at most 10 ms), which is far
inside any beat-tracking tolerance (70 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pretty_midi

from mllm.core.synth.harmony import Chord, Key
from mllm.core.synth.styles import Meter

__all__ = ["Grid", "PartWriter", "write_bass", "write_harmony", "write_lead", "write_drums", "tidy"]

# General MIDI percussion notes.
KICK, SIDE_STICK, SNARE, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE, TAMBOURINE, SHAKER = (
    36, 37, 38, 39, 42, 44, 46, 49, 51, 54, 70,
)
STRUMMED_PROGRAMS = set(range(24, 32)) | {105}  # guitars and banjo: chord notes 8 ms apart
BASS_LOW = 33  # bass roots lie in [33, 44] (A1 to G#2)


@dataclass(frozen=True)
class Grid:
    """Where bar `bar`, beat position `position` falls in seconds."""

    meter: Meter
    bpm: float
    lead_in: float  # seconds of silence before the first downbeat
    swing: bool = False  # the eighth after a beat at 2/3 of the beat instead of 1/2

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm

    @property
    def bar_seconds(self) -> float:
        return self.beat_seconds * self.meter.beats

    def time(self, bar: int, position: float) -> float:
        beat = math.floor(position + 1e-9)
        fraction = position - beat
        if self.swing and self.meter.division == 2 and abs(fraction - 0.5) < 1e-9:
            fraction = 2.0 / 3.0
        return self.lead_in + (bar * self.meter.beats + beat + fraction) * self.beat_seconds

    def eighths(self) -> list[float]:
        """Positions of the eighth notes of one bar."""
        d = self.meter.division
        return [beat + k / d for beat in range(self.meter.beats) for k in range(d)]

    def offbeats(self) -> list[float]:
        return [p for p in self.eighths() if abs(p - round(p)) > 1e-9]


class PartWriter:
    """Collects the notes of one part; velocities from `level` with accents, onsets humanised."""

    def __init__(self, rng: np.random.Generator, grid: Grid, level: float, *, humanise: bool = True):
        self.rng, self.grid, self.level, self.humanise = rng, grid, level, humanise
        self.notes: list[pretty_midi.Note] = []

    def add(self, pitch: int, bar: int, position: float, length: float, *, accent: float = 0.0, delay: float = 0.0, exact: bool = False) -> None:
        """A note `length` beats long (shortened a little so repeated notes re-attack)."""
        start = self.grid.time(bar, position) + delay
        if self.humanise and not exact:
            start += float(np.clip(self.rng.normal(0.0, 0.004), -0.01, 0.01))
        end = start + max(length * self.grid.beat_seconds * 0.94, 0.05)
        on_beat = abs(position - round(position)) < 1e-9
        accent += 10 if abs(position) < 1e-9 else (4 if on_beat else -4)
        velocity = int(np.clip(round(self.level + accent + self.rng.normal(0.0, 4.0)), 20, 127))
        self.notes.append(pretty_midi.Note(velocity=velocity, pitch=int(pitch), start=max(start, 0.0), end=end))


def tidy(notes: list[pretty_midi.Note]) -> list[pretty_midi.Note]:
    """Sorted notes where a note ends before the next note of the same pitch starts."""
    notes = sorted(notes, key=lambda n: (n.start, n.pitch))
    last: dict[int, pretty_midi.Note] = {}
    for note in notes:
        previous = last.get(note.pitch)
        if previous is not None and previous.end > note.start - 0.002:
            previous.end = max(previous.start + 0.01, note.start - 0.002)
        last[note.pitch] = note
    return notes


def _nearest(pitch_class: int, target: float, low: int = 0, high: int = 127) -> int:
    """The MIDI pitch of `pitch_class` closest to `target`, within [low, high]."""
    candidates = [p for p in range(low, high + 1) if p % 12 == pitch_class]
    return min(candidates, key=lambda p: (abs(p - target), p))


def bass_root(chord: Chord) -> int:
    return BASS_LOW + (chord.root - BASS_LOW) % 12


def write_bass(writer: PartWriter, pattern: str, bar: int, chord: Chord, next_chord: Chord) -> None:
    grid, beats = writer.grid, writer.grid.meter.beats
    root = bass_root(chord)
    fifth = root + 7
    if pattern == "whole":
        writer.add(root, bar, 0, beats)
    elif pattern == "beats":
        for beat in range(beats):
            octave = 12 if beat == beats - 1 and writer.rng.random() < 0.3 else 0
            writer.add(root + octave, bar, beat, 0.9)
    elif pattern == "eighths":
        step = 1 / grid.meter.division
        for position in grid.eighths():
            writer.add(root, bar, position, step)
    elif pattern == "root_fifth":
        if beats == 3:
            writer.add(root, bar, 0, 1)
        else:
            half = beats // 2
            writer.add(root, bar, 0, half)
            writer.add(fifth, bar, half, beats - half)
    elif pattern == "walking":
        line = [root]
        tones = [_nearest(pc, root + 5, BASS_LOW, BASS_LOW + 19) for pc in chord.pitch_classes[1:]]
        for _ in range(beats - 2):
            line.append(int(writer.rng.choice(tones)))
        target = bass_root(next_chord)
        line.append(target + (1 if writer.rng.random() < 0.5 else -1))
        for beat, pitch in enumerate(line[:beats]):
            writer.add(pitch, bar, beat, 0.95)
    elif pattern == "offbeat_octaves":
        for beat in range(beats):
            writer.add(root, bar, beat, 0.45)
        for position in grid.offbeats():
            writer.add(root + 12, bar, position, 0.4)
    else:
        raise ValueError(f"unknown bass pattern {pattern!r}")


def voice(chord: Chord, center: int, voicing: str) -> list[int]:
    """Pitches of `chord` around `center`: close position, or a power chord with the third on top."""
    if voicing == "power":
        root = _nearest(chord.root, center - 3)
        third = chord.pitch_classes[1]
        return [root, root + 7, root + 12, _nearest(third, root + 15, root + 13, root + 24)]
    low = center - 6
    pitches = sorted(low + (pc - low) % 12 for pc in chord.pitch_classes)
    third = low + (chord.pitch_classes[1] - low) % 12
    return pitches + [third + 12]  # the third doubled on top: it says major or minor


def write_harmony(writer: PartWriter, pattern: str, bar: int, chord: Chord, center: int, voicing: str, program: int, *, accent: float = 0.0) -> None:
    grid, beats = writer.grid, writer.grid.meter.beats
    pitches = voice(chord, center, voicing)
    strum = 0.008 if program in STRUMMED_PROGRAMS else 0.0

    def chord_at(position: float, length: float, extra: float = 0.0) -> None:
        for k, pitch in enumerate(pitches):
            writer.add(pitch, bar, position, length, delay=k * strum, accent=accent + extra)

    if pattern == "sustain":
        chord_at(0, beats * 0.98)
    elif pattern == "beats":
        for beat in range(beats):
            chord_at(beat, 0.8)
    elif pattern == "eighths":
        step = 1 / grid.meter.division
        for position in grid.eighths():
            chord_at(position, step, 0 if abs(position - round(position)) < 1e-9 else -6)
    elif pattern == "offbeats":
        for position in grid.offbeats():
            chord_at(position, 0.4)
    elif pattern == "comp":
        positions = [1, 3] if beats == 4 else list(range(1, beats))
        if beats == 4 and writer.rng.random() < 0.35:
            positions.append(2.5)
        for position in positions:
            chord_at(position, 0.6)
    elif pattern == "arpeggio":
        figure = pitches + [pitches[0] + 12]
        step = 1 / grid.meter.division
        for k, position in enumerate(grid.eighths()):
            writer.add(figure[k % len(figure)], bar, position, step * 1.6, accent=accent)
    else:
        raise ValueError(f"unknown harmony pattern {pattern!r}")


def lead_rhythm(rng: np.random.Generator, steps: int, intensity: float) -> list[tuple[int, int, bool]]:
    """(start, length, is_rest) in eighths filling one bar: shorter notes as intensity grows."""
    lengths = np.array([1, 2, 3, 4, 6])
    weights = np.array([0.2 + 1.6 * intensity, 1.0, 0.5, 0.9 - 0.6 * intensity, 0.7 - 0.6 * intensity])
    weights = weights / weights.sum()
    out, t = [], 0
    while t < steps:
        length = int(min(rng.choice(lengths, p=weights), steps - t))
        out.append((t, length, t > 0 and rng.random() < 0.12))
        t += length
    return out


def write_lead(writer: PartWriter, rng: np.random.Generator, chords: list[Chord], key: Key, window: tuple[int, int], intensity: float, cadence_bar: int) -> None:
    """A melody: chord tones on the beats, steps of the scale between, the tonic where the cadence lands."""
    grid = writer.grid
    division = grid.meter.division
    low, high = window
    pitch = _nearest(key.tonic, (low + high) / 2, low, high)
    for bar, chord in enumerate(chords):
        scale = [p for p in range(low, high + 1) if p % 12 in key.scale_for(chord)]
        for start, length, rest in lead_rhythm(rng, grid.meter.beats * division, intensity):
            if rest:
                continue
            if bar == cadence_bar and start == 0:
                pitch = _nearest(key.tonic, pitch, low, high)
            elif start == 0 and chord.root == key.tonic:
                # On the tonic chord's downbeat the melody takes its third or root: they name the key.
                pitch = _nearest(chord.pitch_classes[int(rng.choice([0, 1, 1]))], pitch, low, high)
            elif start % division == 0 and rng.random() < 0.8:
                tones = [p for p in range(low, high + 1) if p % 12 in chord.pitch_classes]
                pitch = min(tones, key=lambda p: (abs(p - pitch) + rng.random() * 3, p))
            else:
                index = int(np.argmin([abs(p - pitch) for p in scale]))
                step = int(rng.choice([-2, -1, -1, 1, 1, 2, 3, -3]))
                if pitch > (low + high) / 2 + 4:
                    step = -abs(step)
                elif pitch < (low + high) / 2 - 4:
                    step = abs(step)
                pitch = scale[int(np.clip(index + step, 0, len(scale) - 1))]
            writer.add(pitch, bar, start / division, length / division, accent=4)


def _drum_hits(style: str, grid: Grid, bar: int, intensity: float, rng: np.random.Generator) -> list[tuple[float, int, float]]:
    """(position, General MIDI drum note, accent) of one bar of `style`'s beat."""
    beats = grid.meter.beats
    simple = grid.meter.division == 2
    backbeats = {4: (1, 3), 3: (1, 2), 2: (1,)}[beats]
    kicks = [0, 2] if beats == 4 else [0]
    eighths, offbeats = grid.eighths(), grid.offbeats()
    sixteenths = [p / 4 for p in range(beats * 4)] if simple else eighths
    hits: list[tuple[float, int, float]] = []
    if style in ("rock", "pop"):
        if beats == 4 and intensity > 0.55:
            kicks.append(2.5 if style == "rock" else 1.5)
        hits += [(p, KICK, 8) for p in kicks] + [(p, SNARE, 6) for p in backbeats]
        hats = sixteenths if intensity > 0.75 else eighths
        hits += [(p, CLOSED_HAT, -14) for p in hats if not (bar == 0 and p == 0)]
        if style == "pop" and intensity > 0.6:
            hits += [(p, CLAP, -4) for p in backbeats]
        if bar == 0:
            hits.append((0, CRASH, 0))
    elif style == "electronic":
        hits += [(b, KICK, 10) for b in range(beats)] + [(p, CLAP, 2) for p in backbeats]
        hits += [(p, OPEN_HAT, -10) for p in offbeats]
        if intensity > 0.5:
            hits += [(p, CLOSED_HAT, -18) for p in sixteenths if p not in offbeats]
    elif style == "jazz":
        swung = [b + 0.5 for b in backbeats] if simple else []
        hits += [(b, RIDE, -6) for b in range(beats)] + [(p, RIDE, -12) for p in swung]
        hits += [(p, PEDAL_HAT, -10) for p in backbeats] + [(0, KICK, -12)]
        hits += [(p, SNARE, -28) for p in offbeats if rng.random() < 0.25]
    elif style == "folk":
        hits += [(p, KICK, 4) for p in kicks] + [(p, SIDE_STICK, -2) for p in backbeats]
        hits += [(p, TAMBOURINE, -14) for p in (eighths if intensity > 0.5 else range(beats))]
    elif style == "ambient":
        hits += [(0, KICK, -8)] + [(p, SHAKER, -20) for p in offbeats]
    else:
        raise ValueError(f"no drum pattern for style {style!r}")
    return hits


def write_drums(writer: PartWriter, style: str, bar: int, intensity: float) -> None:
    for position, note, accent in _drum_hits(style, writer.grid, bar, intensity, writer.rng):
        writer.add(note, bar, position, 0.25, accent=accent, exact=note == KICK)
