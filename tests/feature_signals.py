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


def tone(midi_note: int, seconds: float, *, sr: int = SR, harmonics: int = 6) -> np.ndarray:
    """A note with `harmonics` partials of amplitude 1/k and a short fade in and out."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi_note - 69) / 12)
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1) if k * f0 < sr / 2)
    fade = min(int(0.01 * sr), t.size // 2)
    envelope = np.ones(t.size)
    if fade:
        envelope[:fade] = np.linspace(0, 1, fade)
        envelope[-fade:] = np.linspace(1, 0, fade)
    return wave * envelope


def triad(root: str, quality: str, seconds: float, *, sr: int = SR) -> np.ndarray:
    """Bass note (octave 3) and a close triad (octave 4) of `root` ("F#") and quality maj/min."""
    pc = PITCH_CLASSES[root]
    third = 4 if quality == "maj" else 3
    notes = [48 + pc, 60 + pc, 60 + pc + third, 60 + pc + 7]
    return sum(tone(n, seconds, sr=sr) for n in notes) / len(notes)


def progression(chords: list[tuple[str, str]], seconds_per_chord: float, *, sr: int = SR):
    """Samples of the chords one after the other, and the reference [[start, end, "C:maj"], ...]."""
    parts, reference = [], []
    for i, (root, quality) in enumerate(chords):
        parts.append(triad(root, quality, seconds_per_chord, sr=sr))
        reference.append([i * seconds_per_chord, (i + 1) * seconds_per_chord, f"{root}:{quality}"])
    samples = np.concatenate(parts)
    return (0.5 * samples / np.max(np.abs(samples))).astype(np.float32), reference


def transpose(chords: list[tuple[str, str]], semitones: int) -> list[tuple[str, str]]:
    names = list(PITCH_CLASSES)
    return [(names[(PITCH_CLASSES[root] + semitones) % 12], quality) for root, quality in chords]


# I-IV-V-I and i-iv-V-i, clear cadences in C major and A minor.
MAJOR_CADENCE = [("C", "maj"), ("F", "maj"), ("G", "maj"), ("C", "maj")] * 2
MINOR_CADENCE = [("A", "min"), ("D", "min"), ("E", "maj"), ("A", "min")] * 2


def crash_on_request(record: dict) -> dict:
    """A pool task for tests: the worker process dies (no Python exception) on records asking for it."""
    import os

    if record.get("crash"):
        os._exit(3)
    return {**record, "done": True}
