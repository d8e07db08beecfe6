"""core.synth: labels agree with the MIDI and the audio, keys are established, attributes follow
their documented rule, the corpus plan is balanced and reproducible, scores render, errors are clear."""

from __future__ import annotations

import math

import librosa
import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile

from mllm.core.synth import attributes, mix, render as render_module
from mllm.core.synth.corpus import SynthOptions, make_clip, plan_corpus
from mllm.core.synth.harmony import KEYS, LOOPS, Key, cadenced_progression
from mllm.core.synth.pieces import generate_piece
from mllm.core.synth.render import RenderError, choose_renderer, render
from mllm.core.synth.scores import ENSEMBLES, declared_key, score_piece
from mllm.core.synth.styles import METERS, STYLE_NAMES, STYLES

SR = 22050


def piece_of(style: str, seed: int = 0, key: Key = KEYS[9 + 12], seconds: float = 10.0, meters=("4/4", "3/4")):
    return generate_piece(np.random.default_rng(seed), key, STYLES[style], seconds, meters=meters)


def chord_at(chords, time):
    return next(label for start, end, label in chords if start <= time < end)


# --- harmony -------------------------------------------------------------------------------------


def test_the_24_keys_are_distinct_mir_eval_keys():
    names = [k.name for k in KEYS]
    assert len(set(names)) == 24
    for name in names:
        mir_eval.key.validate_key(name)
    assert {mir_eval.key.split_key_string(n)[0] for n in names} == set(range(12))


@pytest.mark.parametrize("key", [Key(0, "major"), Key(9, "minor"), Key(3, "minor"), Key(6, "major")], ids=str)
def test_every_progression_starts_and_cadences_on_the_tonic(key):
    for kind in ("triads", "sevenths"):
        for loop in LOOPS[(kind, key.mode)]:
            for n_bars, cadence in ((2, 1), (3, 2), (5, 4), (8, 7), (9, 7)):
                chords = cadenced_progression(key, loop, n_bars, cadence)
                assert len(chords) == n_bars
                assert chords[0].root == key.tonic and chords[cadence].root == key.tonic
                assert all(c.root == key.tonic for c in chords[cadence:])
                if cadence >= 2:
                    dominant = chords[cadence - 1]
                    assert dominant.root == (key.tonic + 7) % 12
                    # harmonic minor: the dominant carries the leading tone in both modes
                    assert (key.tonic + 11) % 12 in dominant.pitch_classes
                if cadence >= 3:
                    assert chords[cadence - 2].root != dominant.root  # the dominant is not held for two bars


def test_chord_labels_are_valid_harte():
    for key in KEYS:
        for kind in ("triads", "sevenths"):
            for loop in LOOPS[(kind, key.mode)]:
                for chord in cadenced_progression(key, loop, 6, 5):
                    root, bitmap, _ = mir_eval.chord.encode(chord.harte(key))
                    assert root == chord.root
                    assert set(np.flatnonzero(bitmap)) == {(pc - chord.root) % 12 for pc in chord.pitch_classes}


# --- generated pieces: labels against the MIDI ----------------------------------------------------


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_generated_labels_agree_with_the_notes(style):
    piece = piece_of(style, seed=STYLE_NAMES.index(style))
    beat = 60.0 / piece.tempo_bpm
    beats, downbeats = np.array(piece.beats), np.array(piece.downbeats)
    lead_in = piece.details["lead_in"]
    assert 0 <= lead_in < 0.5 and beats[0] == pytest.approx(lead_in)
    assert np.allclose(np.diff(beats), beat, atol=1e-5)
    assert beats[-1] < piece.duration <= beats[-1] + beat + 1e-6  # every beat of the clip, none past it
    assert np.allclose(np.diff(downbeats), beat * piece.meter.beats, atol=1e-5)
    assert set(np.round(downbeats, 5)) <= set(np.round(beats, 5)) and downbeats[0] == beats[0]
    notes = [(n, i) for i in piece.midi.instruments for n in i.notes]
    assert notes and all(n.start < piece.duration and n.end <= piece.duration + 1e-9 for n, _ in notes)

    # Chords tile the clip; the bass plays each chord's root on its downbeat.
    chords = piece.chords
    assert chords[0][0] == 0.0 and chords[-1][1] == pytest.approx(piece.duration)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(chords, chords[1:]))
    bass = next(i for i in piece.midi.instruments if i.name == "bass")
    for time in downbeats:
        root = mir_eval.chord.encode(chord_at(chords, time))[0]
        onsets = [n.pitch % 12 for n in bass.notes if abs(n.start - time) < 0.011]
        assert root in onsets, (time, chord_at(chords, time))
    drums = [i for i in piece.midi.instruments if i.is_drum]
    if drums:  # the kick marks every downbeat, on the grid
        for time in downbeats:
            assert any(n.pitch == 36 and abs(n.start - time) < 1e-6 for n in drums[0].notes)

    # The key is established: first and last chords are tonic chords of the labelled key.
    tonic, mode = piece.key.split()
    tonic_pc = mir_eval.key.split_key_string(piece.key)[0]
    harmonic = [c for c in chords if c[2] != "N"]
    for label in (harmonic[0][2], harmonic[-1][2]):
        root, bitmap, _ = mir_eval.chord.encode(label)
        assert root == tonic_pc and bitmap[3 if mode == "minor" else 4] == 1
    assert piece.genre == style and piece.instruments and len(set(piece.instruments)) == len(piece.instruments)


