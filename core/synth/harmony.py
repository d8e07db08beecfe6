"""Keys, chords and chord progressions of generated pieces.

Conventions (the ones mir_eval reads):
- a key is written "A minor", "Eb major": the tonic spelled as in `TONIC_NAMES` (flats for the
  flat-side keys), the mode "major" or "minor";
- a chord is a Harte label "E:maj", "B:hdim7", its root spelled the way its key spells;
- a progression is written in Roman numerals relative to the key ("I-vi-IV-V", "i-iv-V").

Progressions are chosen so that the key is unambiguous: they start on the tonic chord, the bass
plays the roots, the bar before the last full bar is the dominant and the last full bar is the
tonic (an authentic cadence). Minor keys use the harmonic minor's major dominant (V, V7), so the
leading tone is heard; the natural VII is never used.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Key", "Chord", "KEYS", "LOOPS", "SCALE_STEPS", "cadenced_progression", "chord_of"]

MODES = ("major", "minor")
TONIC_NAMES = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# Keys whose signature has flats (F major and D minor included): their chords are spelled with flats.
FLAT_SIDE = {("major", pc) for pc in (1, 3, 5, 8, 10)} | {("minor", pc) for pc in (0, 2, 3, 5, 7, 10)}

# Semitones above the root of each Harte quality used here.
QUALITY_INTERVALS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "hdim7": (0, 3, 6, 10),
}

# Roman numeral -> (semitones from the tonic to the root, Harte quality).
NUMERALS = {
    "major": {
        "I": (0, "maj"), "ii": (2, "min"), "iii": (4, "min"), "IV": (5, "maj"), "V": (7, "maj"), "vi": (9, "min"),
        "Imaj7": (0, "maj7"), "ii7": (2, "min7"), "IVmaj7": (5, "maj7"), "V7": (7, "7"), "vi7": (9, "min7"),
    },
    "minor": {
        "i": (0, "min"), "iio": (2, "dim"), "iv": (5, "min"), "V": (7, "maj"), "VI": (8, "maj"),
        "i7": (0, "min7"), "iiø7": (2, "hdim7"), "iv7": (5, "min7"), "V7": (7, "7"), "VImaj7": (8, "maj7"),
    },
}

# Scale steps in semitones from the tonic. Minor is natural minor; over a dominant chord a melody
# takes the raised 7th (harmonic minor), see `Key.scale_for`.
SCALE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}

# Four-bar loops, each starting on the tonic chord. "triads" for most styles, "sevenths" for jazz.
LOOPS = {
    ("triads", "major"): (
        ("I", "IV", "V", "I"), ("I", "vi", "IV", "V"), ("I", "IV", "I", "V"),
        ("I", "ii", "V", "I"), ("I", "IV", "vi", "V"), ("I", "V", "vi", "IV"),
    ),
    ("triads", "minor"): (
        ("i", "iv", "V", "i"), ("i", "VI", "iv", "V"), ("i", "iv", "i", "V"),
        ("i", "iio", "V", "i"), ("i", "VI", "iio", "V"),
    ),
    ("sevenths", "major"): (
        ("Imaj7", "vi7", "ii7", "V7"), ("Imaj7", "IVmaj7", "ii7", "V7"), ("Imaj7", "ii7", "V7", "Imaj7"),
    ),
    ("sevenths", "minor"): (
        ("i7", "iv7", "iiø7", "V7"), ("i7", "VImaj7", "iiø7", "V7"), ("i7", "iv7", "V7", "i7"),
    ),
}


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, 0 = C
    mode: str  # "major" or "minor"

    @property
    def name(self) -> str:
        """The mir_eval key string: "A minor", "Eb major"."""
        return f"{TONIC_NAMES[self.mode][self.tonic]} {self.mode}"

    def spell(self, pitch_class: int) -> str:
        """A pitch class spelled the way this key spells it (flats on the flat side)."""
        names = FLAT_NAMES if (self.mode, self.tonic) in FLAT_SIDE else SHARP_NAMES
        return names[pitch_class % 12]

    def scale_for(self, chord: Chord) -> tuple[int, ...]:
        """Pitch classes of the scale a melody uses over `chord` (harmonic minor over the dominant)."""
        steps = list(SCALE_STEPS[self.mode])
        if self.mode == "minor" and chord.numeral.startswith("V") and not chord.numeral.startswith("VI"):
            steps[6] = 11
        return tuple((self.tonic + s) % 12 for s in steps)


KEYS = tuple(Key(tonic, mode) for mode in MODES for tonic in range(12))


@dataclass(frozen=True)
class Chord:
    numeral: str  # "V7"
    root: int  # pitch class
    quality: str  # Harte quality: "maj", "min7", ...

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in QUALITY_INTERVALS[self.quality])

    def harte(self, key: Key) -> str:
        return f"{key.spell(self.root)}:{self.quality}"


def chord_of(key: Key, numeral: str) -> Chord:
    offset, quality = NUMERALS[key.mode][numeral]
    return Chord(numeral, (key.tonic + offset) % 12, quality)


def cadenced_progression(key: Key, loop: tuple[str, ...], n_bars: int, last_full_bar: int) -> list[Chord]:
    """One chord per bar: `loop` repeated, then V (or V7) - I ending on bar `last_full_bar`.

    Bars after `last_full_bar` (a bar that the clip cuts short) stay on the tonic. A dominant
    just before the cadence's V becomes the predominant (IV, iv, ii7, iiø7), so V is not held for
    two bars. With fewer than three bars the cadence takes what there is: I, or I-V-I.
    """
    sevenths = loop[0].endswith("7")
    tonic, dominant = loop[0], ("V7" if sevenths else "V")
    predominant = {("major", False): "IV", ("minor", False): "iv", ("major", True): "ii7", ("minor", True): "iiø7"}[(key.mode, sevenths)]
    numerals = [loop[bar % len(loop)] for bar in range(n_bars)]
    for bar in range(last_full_bar, n_bars):
        numerals[bar] = tonic
    if last_full_bar >= 2:
        numerals[last_full_bar - 1] = dominant
        if last_full_bar >= 3 and numerals[last_full_bar - 2].startswith("V") and not numerals[last_full_bar - 2].startswith("VI"):
            numerals[last_full_bar - 2] = predominant  # no V-V before the cadence: the dominant is heard once
    numerals[0] = tonic
    return [chord_of(key, numeral) for numeral in numerals]
