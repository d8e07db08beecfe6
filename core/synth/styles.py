"""The styles of generated pieces: tempo range, meters, General MIDI instruments per role, patterns.

A style is a genre-like tag, not a genre classifier's truth: "rock" here means distorted guitars,
a bass on the roots and a rock beat. Each role (bass, harmony, lead, pad, drums) lists the General
MIDI programs it may take (0-based program numbers, with the name written into the labels) and the
patterns it may play, ordered from sparse to busy; the piece's intensity picks along that order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Style", "STYLES", "STYLE_NAMES", "METERS", "Meter"]


@dataclass(frozen=True)
class Meter:
    """A time signature as the grid sees it: beats per bar, eighth notes per beat."""

    signature: str  # "4/4", "3/4", "6/8"
    beats: int  # beats per bar (the `meter` label): 4, 3, 2 for 6/8
    division: int  # eighths per beat: 2 (simple) or 3 (compound)
    numerator: int
    denominator: int


METERS = {
    "4/4": Meter("4/4", 4, 2, 4, 4),
    "3/4": Meter("3/4", 3, 2, 3, 4),
    "6/8": Meter("6/8", 2, 3, 6, 8),
}

Instrument = tuple[int, str]  # (General MIDI program, 0-based; name in the labels)


@dataclass(frozen=True)
class Style:
    name: str
    tempo: tuple[int, int]  # BPM range (beats as the meter counts them)
    meter_weights: dict[str, float]
    bass: tuple[Instrument, ...]
    bass_patterns: tuple[str, ...]
    harmony: tuple[Instrument, ...]
    harmony_patterns: tuple[str, ...]
    lead: tuple[Instrument, ...]
    lead_probability: float
    drum_kits: tuple[int, ...] = ()  # General MIDI drum kit programs (bank 128) in TimGM6mb
    drums_probability: float = 0.0
    pad: tuple[Instrument, ...] = ()
    pad_probability: float = 0.0
    chords: str = "triads"  # "triads" or "sevenths" (harmony.LOOPS)
    voicing: str = "close"  # "close" or "power" (root, fifth, octave, and the third above)
    swing: bool = False
    harmony_center: int = 60  # MIDI pitch around which the harmony is voiced, before the register shift
    lead_range: tuple[int, int] = (60, 84)  # MIDI pitches the lead's instruments can take


STYLES: dict[str, Style] = {
    "rock": Style(
        "rock", (90, 180), {"4/4": 1.0, "3/4": 0.15, "6/8": 0.35},
        bass=((33, "electric bass"), (34, "electric bass")), bass_patterns=("beats", "eighths"),
        harmony=((30, "distorted guitar"), (29, "overdriven guitar")), harmony_patterns=("beats", "eighths"),
        lead=((29, "overdriven guitar"), (18, "rock organ"), (30, "distorted guitar")), lead_probability=0.8,
        drum_kits=(16, 0, 8), drums_probability=1.0, pad=((18, "rock organ"), (0, "piano")), pad_probability=0.5,
        voicing="power", harmony_center=52, lead_range=(57, 84),
    ),
    "pop": Style(
        "pop", (80, 140), {"4/4": 1.0, "3/4": 0.3, "6/8": 0.2},
        bass=((33, "electric bass"), (38, "synth bass")), bass_patterns=("root_fifth", "beats", "eighths"),
        harmony=((0, "piano"), (4, "electric piano"), (25, "acoustic guitar")),
        harmony_patterns=("sustain", "arpeggio", "beats", "eighths"),
        lead=((80, "synth lead"), (66, "saxophone"), (11, "vibraphone"), (53, "voice")), lead_probability=0.8,
        drum_kits=(0, 8), drums_probability=0.9, pad=((48, "strings"), (89, "synth pad")), pad_probability=0.4,
        lead_range=(62, 86),
    ),
    "jazz": Style(
        "jazz", (70, 180), {"4/4": 1.0, "3/4": 0.35},
        bass=((32, "double bass"),), bass_patterns=("root_fifth", "walking"),
        harmony=((0, "piano"), (26, "jazz guitar"), (4, "electric piano")), harmony_patterns=("sustain", "comp", "beats"),
        lead=((66, "tenor saxophone"), (56, "trumpet"), (11, "vibraphone"), (71, "clarinet")), lead_probability=0.85,
        drum_kits=(32, 40), drums_probability=0.95, chords="sevenths", swing=True, harmony_center=58, lead_range=(55, 82),
    ),
    "electronic": Style(
        "electronic", (110, 150), {"4/4": 1.0, "3/4": 0.1},
        bass=((38, "synth bass"), (39, "synth bass")), bass_patterns=("beats", "offbeat_octaves", "eighths"),
        harmony=((90, "synth pad"), (62, "synth brass"), (51, "synth strings")), harmony_patterns=("sustain", "offbeats", "arpeggio"),
        lead=((80, "square lead"), (81, "saw lead"), (98, "synth bells")), lead_probability=0.7,
        drum_kits=(24, 25), drums_probability=1.0, lead_range=(64, 88),
    ),
    "folk": Style(
        "folk", (70, 140), {"4/4": 1.0, "3/4": 0.6, "6/8": 0.5},
        bass=((32, "double bass"), (33, "electric bass")), bass_patterns=("whole", "root_fifth"),
        harmony=((25, "acoustic guitar"), (24, "nylon guitar"), (105, "banjo"), (21, "accordion")),
        harmony_patterns=("arpeggio", "beats", "eighths"),
        lead=((40, "fiddle"), (73, "flute"), (22, "harmonica"), (71, "clarinet")), lead_probability=0.8,
        drum_kits=(8, 40), drums_probability=0.6, lead_range=(62, 88),
    ),
    "classical": Style(
        "classical", (60, 150), {"4/4": 1.0, "3/4": 0.7, "6/8": 0.4},
        bass=((42, "cello"), (43, "double bass")), bass_patterns=("whole", "root_fifth", "beats"),
        harmony=((48, "strings"), (0, "piano"), (6, "harpsichord"), (46, "harp")), harmony_patterns=("sustain", "arpeggio", "beats"),
        lead=((40, "violin"), (73, "flute"), (68, "oboe"), (60, "french horn"), (71, "clarinet")), lead_probability=0.9,
        lead_range=(60, 88),
    ),
    "ambient": Style(
        "ambient", (60, 100), {"4/4": 1.0, "3/4": 0.5, "6/8": 0.3},
        bass=((89, "warm pad"), (38, "synth bass"), (32, "double bass")), bass_patterns=("whole",),
        harmony=((88, "new age pad"), (89, "warm pad"), (94, "halo pad"), (52, "choir")), harmony_patterns=("sustain",),
        lead=((10, "music box"), (8, "celesta"), (46, "harp"), (11, "vibraphone"), (98, "synth bells")), lead_probability=0.9,
        drum_kits=(24, 0), drums_probability=0.35, lead_range=(67, 96),
    ),
}
STYLE_NAMES = tuple(STYLES)
