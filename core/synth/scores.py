"""Real scores: Bach chorales of the music21 corpus, rendered the way generated pieces are.

    names = chorale_names()                          # ["bach/bwv1.6", "bach/bwv10.7", ...]
    piece = score_piece(np.random.default_rng(0), "bach/bwv66.6", seconds=10.0)

What comes from the score and what from the rendering:
- key: the key the score declares (the first `music21.key.Key` of its key signatures, which
  carries a mode: 407 of the 408 chorales have one). Only a score without one, or with a mode
  other than major/minor, falls back to `score.analyze('key')` (Krumhansl-Schmuckler).
  `synth.key_source` says which ("declared"/"analysis"); `synth.key_analysis` is music21's
  analysis of the excerpt itself, for those who want to drop clips where the two differ.
- meter: the first time signature's beat count; beats and downbeats from the measures' time
  signatures at the rendered tempo, so a pickup bar starts mid-bar (its first beat is not a
  downbeat) and a later time signature change is followed.
- tempo: chosen by the seed (60-100 BPM, within --tempo-range), constant: fermatas are not held.
- instruments: one ensemble drawn by the seed (string quartet, organ, brass, woodwinds, choir,
  piano), parts given top to bottom; dynamics: one level drawn by the seed with small accents.
- chords: not labelled (a chorale's harmony has no single ground truth at this level).
The score is cropped to `seconds` from its start; a score shorter than that gives a shorter clip.
Repeats are not expanded.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pretty_midi

from mllm.core.synth.harmony import TONIC_NAMES
from mllm.core.synth.mix import set_volume
from mllm.core.synth.parts import tidy
from mllm.core.synth.pieces import TIME_DECIMALS, Piece, cut_to_clip
from mllm.core.synth.styles import METERS, Meter

__all__ = ["chorale_names", "score_piece", "ENSEMBLES", "SCORE_TEMPO"]

SCORE_TEMPO = (60, 100)
ENSEMBLES = {
    # name: programs and instrument names, top voice first
    "a string quartet": ((40, "violin"), (40, "violin"), (41, "viola"), (42, "cello")),
    "a church organ": ((19, "church organ"),) * 4,
    "a brass quartet": ((56, "trumpet"), (60, "french horn"), (57, "trombone"), (58, "tuba")),
    "a woodwind quartet": ((73, "flute"), (68, "oboe"), (71, "clarinet"), (70, "bassoon")),
    "a choir": ((52, "choir"),) * 4,
    "a piano": ((0, "piano"),) * 4,
}


@lru_cache(maxsize=1)
def chorale_names() -> tuple[str, ...]:
    """The Bach chorales of the music21 corpus ("bach/bwv66.6"), sorted: the pool scores are drawn from."""
    from music21 import corpus

    names = set()
    for path in corpus.getComposer("bach"):
        path = str(path).replace("\\", "/")
        match = re.search(r"(bach/bwv[^/]*)\.mxl$", path)
        if match:
            names.add(match.group(1))
    return tuple(sorted(names, key=_natural))


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _title(name: str) -> str:
    number = name.split("/bwv", 1)[-1]
    return f"a Bach chorale (BWV {number})"


def _key_name(tonic_pitch_class: int, mode: str) -> str:
    return f"{TONIC_NAMES[mode][tonic_pitch_class % 12]} {mode}"


def declared_key(score) -> tuple[str, str]:
    """(key, source): the score's declared key, or music21's analysis when it declares none."""
    from music21 import key as m21key

    for signature in score.recurse().getElementsByClass(m21key.KeySignature):
        if isinstance(signature, m21key.Key) and signature.mode in ("major", "minor"):
            return _key_name(signature.tonic.pitchClass, signature.mode), "declared"
        break
    analysed = score.analyze("key")
    mode = analysed.mode if analysed.mode in ("major", "minor") else "major"
    return _key_name(analysed.tonic.pitchClass, mode), "analysis"


def _meter(time_signature) -> Meter:
    return METERS.get(time_signature.ratioString) or Meter(
        time_signature.ratioString, int(time_signature.beatCount), 3 if time_signature.beatDivisionCount == 3 else 2,
        time_signature.numerator, time_signature.denominator,
    )


def metrical_grid(score, seconds_per_quarter: float, lead_in: float, end: float) -> tuple[list[float], list[float], Meter]:
    """Beats and downbeats (seconds) from the first part's measures, and the first meter."""
    beats, downbeats, first, current = [], [], None, None
    for measure in score.parts[0].getElementsByClass("Measure"):
        if measure.timeSignature is not None:
            current = measure.timeSignature
        if current is None:
            continue
        first = first or current
        bar = current.barDuration.quarterLength
        beat = current.beatDuration.quarterLength
        length = measure.duration.quarterLength
        padding = measure.paddingLeft or (bar - length if measure.number == 0 and 0 < length < bar else 0.0)
        position = 0.0
        while position < bar - 1e-9:
            offset = position - padding
            if 0 <= offset < length - 1e-9:
                time = lead_in + float(measure.offset + offset) * seconds_per_quarter
                if time < end - 1e-9:
                    beats.append(round(time, TIME_DECIMALS))
                    if position == 0:
                        downbeats.append(round(time, TIME_DECIMALS))
            position += beat
    if first is None:
        raise ValueError("the score has no time signature")
    return beats, downbeats, _meter(first)


