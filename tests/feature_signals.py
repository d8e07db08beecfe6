"""Synthetic test audio with known answers: click tracks and chord progressions (numpy only).

The answers come from how the signal is built (beat times, the chords written), never from the
analysis under test.
"""

from __future__ import annotations

import numpy as np

SR = 22050
PITCH_CLASSES = {"C": 0, "C#": 1, "D": 2, "Eb": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "Ab": 8, "A": 9, "Bb": 10, "B": 11}


def click_track(bpm: float, meter: int, seconds: float, *, offset: float = 0.3, sr: int = SR, seed: int = 0):
    """Clicks on every beat, the first of each bar a louder low thump (a bass drum) plus a click.

    Returns (samples, beat times, downbeat times).
    """
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    beats = np.arange(offset, seconds - 0.1, period)
    out = np.zeros(int(seconds * sr), dtype=np.float64)
    click_len = int(0.03 * sr)
    click = rng.standard_normal(click_len) * np.exp(-np.arange(click_len) / (0.004 * sr))
    thump_len = int(0.12 * sr)
    t = np.arange(thump_len) / sr
    thump = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.05)
    for i, beat in enumerate(beats):
        start = int(round(beat * sr))
        downbeat = i % meter == 0
        piece = 0.3 * click
        out[start : start + click_len] += piece[: max(0, min(click_len, out.size - start))]
        if downbeat:
            out[start : start + thump_len] += 0.9 * thump[: max(0, min(thump_len, out.size - start))]
    return out.astype(np.float32), beats, beats[::meter]


def tone(midi_note: int, seconds: float, *, sr: int = SR, harmonics: int = 6, cents: float = 0.0) -> np.ndarray:
    """A note with `harmonics` partials of amplitude 1/k and a short fade in and out, tuned
    `cents` off A4 = 440 Hz."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi_note - 69) / 12 + cents / 1200)
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1) if k * f0 < sr / 2)
    fade = min(int(0.01 * sr), t.size // 2)
    envelope = np.ones(t.size)
    if fade:
        envelope[:fade] = np.linspace(0, 1, fade)
        envelope[-fade:] = np.linspace(1, 0, fade)
    return wave * envelope


def triad(root: str, quality: str, seconds: float, *, sr: int = SR, cents: float = 0.0) -> np.ndarray:
    """Bass note (octave 3) and a close triad (octave 4) of `root` ("F#") and quality maj/min."""
    pc = PITCH_CLASSES[root]
    third = 4 if quality == "maj" else 3
    notes = [48 + pc, 60 + pc, 60 + pc + third, 60 + pc + 7]
    return sum(tone(n, seconds, sr=sr, cents=cents) for n in notes) / len(notes)


def progression(chords: list[tuple[str, str]], seconds_per_chord: float, *, sr: int = SR, cents: float = 0.0):
    """Samples of the chords one after the other (every note `cents` off A440), and the
    reference [[start, end, "C:maj"], ...]."""
    parts, reference = [], []
    for i, (root, quality) in enumerate(chords):
        parts.append(triad(root, quality, seconds_per_chord, sr=sr, cents=cents))
        reference.append([i * seconds_per_chord, (i + 1) * seconds_per_chord, f"{root}:{quality}"])
    samples = np.concatenate(parts)
    return (0.5 * samples / np.max(np.abs(samples))).astype(np.float32), reference


def transpose(chords: list[tuple[str, str]], semitones: int) -> list[tuple[str, str]]:
    names = list(PITCH_CLASSES)
    return [(names[(PITCH_CLASSES[root] + semitones) % 12], quality) for root, quality in chords]


# I-IV-V-I and i-iv-V-i, clear cadences in C major and A minor; natural-minor (Aeolian)
# progressions in A minor, whose notes are all C major's.
MAJOR_CADENCE = [("C", "maj"), ("F", "maj"), ("G", "maj"), ("C", "maj")] * 2
MINOR_CADENCE = [("A", "min"), ("D", "min"), ("E", "maj"), ("A", "min")] * 2
NATURAL_MINOR = {
    "i-iv-v-i": [("A", "min"), ("D", "min"), ("E", "min"), ("A", "min")] * 2,
    "i-v-iv-i": [("A", "min"), ("E", "min"), ("D", "min"), ("A", "min")] * 2,
    "i-III-iv-i": [("A", "min"), ("C", "maj"), ("D", "min"), ("A", "min")] * 2,
}
# Drum loops (positions in beats within a 4/4 bar): a 3+3+2 pattern (kick on 1 and the "and"
# of 2, snare on 4, eighth-note hats), whose onsets repeat every 1.5 beats, and a swung one.
DOTTED_3_3_2 = {"kick": [0, 1.5], "snare": [3], "hat": [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]}
SWUNG_RIDE = {"hat": [0, 1, 1 + 2 / 3, 2, 3, 3 + 2 / 3], "kick": [0, 2 + 2 / 3]}


def crash_on_request(record: dict) -> dict:
    """A pool task for tests: the worker process dies (no Python exception) on records asking for it."""
    import os

    if record.get("crash"):
        os._exit(3)
    return {**record, "done": True}


def drum_pattern(bpm: float, bars: int, hits: dict[str, list[float]], *, beats_per_bar: int = 4, offset: float = 0.25,
                 sr: int = SR, seed: int = 0):
    """A drum loop: `hits` maps "kick", "snare" and "hat" to onset positions in beats within a bar
    (e.g. {"kick": [0, 1.5, 3]}), repeated for `bars` bars at `bpm`. Returns (samples, beat times).

    The kick is a decaying 55 Hz sine, the snare a 200 Hz tone with noise, the hat a short
    high-passed noise burst (quieter): a dotted or swung pattern is written as its positions,
    e.g. swung eighths at 0 and 2/3 of each beat.
    """
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    seconds = offset + bars * beats_per_bar * period + 0.5
    out = np.zeros(int(seconds * sr))
    t = np.arange(int(0.25 * sr)) / sr
    noise = rng.standard_normal(t.size)
    sounds = {
        "kick": 0.9 * np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.08),
        "snare": (0.4 * np.sin(2 * np.pi * 200 * t) + 0.5 * noise) * np.exp(-t / 0.05),
        "hat": 0.15 * np.diff(noise, prepend=0.0) * np.exp(-t / 0.01),
    }
    for bar in range(bars):
        for name, positions in hits.items():
            for position in positions:
                start = int(round((offset + (bar * beats_per_bar + position) * period) * sr))
                piece = sounds[name][: max(0, out.size - start)]
                out[start : start + piece.size] += piece
    beats = offset + np.arange(bars * beats_per_bar) * period
    return (0.5 * out / np.max(np.abs(out))).astype(np.float32), beats
