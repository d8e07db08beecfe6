"""Reading audio files into mono float32 samples at a chosen sample rate.

    audio = load_audio("clip.flac", sample_rate=22050, start=30.0, end=55.0)
    audio.samples     # float32 (n,), mono, in [-1, 1] for integer sources
    audio.duration    # seconds actually read

Decoders, in order: libsndfile through `soundfile` (wav, flac, aiff, ogg/vorbis, ogg/opus and,
from libsndfile 1.1, mp3), then librosa's audioread fallback (whatever ffmpeg/gstreamer the
machine has) for anything libsndfile refuses. Only the requested span is read from files
libsndfile can seek, so a crop of a three-hour recording costs what the crop costs.
Channels are averaged to mono; resampling uses soxr (its "HQ" quality).

Every failure raises AudioError with the file and the reason: missing, empty (0 bytes), not
audio or corrupt, no samples, a start past the end, non-finite samples. Silence is not an error:
an analysis decides what silence means for it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

__all__ = ["Audio", "AudioError", "AudioInfo", "audio_info", "load_audio"]


class AudioError(ValueError):
    """An audio file cannot be read as asked; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    duration: float  # seconds
    sample_rate: int
    channels: int
    format: str


@dataclass
class Audio:
    samples: np.ndarray  # float32 (n,), mono
    sample_rate: int
    start: float = 0.0  # seconds into the source file where `samples` begin
    path: str | None = None

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    @property
    def end(self) -> float:
        return self.start + self.duration


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Duration, sample rate and channels of a file, read from its header (no decoding)."""
    path = Path(path)
    _check_file(path)
    try:
        info = soundfile.info(str(path))
        return AudioInfo(info.frames / info.samplerate, info.samplerate, info.channels, info.format)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        pass
    try:
        import audioread

        with audioread.audio_open(str(path)) as handle:
            return AudioInfo(float(handle.duration), int(handle.samplerate), int(handle.channels), "audioread")
    except Exception as exc:  # noqa: BLE001 - audioread raises many unrelated types for bad input
        raise AudioError(f"{path}: not a readable audio file ({type(exc).__name__}: {exc})") from None


def _read_soundfile(path: Path, start: float, end: float | None) -> tuple[np.ndarray, int]:
    with soundfile.SoundFile(str(path)) as handle:
        rate = handle.samplerate
        total = handle.frames
        first = int(round(start * rate))
        if total > 0 and first >= total:
            raise AudioError(f"{path}: start {start:g} s is past the end of the file ({total / rate:.3f} s)")
        last = total if end is None else min(total, int(round(end * rate)))
        if handle.seekable() and first:
            handle.seek(first)
        elif first:
            handle.read(first, dtype="float32", always_2d=True)  # not seekable: skip by reading
        samples = handle.read(max(0, last - first), dtype="float32", always_2d=True)
    return samples, rate


def _read_audioread(path: Path, start: float, end: float | None) -> tuple[np.ndarray, int]:
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that it fell back to audioread
        samples, rate = librosa.load(
            str(path), sr=None, mono=False, offset=start, duration=None if end is None else end - start
        )
    samples = np.atleast_2d(samples).T  # (n, channels), as soundfile returns
    return samples.astype(np.float32, copy=False), int(rate)


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = 22050,
    start: float | None = None,
    end: float | None = None,
) -> Audio:
    """Mono float32 samples of `path` between `start` and `end` seconds, at `sample_rate`.

    Parameters
    ----------
    path : path of an audio file
    sample_rate : int or None
        Resample to this rate (None keeps the file's rate).
    start, end : float or None
        Seconds into the file; None means the beginning / the end. An `end` past the end of the
        file reads to the end (the result is shorter than asked; check `Audio.duration`).

    Raises
    ------
    AudioError
        Missing, empty or undecodable file; start past the end; no samples; NaN or inf samples.
    """
    path = Path(path)
    _check_file(path)
    start = float(start or 0.0)
    if start < 0:
        raise AudioError(f"{path}: start must be >= 0, got {start:g}")
    if end is not None and end <= start:
        raise AudioError(f"{path}: end ({end:g} s) must be after start ({start:g} s)")
    try:
        samples, rate = _read_soundfile(path, start, end)
    except AudioError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as first_error:
        try:
            samples, rate = _read_audioread(path, start, end)
        except Exception as exc:  # noqa: BLE001 - audioread/ffmpeg raise many types for bad input
            raise AudioError(
                f"{path}: not a readable audio file (libsndfile: {first_error}; audioread: {type(exc).__name__}: {exc})"
            ) from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples" + (f" after {start:g} s" if start else ""))
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    if sample_rate is not None and sample_rate != rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
        rate = sample_rate
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), int(rate), start, str(path))