def test_meters_and_tempo_range_are_respected():
    for seed in range(12):
        piece = generate_piece(np.random.default_rng(seed), KEYS[seed], STYLES["folk"], 6.0, meters=("6/8",), tempo_range=(70, 90))
        assert piece.meter == METERS["6/8"] and piece.meter.beats == 2
        assert 70 <= piece.tempo_bpm <= 90
        # in 6/8 the beat is a dotted quarter: three eighths of the MIDI tempo
        qpm = piece.midi.get_tempo_changes()[1][0]
        assert qpm == pytest.approx(piece.tempo_bpm * 1.5)


def test_every_instrument_sounds_over_the_range_it_is_given():
    """TimGM6mb has holes (its alto sax is silent at E4): every program in use must sound where it plays."""
    ranges: dict[int, set[int]] = {}
    for style in STYLES.values():
        for program, _ in style.bass:
            ranges.setdefault(program, set()).update(range(33, 53, 2))
        for program, _ in style.harmony + style.pad:
            ranges.setdefault(program, set()).update(range(43, 92, 3))
        for program, _ in style.lead:
            ranges.setdefault(program, set()).update(range(style.lead_range[0], style.lead_range[1] + 1))
    for ensemble in ENSEMBLES.values():
        for program, _ in ensemble:
            ranges.setdefault(program, set()).update(range(36, 84, 3))
    silent = []
    for program, pitches in sorted(ranges.items()):
        midi = pretty_midi.PrettyMIDI()
        instrument = pretty_midi.Instrument(program=program)
        instrument.notes = [pretty_midi.Note(100, p, 0.25 * k, 0.25 * k + 0.2) for k, p in enumerate(sorted(pitches))]
        midi.instruments.append(instrument)
        audio, _ = render(midi, 0.25 * len(pitches), 8000)
        for k, pitch in enumerate(sorted(pitches)):
            frame = audio[int(0.25 * k * 8000): int((0.25 * k + 0.2) * 8000)]
            if np.sqrt(np.mean(frame**2)) < 1e-3:
                silent.append((program, pitch))
    assert not silent


# --- rendering: audio against the labels ----------------------------------------------------------


def test_rendered_audio_has_the_labelled_length_and_is_not_silent():
    piece = piece_of("classical", seed=3, seconds=4.0)
    audio, gain = render(piece.midi, piece.duration, 16000)
    assert audio.dtype == np.float32 and audio.shape == (64000,)
    assert np.sqrt(np.mean(audio**2)) > 0.01 and np.abs(audio).max() <= 0.99 + 1e-6 and 0 < gain <= 1.0
    assert audio[-1] == 0.0  # faded out, no click


@pytest.mark.parametrize("style, seed", [("rock", 1), ("electronic", 2), ("pop", 5)])
def test_onsets_fall_on_the_labelled_beats(style, seed):
    piece = piece_of(style, seed=seed)
    audio, _ = render(piece.midi, piece.duration, SR)
    hop = 256
    envelope = librosa.onset.onset_strength(y=audio, sr=SR, hop_length=hop)

    def strength(times):
        """Mean of the envelope's maximum in the 35 ms after each time (an attack peaks a little late)."""
        first = librosa.time_to_frames(np.asarray(times), sr=SR, hop_length=hop)
        return np.mean([envelope[f: f + 4].max() for f in first if f + 4 <= len(envelope)])

    beats, downbeats, beat = np.array(piece.beats), np.array(piece.downbeats), 60 / piece.tempo_bpm
    # Off the labelled grid by half a beat (the offbeat eighths) or 3/8 (between sixteenths and eighths)
    assert strength(beats) > 1.5 * strength(beats + 0.5 * beat)
    assert strength(beats) > 1.5 * strength(beats + 0.375 * beat)
    assert strength(downbeats) > 1.1 * strength(np.setdiff1d(beats, downbeats))  # the downbeat is accented
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=SR, hop_length=hop))[0])
    assert min(abs(tempo * f - piece.tempo_bpm) / piece.tempo_bpm for f in (0.5, 1, 2)) < 0.05


