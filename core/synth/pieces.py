"""Generated pieces: a key, style, meter and tempo in, a MIDI piece and its exact labels out.

    piece = generate_piece(np.random.default_rng(0), KEYS[9 + 12], STYLES["rock"], seconds=10.0)
    piece.midi          # pretty_midi.PrettyMIDI, notes cut at the clip's end
    piece.labels()      # duration, tempo_bpm, beats, downbeats, meter, key, chords, instruments, genre

What is chosen, all from the generator passed in:
- meter from the style's weights (restricted to `meters`), tempo uniform in whole BPM over the
  style's range intersected with `tempo_range` (for 6/8 the range is in dotted quarters: 2/3 of
  the style's);
- intensity in [0, 1] (independent of tempo): the level of the velocities (about 48-110) and how
  busy the patterns are (each role's patterns are ordered sparse -> busy);
- a lead-in of 0-0.5 s of silence before the first downbeat, so beat phase is not a constant;
- a four-bar loop of the style's chord vocabulary, ending with the cadence (harmony.py);
- one General MIDI instrument per role, the harmony's register (-5 to +12 semitones) and the
  lead's window within its instrument's range; a pad and the drums with the style's probability.

Labels come from what is rendered: beats and downbeats from pretty_midi's tempo and time
signature (`get_beats`/`get_downbeats` from the first downbeat), chords one per bar cut at the
clip's end (with "N" over the lead-in), instruments in the order lead, harmony, pad, bass, drums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pretty_midi

from mllm.core.synth.harmony import LOOPS, Key, cadenced_progression
from mllm.core.synth.mix import set_volume
from mllm.core.synth.parts import Grid, PartWriter, tidy, write_bass, write_drums, write_harmony, write_lead
from mllm.core.synth.styles import METERS, Meter, Style

__all__ = ["Piece", "generate_piece", "DEFAULT_METERS", "DEFAULT_TEMPO_RANGE", "choose_meter", "tempo_bounds"]

DEFAULT_METERS = ("4/4", "3/4")
DEFAULT_TEMPO_RANGE = (60, 180)
TIME_DECIMALS = 6


@dataclass
class Piece:
    """A piece cut to one clip, with everything its labels are made of."""

    midi: pretty_midi.PrettyMIDI
    duration: float
    tempo_bpm: float
    meter: Meter
    beats: list[float]
    downbeats: list[float]
    key: str  # mir_eval key string
    mode: str  # "major" / "minor"
    chords: list[list] | None  # [start, end, Harte label]; None when unknown (scores)
    instruments: list[str]
    genre: str
    details: dict = field(default_factory=dict)  # how it was made: goes to the record's `synth`

    def labels(self) -> dict:
        labels = {
            "duration": self.duration,
            "tempo_bpm": self.tempo_bpm,
            "beats": self.beats,
            "downbeats": self.downbeats,
            "meter": self.meter.beats,
            "time_signature": self.meter.signature,
            "key": self.key,
            "instruments": self.instruments,
            "genre": self.genre,
        }
        if self.chords is not None:
            labels["chords"] = self.chords
        return labels


def choose_meter(rng: np.random.Generator, style: Style, meters: tuple[str, ...]) -> Meter:
    """A meter from `meters`, weighted by the style (a meter the style never uses gets weight 0.05)."""
    weights = np.array([style.meter_weights.get(m, 0.05) for m in meters])
    return METERS[meters[int(rng.choice(len(meters), p=weights / weights.sum()))]]


def tempo_bounds(style_range: tuple[int, int], meter: Meter, tempo_range: tuple[int, int]) -> tuple[int, int]:
    """The style's tempo range (2/3 of it in compound meters) within `tempo_range`; `tempo_range` if they do not meet."""
    scale = 2 / 3 if meter.division == 3 else 1.0
    low = max(round(style_range[0] * scale), tempo_range[0])
    high = min(round(style_range[1] * scale), tempo_range[1])
    return (low, high) if low <= high else tempo_range


def _pick(rng: np.random.Generator, options: tuple, intensity: float | None = None):
    """One of `options`: at random, or along the list by intensity (with some noise) when given."""
    if intensity is None:
        return options[int(rng.integers(len(options)))]
    position = float(np.clip(intensity + rng.normal(0.0, 0.15), 0.0, 0.999))
    return options[int(position * len(options))]


def _timed(values: np.ndarray, duration: float) -> list[float]:
    return [round(float(t), TIME_DECIMALS) for t in values if t < duration - 1e-9]


def cut_to_clip(midi: pretty_midi.PrettyMIDI, duration: float) -> None:
    """Drop notes that start at or after `duration` and end the others there (in place)."""
    for instrument in midi.instruments:
        kept = [n for n in instrument.notes if n.start < duration]
        for note in kept:
            note.end = min(note.end, duration)
        instrument.notes = kept


