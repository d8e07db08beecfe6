"""MIDI to audio through a General MIDI soundfont: tinysoundfont in-process, or the FluidSynth CLI.

    audio = render(piece.midi, duration=10.0, sample_rate=22050)   # float32 (220500,), mono

Renderers:
- "tinysoundfont" (the default; `pip install --no-deps tinysoundfont`): the notes are played
  event by event into the synthesiser, in this process, with no reverb or chorus. The same notes
  give the same samples on every run.
- "fluidsynth": the `fluidsynth` program on PATH renders a MIDI file of the piece (reverb and
  chorus off). Used by "auto" only when tinysoundfont cannot be imported.

The soundfont defaults to TimGM6mb.sf2, which ships inside `pretty_midi`. Output: mono (the two
channels averaged), exactly round(duration * sample_rate) samples, the last 10 ms faded out; the
gain is fixed (no normalisation, so velocities stay audible as loudness) and a clip whose peak
would pass 0.99 is scaled down to 0.99 (the factor is returned so it can be recorded).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pretty_midi

from mllm.core.synth.mix import cc7_gain

__all__ = ["RenderError", "RENDERERS", "default_soundfont", "choose_renderer", "render"]

RENDERERS = ("auto", "tinysoundfont", "fluidsynth")
GAIN_DB = -4.0  # tinysoundfont master gain: headroom, so that velocities stay loudness
FLUIDSYNTH_GAIN = 0.5
PEAK = 0.99
FADE_SECONDS = 0.01
DRUM_CHANNEL = 9
INSTALL_HINT = (
    "no synthesiser: install tinysoundfont with `pip install --no-deps tinysoundfont` "
    "(or `make install`), or put FluidSynth on PATH (`apt-get install fluidsynth`)"
)


class RenderError(RuntimeError):
    """A piece cannot be rendered (no synthesiser, no soundfont, FluidSynth failed)."""


def default_soundfont() -> str:
    return str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")


def _has_tinysoundfont() -> bool:
    try:
        import tinysoundfont  # noqa: F401
    except ImportError:
        return False
    return True


def choose_renderer(name: str = "auto") -> str:
    """The renderer to use: `name`, or for "auto" tinysoundfont, else FluidSynth; RenderError if none is there."""
    if name not in RENDERERS:
        raise RenderError(f"unknown renderer {name!r}; choose one of {', '.join(RENDERERS)}")
    if name in ("auto", "tinysoundfont") and _has_tinysoundfont():
        return "tinysoundfont"
    if name in ("auto", "fluidsynth") and shutil.which("fluidsynth"):
        return "fluidsynth"
    if name == "fluidsynth":
        raise RenderError("`fluidsynth` is not on PATH (`apt-get install fluidsynth`), or use --renderer tinysoundfont")
    raise RenderError(INSTALL_HINT)


def render(
    midi: pretty_midi.PrettyMIDI,
    duration: float,
    sample_rate: int,
    *,
    renderer: str = "tinysoundfont",
    soundfont: str | None = None,
) -> tuple[np.ndarray, float]:
    """Mono float32 samples of `midi` over [0, duration), and the scale applied to keep the peak <= 0.99."""
    soundfont = soundfont or default_soundfont()
    if not Path(soundfont).is_file():
        raise RenderError(f"soundfont not found: {soundfont}")
    n_samples = int(round(duration * sample_rate))
    if renderer == "tinysoundfont":
        stereo = _render_tinysoundfont(midi, n_samples, sample_rate, soundfont)
    elif renderer == "fluidsynth":
        stereo = _render_fluidsynth(midi, n_samples, sample_rate, soundfont)
    else:
        raise RenderError(f"unknown renderer {renderer!r}; choose tinysoundfont or fluidsynth")
    audio = stereo.mean(axis=1).astype(np.float32)
    fade = min(n_samples, int(FADE_SECONDS * sample_rate))
    if fade:
        audio[n_samples - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if n_samples else 0.0
    scale = PEAK / peak if peak > PEAK else 1.0
    if scale != 1.0:
        audio *= np.float32(scale)
    return audio, scale


@functools.lru_cache(maxsize=4)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def _channels(midi: pretty_midi.PrettyMIDI) -> list[int]:
    """A MIDI channel per instrument: drums on 9, the others on 0-8 and 10-15 (shared by program when more)."""
    free = [c for c in range(16) if c != DRUM_CHANNEL]
    pitched = [i for i in midi.instruments if not i.is_drum]
    by_program = len(pitched) > len(free)
    if by_program and len({i.program for i in pitched}) > len(free):
        raise RenderError(f"{len({i.program for i in pitched})} different programs do not fit in 15 MIDI channels")
    channels, of_program, next_free = [], {}, iter(free)
    for instrument in midi.instruments:
        if instrument.is_drum:
            channels.append(DRUM_CHANNEL)
        elif by_program:
            channels.append(of_program.setdefault(instrument.program, free[len(of_program)]))
        else:
            channels.append(next(next_free))
    return channels


def _render_tinysoundfont(midi: pretty_midi.PrettyMIDI, n_samples: int, sample_rate: int, soundfont: str) -> np.ndarray:
    try:
        import tinysoundfont
    except ImportError:
        raise RenderError(INSTALL_HINT) from None
    synth = tinysoundfont.Synth(gain=GAIN_DB, samplerate=sample_rate)
    try:
        sfid = synth.sfload(_soundfont_bytes(soundfont))
    except Exception as exc:  # noqa: BLE001 - the binding raises plain exceptions for bad files
        raise RenderError(f"cannot load soundfont {soundfont}: {exc}") from exc
    CONTROL, OFF, ON = 0, 1, 2  # the order of events at the same sample
    events = []  # (sample, kind, channel, pitch or controller, velocity or value)
    for instrument, channel in zip(midi.instruments, _channels(midi)):
        if instrument.is_drum:
            synth.program_select(channel, sfid, 128, instrument.program, is_drums=True)
        else:
            synth.program_select(channel, sfid, 0, instrument.program)
        for change in instrument.control_changes:
            events.append((int(round(change.time * sample_rate)), CONTROL, channel, change.number, change.value))
        for note in instrument.notes:
            events.append((int(round(note.start * sample_rate)), ON, channel, note.pitch, note.velocity))
            events.append((int(round(note.end * sample_rate)), OFF, channel, note.pitch, 0))
    events.sort()
    chunks, position = [], 0
    for sample, kind, channel, number, value in events:
        if sample >= n_samples:
            break
        if sample > position:
            chunks.append(np.frombuffer(synth.generate_simple(sample - position), dtype=np.float32))
            position = sample
        if kind == ON:
            synth.noteon(channel, number, value)
        elif kind == OFF:
            synth.noteoff(channel, number)
        elif number == 7:  # channel volume on the General MIDI curve (tinysoundfont's own is steeper)
            synth.soundfonts[sfid].channel_set_volume(channel, cc7_gain(value))
        else:
            synth.control_change(channel, number, value)
    if n_samples > position:
        chunks.append(np.frombuffer(synth.generate_simple(n_samples - position), dtype=np.float32))
    return np.concatenate(chunks).reshape(-1, 2) if chunks else np.zeros((0, 2), np.float32)


def _render_fluidsynth(midi: pretty_midi.PrettyMIDI, n_samples: int, sample_rate: int, soundfont: str) -> np.ndarray:
    import soundfile

    program = shutil.which("fluidsynth")
    if program is None:
        raise RenderError("`fluidsynth` is not on PATH (`apt-get install fluidsynth`)")
    with tempfile.TemporaryDirectory(prefix="mllm-synth-") as folder:
        midi_path, wav_path = Path(folder) / "piece.mid", Path(folder) / "piece.wav"
        midi.write(str(midi_path))
        command = [
            program, "-ni", "-R", "0", "-C", "0", "-g", str(FLUIDSYNTH_GAIN), "-r", str(sample_rate),
            "-T", "wav", "-F", str(wav_path), soundfont, str(midi_path),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not wav_path.is_file():
            raise RenderError(f"fluidsynth failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        stereo, _ = soundfile.read(str(wav_path), dtype="float32", always_2d=True)
    if stereo.shape[1] == 1:
        stereo = np.repeat(stereo, 2, axis=1)
    out = np.zeros((n_samples, 2), np.float32)
    out[: min(n_samples, len(stereo))] = stereo[:n_samples]
    return out