def test_velocity_reaches_the_audio_as_loudness():
    piece = piece_of("pop", seed=4, seconds=4.0)
    levels = []
    for velocity in (50, 100):
        for instrument in piece.midi.instruments:
            for note in instrument.notes:
                note.velocity = velocity
        audio, gain = render(piece.midi, 4.0, SR)
        levels.append(20 * np.log10(np.sqrt(np.mean(audio**2))))
        assert gain == 1.0
    assert levels[1] - levels[0] > 4.0  # the synthesiser's gain follows 20 log10(velocity): about 6 dB


def test_the_mix_table_matches_the_soundfont():
    """LEVEL_DB was measured on TimGM6mb: a few programs measured again agree with it."""
    for program in (0, 33, 48, 60, 89):
        assert mix.measure_level(program) == pytest.approx(mix.LEVEL_DB[program], abs=0.5)
    used = {p for s in STYLES.values() for role in (s.bass, s.harmony, s.lead, s.pad) for p, _ in role}
    used |= {p for e in ENSEMBLES.values() for p, _ in e}
    assert used <= set(mix.LEVEL_DB)
    piece = piece_of("rock")
    assert all(c.number == 7 and c.time == 0 for i in piece.midi.instruments for c in i.control_changes)
    loud = max(mix.LEVEL_DB, key=mix.LEVEL_DB.get)
    assert mix.volume(loud) < 127 and mix.volume(0) == 127 and mix.volume(36, is_drum=True) == 127


def test_no_synthesiser_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(render_module, "_has_tinysoundfont", lambda: False)
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    with pytest.raises(RenderError, match=r"pip install --no-deps tinysoundfont"):
        choose_renderer("auto")
    with pytest.raises(RenderError, match="fluidsynth"):
        choose_renderer("fluidsynth")
    with pytest.raises(RenderError, match="unknown renderer"):
        choose_renderer("timidity")


def test_a_missing_or_broken_soundfont_is_a_clear_error(tmp_path):
    piece = piece_of("pop", seconds=2.0)
    with pytest.raises(RenderError, match="soundfont not found"):
        render(piece.midi, 2.0, SR, soundfont=str(tmp_path / "none.sf2"))
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"not a soundfont")
    with pytest.raises(RenderError, match="cannot load soundfont"):
        render(piece.midi, 2.0, SR, soundfont=str(broken))