def generate_piece(
    rng: np.random.Generator,
    key: Key,
    style: Style,
    seconds: float,
    *,
    meters: tuple[str, ...] = DEFAULT_METERS,
    tempo_range: tuple[int, int] = DEFAULT_TEMPO_RANGE,
) -> Piece:
    meter = choose_meter(rng, style, meters)
    low, high = tempo_bounds(style.tempo, meter, tempo_range)
    bpm = int(rng.integers(low, high + 1))
    intensity = float(rng.random())
    lead_in = round(float(rng.uniform(0.0, 0.5)), 3)
    grid = Grid(meter, bpm, lead_in, swing=style.swing)

    n_bars = max(1, math.ceil((seconds - lead_in) / grid.bar_seconds))
    # The last bar that is at least half inside the clip carries the final tonic.
    cadence_bar = max(0, min(n_bars - 1, math.floor((seconds - lead_in) / grid.bar_seconds - 0.5)))
    loop = _pick(rng, LOOPS[(style.chords, key.mode)])
    chords = cadenced_progression(key, loop, n_bars, cadence_bar)
    level = 48 + 62 * intensity

    parts: list[tuple[str, pretty_midi.Instrument, str]] = []  # (role, instrument, name)
    details: dict = {"style": style.name, "loop": "-".join(loop), "intensity": round(intensity, 3), "lead_in": lead_in, "swing": style.swing}
    programs, patterns = {}, {}

    def new_part(role: str, program: int, name: str, *, is_drum: bool = False) -> pretty_midi.Instrument:
        instrument = pretty_midi.Instrument(program=program, is_drum=is_drum, name=role)
        parts.append((role, instrument, name))
        programs[role] = program
        return instrument

    # Lead
    if rng.random() < style.lead_probability:
        program, name = _pick(rng, style.lead)
        span = 15
        top = max(style.lead_range[0], style.lead_range[1] - span)
        start = int(round(style.lead_range[0] + rng.random() * (top - style.lead_range[0])))
        writer = PartWriter(rng, grid, level - 4)
        write_lead(writer, rng, chords, key, (start, start + span), intensity, cadence_bar)
        new_part("lead", program, name).notes = writer.notes
        details["lead_window"] = [start, start + span]
    # Harmony
    program, name = _pick(rng, style.harmony)
    pattern = _pick(rng, style.harmony_patterns, intensity)
    shift = int(rng.choice([-5, 0, 0, 7, 12]))
    writer = PartWriter(rng, grid, level)
    for bar, chord in enumerate(chords):
        write_harmony(writer, pattern, bar, chord, style.harmony_center + shift, style.voicing, program)
    new_part("harmony", program, name).notes = writer.notes
    patterns["harmony"], details["harmony_shift"] = pattern, shift
    # Pad
    if style.pad and rng.random() < style.pad_probability:
        program, name = _pick(rng, style.pad)
        writer = PartWriter(rng, grid, level - 18)
        for bar, chord in enumerate(chords):
            write_harmony(writer, "sustain", bar, chord, 66, "close", program)
        new_part("pad", program, name).notes = writer.notes
    # Bass
    program, name = _pick(rng, style.bass)
    pattern = _pick(rng, style.bass_patterns, intensity)
    writer = PartWriter(rng, grid, level)
    for bar, chord in enumerate(chords):
        write_bass(writer, pattern, bar, chord, chords[min(bar + 1, n_bars - 1)])
    new_part("bass", program, name).notes = writer.notes
    patterns["bass"] = pattern
    # Drums
    if style.drum_kits and rng.random() < style.drums_probability:
        kit = int(_pick(rng, style.drum_kits))
        writer = PartWriter(rng, grid, level - 8)
        for bar in range(n_bars):
            write_drums(writer, style.name, bar, intensity)
        new_part("drums", kit, "drums", is_drum=True).notes = writer.notes

    return assemble(
        parts, grid, seconds,
        key=key.name, mode=key.mode, genre=style.name,
        chords=_chord_labels(chords, key, grid, seconds),
        details={**details, "programs": programs, "patterns": patterns, "chord_numerals": [c.numeral for c in chords]},
    )


def assemble(parts, grid: Grid, seconds: float, *, key: str, mode: str, genre: str, chords, details: dict) -> Piece:
    """The MIDI of `parts` cut at `seconds`, with beats and downbeats from pretty_midi."""
    qpm = grid.bpm * (1.5 if grid.meter.division == 3 else 1.0)  # quarter notes per minute
    midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    midi.time_signature_changes = [pretty_midi.TimeSignature(grid.meter.numerator, grid.meter.denominator, 0.0)]
    for _, instrument, _ in parts:
        instrument.notes = tidy(instrument.notes)
        set_volume(instrument)
        midi.instruments.append(instrument)
    cut_to_clip(midi, seconds)
    # A note past the clip keeps the tempo map alive up to the clip's end (get_beats stops at the last event).
    guard = pretty_midi.Instrument(program=0, name="end")
    guard.notes.append(pretty_midi.Note(velocity=1, pitch=0, start=seconds, end=seconds + grid.bar_seconds))
    midi.instruments.append(guard)
    beats = _timed(midi.get_beats(grid.lead_in), seconds)
    downbeats = _timed(midi.get_downbeats(grid.lead_in), seconds)
    midi.instruments.pop()
    names = list(dict.fromkeys(name for _, _, name in parts))
    return Piece(
        midi=midi, duration=seconds, tempo_bpm=float(grid.bpm), meter=grid.meter, beats=beats, downbeats=downbeats,
        key=key, mode=mode, chords=chords, instruments=names, genre=genre, details=details,
    )


def _chord_labels(chords, key: Key, grid: Grid, seconds: float) -> list[list]:
    out: list[list] = []
    if grid.lead_in > 0:
        out.append([0.0, grid.lead_in, "N"])
    for bar, chord in enumerate(chords):
        start = grid.time(bar, 0)
        if start >= seconds:
            break
        end = min(start + grid.bar_seconds, seconds)
        out.append([round(start, TIME_DECIMALS), round(end, TIME_DECIMALS), chord.harte(key)])
    return out