def score_piece(
    rng: np.random.Generator,
    name: str,
    seconds: float,
    *,
    tempo_range: tuple[int, int] = (60, 180),
) -> Piece:
    from music21 import corpus

    score = corpus.parse(name)
    key, key_source = declared_key(score)
    low, high = max(SCORE_TEMPO[0], tempo_range[0]), min(SCORE_TEMPO[1], tempo_range[1])
    if low > high:
        low, high = tempo_range
    bpm = int(rng.integers(low, high + 1))
    lead_in = round(float(rng.uniform(0.0, 0.5)), 3)
    ensemble_name = list(ENSEMBLES)[int(rng.integers(len(ENSEMBLES)))]
    ensemble = ENSEMBLES[ensemble_name]
    level = float(rng.uniform(55, 100))

    first_signature = next(iter(score.recurse().getElementsByClass("TimeSignature")), None)
    beat_quarters = float(first_signature.beatDuration.quarterLength) if first_signature is not None else 1.0
    seconds_per_quarter = 60.0 / (bpm * beat_quarters)
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm * beat_quarters)
    parts = [p for p in score.parts if p.flatten().notes]
    names = []
    for index, part in enumerate(parts):
        voice = round(index * (len(ensemble) - 1) / max(1, len(parts) - 1))
        program, instrument_name = ensemble[voice]
        instrument = pretty_midi.Instrument(program=program, name=part.partName or f"part {index + 1}")
        for note in part.flatten().stripTies().notes:
            start = lead_in + float(note.offset) * seconds_per_quarter
            length = float(note.quarterLength) * seconds_per_quarter
            if length <= 0 or start >= seconds:
                continue
            accent = 6 if float(note.offset) % beat_quarters == 0 else 0
            for pitch in note.pitches:
                velocity = int(np.clip(round(level + accent + rng.normal(0.0, 3.0)), 20, 127))
                instrument.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch.midi, start=start, end=start + length * 0.97))
        instrument.notes = tidy(instrument.notes)
        set_volume(instrument)
        midi.instruments.append(instrument)
        names.append(instrument_name)

    last_end = max((n.end for i in midi.instruments for n in i.notes), default=0.0)
    duration = min(seconds, round(last_end + 0.5, 3))
    cut_to_clip(midi, duration)
    beats, downbeats, meter = metrical_grid(score, seconds_per_quarter, lead_in, duration)
    midi.time_signature_changes = [pretty_midi.TimeSignature(meter.numerator, meter.denominator, 0.0)]
    mode = key.split()[1]
    return Piece(
        midi=midi, duration=duration, tempo_bpm=float(bpm), meter=meter, beats=beats, downbeats=downbeats,
        key=key, mode=mode, chords=None, instruments=list(dict.fromkeys(names)), genre="classical",
        details={
            "title": _title(name), "ensemble": ensemble_name, "key_source": key_source,
            "key_analysis": _excerpt_key(score, duration, lead_in, seconds_per_quarter),
            "lead_in": lead_in, "level": round(level, 1), "programs": [i.program for i in midi.instruments],
        },
    )


def _excerpt_key(score, duration: float, lead_in: float, seconds_per_quarter: float) -> str | None:
    """music21's key analysis of the notes inside the clip (for checking the declared key)."""
    from music21 import stream

    end_quarters = (duration - lead_in) / seconds_per_quarter
    excerpt = stream.Stream()
    for note in score.flatten().notes:
        if float(note.offset) < end_quarters:
            excerpt.insert(note.offset, note)
    if not excerpt.notes:
        return None
    try:
        analysed = excerpt.analyze("key")
    except Exception:  # noqa: BLE001 - an analysis that fails leaves the field empty
        return None
    mode = analysed.mode if analysed.mode in ("major", "minor") else "major"
    return _key_name(analysed.tonic.pitchClass, mode)