@pytest.mark.skipif(render_module.shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")
def test_fluidsynth_renders_the_same_length():
    piece = piece_of("rock", seconds=3.0)
    audio, _ = render(piece.midi, 3.0, SR, renderer="fluidsynth")
    assert audio.shape == (3 * SR,) and np.sqrt(np.mean(audio**2)) > 0.01


# --- attributes -----------------------------------------------------------------------------------


def test_attributes_follow_the_documented_formula():
    stats = attributes.NoteStatistics(density=8.0, velocity=75.0, pitch=61.0, drums=True)
    # t = 0.5, d = log2(4)/log2(12), v = 0.5, drums = 1; r = 0.5, major = 1
    expected_energy = 1 + 8 * (0.30 * 0.5 + 0.30 * 2 / math.log2(12) + 0.25 * 0.5 + 0.15)
    assert attributes.energy(120, stats) == round(expected_energy, 1)
    assert attributes.brightness("major", stats) == round(1 + 8 * (0.55 * 0.5 + 0.30 + 0.15 * 0.5), 1)
    assert attributes.brightness("minor", stats) == round(1 + 8 * (0.55 * 0.5 + 0.15 * 0.5), 1)
    silent = attributes.NoteStatistics(density=0.0, velocity=0.0, pitch=0.0, drums=False)
    assert attributes.energy(40, silent) == 1.0 and attributes.brightness("minor", silent) == 1.0
    loud = attributes.NoteStatistics(density=100.0, velocity=127.0, pitch=100.0, drums=True)
    assert attributes.energy(250, loud) == 9.0 and attributes.brightness("major", loud) == 9.0


def test_attributes_spread_over_the_scale_and_are_not_a_copy_of_one_label():
    energy, brightness, tempo, major = [], [], [], []
    for index, plan in enumerate(plan_corpus(70, SynthOptions(seed=11))):
        piece = generate_piece(np.random.default_rng([11, index]), plan.key, STYLES[plan.style], 10.0)
        stats = attributes.note_statistics(piece.midi, piece.duration)
        energy.append(attributes.energy(piece.tempo_bpm, stats))
        brightness.append(attributes.brightness(piece.mode, stats))
        tempo.append(piece.tempo_bpm)
        major.append(piece.mode == "major")
    for values in (energy, brightness):
        values = np.array(values)
        assert values.min() >= 1 and values.max() <= 9
        assert values.max() - values.min() > 5 and values.std() > 1.0
    assert 0.3 < np.corrcoef(energy, tempo)[0, 1] < 0.95
    assert 0.3 < np.corrcoef(brightness, major)[0, 1] < 0.95


# --- the corpus plan ------------------------------------------------------------------------------


def test_keys_and_styles_are_balanced_and_a_prefix_is_stable():
    plans = list(plan_corpus(48, SynthOptions(seed=3)))
    keys = [p.key.name for p in plans]
    assert all(keys.count(k.name) == 2 for k in KEYS)
    assert len(set(keys[:24])) == 24
    styles = [p.style for p in plans]
    assert max(styles.count(s) for s in STYLE_NAMES) - min(styles.count(s) for s in STYLE_NAMES) <= 1
    assert list(plan_corpus(10, SynthOptions(seed=3))) == plans[:10]
    assert [p.key for p in plan_corpus(24, SynthOptions(seed=4))] != keys[:24]


def test_both_sources_interleave_at_the_asked_fraction():
    plans = list(plan_corpus(40, SynthOptions(source="both", scores_fraction=0.25)))
    scores = [p.index for p in plans if p.score]
    assert scores == list(range(3, 40, 4))
    assert len({p.score for p in plans if p.score}) == 10
    generated = [p.key.name for p in plans if p.key]
    assert len(set(generated[:24])) == 24  # the generated clips still take the 24 keys in turn
    assert all(p.score for p in plan_corpus(3, SynthOptions(source="scores")))


def test_options_are_checked():
    for bad in ({"seconds": 0}, {"source": "midi"}, {"styles": ("metal",)}, {"tempo_range": (120, 60)}, {"scores_fraction": 2.0}, {"seed": -1}):
        with pytest.raises(ValueError):
            SynthOptions(**bad)


def test_a_clip_is_reproducible_to_the_byte(tmp_path):
    options = SynthOptions(seconds=4.0, seed=5)
    plan = list(plan_corpus(2, options))[1]
    first, second = make_clip(plan, tmp_path / "a", options), make_clip(plan, tmp_path / "b", options)
    assert "error" not in first
    assert first["labels"] == second["labels"] and first["synth"] == second["synth"]
    assert (tmp_path / "a" / "audio" / f"{plan.id}.wav").read_bytes() == (tmp_path / "b" / "audio" / f"{plan.id}.wav").read_bytes()
    other = make_clip(list(plan_corpus(2, SynthOptions(seconds=4.0, seed=6)))[1], tmp_path / "c", options)
    assert other["labels"] != first["labels"]
    samples, rate = soundfile.read(first["audio"])
    assert rate == 22050 and len(samples) / rate == first["labels"]["duration"] == first["end"] == 4.0
    assert soundfile.info(first["audio"]).subtype == "PCM_16"


def test_a_failing_clip_becomes_an_error_record(tmp_path):
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"not a soundfont")
    options = SynthOptions(seconds=2.0, soundfont=str(broken))
    record = make_clip(next(plan_corpus(1, options)), tmp_path, options)
    assert record["id"] == "synth-0-00000" and record["error"]["stage"] == "synth"
    assert "cannot load soundfont" in record["error"]["message"] and "labels" not in record


# --- music21 scores -------------------------------------------------------------------------------


def test_a_bach_chorale_renders_with_its_declared_key_and_pickup():
    piece = score_piece(np.random.default_rng(0), "bach/bwv66.6", 8.0)
    assert piece.key == "F# minor" and piece.details["key_source"] == "declared"
    assert piece.meter.beats == 4 and piece.chords is None and piece.genre == "classical"
    beat = 60.0 / piece.tempo_bpm
    assert 60 <= piece.tempo_bpm <= 100
    assert np.allclose(np.diff(piece.beats), beat, atol=1e-5)
    # BWV 66.6 opens with a one-beat pickup: the first beat is not a downbeat.
    assert piece.downbeats[0] == pytest.approx(piece.beats[0] + beat)
    assert np.allclose(np.diff(piece.downbeats), 4 * beat, atol=1e-5)
    first_onset = min(n.start for i in piece.midi.instruments for n in i.notes)
    assert first_onset == pytest.approx(piece.beats[0], abs=1e-6)
    audio, _ = render(piece.midi, piece.duration, SR)
    assert len(audio) == round(8.0 * SR) and np.sqrt(np.mean(audio**2)) > 0.01


def test_a_score_without_a_declared_mode_falls_back_to_analysis():
    from music21 import key, meter, note, stream

    part = stream.Part()
    part.append(meter.TimeSignature("4/4"))
    part.append(key.KeySignature(1))  # one sharp: G major or E minor; the notes say E minor
    for name in ["E4", "G4", "B4", "E5", "D#5", "B4", "F#4", "E4"] * 2:
        part.append(note.Note(name, quarterLength=1))
    score = stream.Score([part])
    assert declared_key(score) == ("E minor", "analysis")
