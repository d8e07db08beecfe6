"""DSP encoders: librosa features, no weights, fast on a CPU.

Every feature is computed at 22,050 Hz with a hop of 512 samples (native rate 43.07 frames/s;
frame t is centred on t * 512 / 22050 s, librosa's `center=True`). An encoder is one feature or a
`+`-joined list of them, concatenated in the order given. The named encoders:

    name        D    columns
    chroma      12   chroma_cqt, C, C#, D, ..., B; each frame scaled so its largest bin is 1
    onset       1    onset strength (librosa.onset.onset_strength: spectral flux of the log-mel)
    loudness    1    RMS level in dBFS (frame 2048), floored at -100 dB; a full-scale sine is -3 dB
    centroid    1    spectral centroid in kHz (frame 2048)
    tempogram   24   autocorrelation tempogram (librosa, 384-frame = 8.9 s window), read at 24 tempi
                     from 40 to 240 BPM spaced evenly in log tempo (`TEMPO_BPM`); 1.0 = lag 0
    logmel      64   log-mel power in dB (frame 2048, 64 bands, librosa's Slaney mel), floored at -100 dB
    dsp         39   chroma (0-11) + onset (12) + loudness (13) + centroid (14) + tempogram (15-38)

`dsp` is the default encoder of the demo: chroma for key, onset and tempogram for tempo,
loudness and centroid for energy and brightness. `chroma+onset+loudness` gives the 14 values per
frame of the CPU prototype. Values are in the units above (not standardised): a projector or
probe standardises them from its training set.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import librosa
import numpy as np

from mllm.core.encoders.registry import Encoder, EncoderError

__all__ = ["DSP_FEATURES", "DSP_ENCODERS", "DspEncoder", "HOP_LENGTH", "SAMPLE_RATE", "TEMPO_BPM", "is_dsp_name", "feature_columns"]

SAMPLE_RATE = 22050
HOP_LENGTH = 512
N_FFT = 2048
N_MELS = 64
TEMPOGRAM_WINDOW = 384  # frames (librosa's default): 8.9 s
TEMPO_BPM = np.geomspace(40.0, 240.0, 24)
DB_FLOOR = -100.0
CODE_VERSION = 1  # bump when a feature's definition changes (invalidates cached embeddings)


class _Clip:
    """One clip's features, each computed once (onset strength feeds both onset and tempogram)."""

    def __init__(self, samples: np.ndarray):
        self.y = samples
        self._onset: np.ndarray | None = None

    def onset_envelope(self) -> np.ndarray:
        if self._onset is None:
            self._onset = librosa.onset.onset_strength(y=self.y, sr=SAMPLE_RATE, hop_length=HOP_LENGTH)
        return self._onset


def _chroma(clip: _Clip) -> np.ndarray:
    return librosa.feature.chroma_cqt(y=clip.y, sr=SAMPLE_RATE, hop_length=HOP_LENGTH).T


def _onset(clip: _Clip) -> np.ndarray:
    return clip.onset_envelope()[:, None]


def _loudness(clip: _Clip) -> np.ndarray:
    rms = librosa.feature.rms(y=clip.y, frame_length=N_FFT, hop_length=HOP_LENGTH)[0]
    return 20.0 * np.log10(np.maximum(rms, 10 ** (DB_FLOOR / 20)))[:, None]


def _centroid(clip: _Clip) -> np.ndarray:
    hz = librosa.feature.spectral_centroid(y=clip.y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH)[0]
    return (hz / 1000.0)[:, None]


def tempogram_at_bpm(tempogram: np.ndarray, bpm: np.ndarray = TEMPO_BPM) -> np.ndarray:
    """Read an autocorrelation tempogram `[lags, T]` at tempi `bpm` (linear between lags) -> `[T, len(bpm)]`."""
    lags = 60.0 * SAMPLE_RATE / (HOP_LENGTH * np.asarray(bpm, dtype=np.float64))
    low = np.floor(lags).astype(int)
    frac = (lags - low)[:, None]
    return ((1.0 - frac) * tempogram[low] + frac * tempogram[low + 1]).T


def _tempogram(clip: _Clip) -> np.ndarray:
    gram = librosa.feature.tempogram(
        onset_envelope=clip.onset_envelope(), sr=SAMPLE_RATE, hop_length=HOP_LENGTH, win_length=TEMPOGRAM_WINDOW
    )
    return tempogram_at_bpm(gram)


def _logmel(clip: _Clip) -> np.ndarray:
    power = librosa.feature.melspectrogram(y=clip.y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS)
    return librosa.power_to_db(power, ref=1.0, amin=10 ** (DB_FLOOR / 10), top_db=None).T


# name -> (width, function of a clip returning [T, width])
DSP_FEATURES: dict[str, tuple[int, Callable[[_Clip], np.ndarray]]] = {
    "chroma": (12, _chroma),
    "onset": (1, _onset),
    "loudness": (1, _loudness),
    "centroid": (1, _centroid),
    "tempogram": (len(TEMPO_BPM), _tempogram),
    "logmel": (N_MELS, _logmel),
}
DSP_ENCODERS = {"dsp": ("chroma", "onset", "loudness", "centroid", "tempogram")}


def _features_of(name: str) -> tuple[str, ...]:
    parts: list[str] = []
    for part in name.split("+"):
        part = part.strip().lower()
        parts.extend(DSP_ENCODERS.get(part, (part,)))
    return tuple(parts)


def is_dsp_name(name: str) -> bool:
    """True when `name` is a DSP encoder (`dsp`, a feature, or features joined by `+`)."""
    return all(part in DSP_FEATURES for part in _features_of(name))


def feature_columns(name: str) -> dict[str, tuple[int, int]]:
    """Which columns of the encoder `name` hold which feature: {"chroma": (0, 12), "onset": (12, 13), ...}."""
    columns, start = {}, 0
    for feature in _features_of(name):
        width = DSP_FEATURES[feature][0]
        columns[feature] = (start, start + width)
        start += width
    return columns


class DspEncoder(Encoder):
    sample_rate = SAMPLE_RATE
    native_frame_rate = SAMPLE_RATE / HOP_LENGTH
    # Long audio goes in 5-minute windows (a tempogram or CQT of an hour is large); clips up to 5 minutes are one call.
    window_seconds = 300.0

    def __init__(self, name: str):
        if not is_dsp_name(name):
            raise EncoderError(f"unknown DSP encoder {name!r}; known: {', '.join([*DSP_ENCODERS, *DSP_FEATURES])}")
        self.name = name
        self.features = _features_of(name)
        if len(set(self.features)) != len(self.features):
            raise EncoderError(f"DSP encoder {name!r} names a feature twice")
        self.dim = sum(DSP_FEATURES[f][0] for f in self.features)

    @property
    def fingerprint(self) -> str:
        version = ".".join(librosa.__version__.split(".")[:2])
        return f"dsp:{'+'.join(self.features)}:v{CODE_VERSION}:sr{SAMPLE_RATE}:hop{HOP_LENGTH}:librosa{version}"

    def encode_clip(self, samples: np.ndarray) -> np.ndarray:
        """`[T, D]` float32, T = 1 + len(samples) // 512."""
        clip = _Clip(np.asarray(samples, dtype=np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns when a clip is shorter than its FFT frame
            parts = [DSP_FEATURES[f][1](clip) for f in self.features]
        frames = min(len(p) for p in parts)
        return np.concatenate([p[:frames] for p in parts], axis=1).astype(np.float32)

    def encode_batch(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        return [self.encode_clip(clip) for clip in clips]
