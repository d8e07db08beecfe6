"""Offline preference data (core/reward_model/degrade.py, pairs.py, `mllm build-pairs`): degradations
at their stated levels, pairs with known answers that never cross splits, MOS records per level."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.jsonl import dumps
from mllm.core.reward_model.degrade import CLIP_THRESHOLD, DETUNE_CENTS, NOISE_SNR_DB, degrade
from mllm.core.reward_model.pairs import MOS_OF_LEVEL, PairOptions, build_pairs
from mllm.core.synth.corpus import SynthOptions, synthesize

RATE = 22050
runner = CliRunner()


def tone(seconds=2.0, hz=440.0, amplitude=0.2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_noise_has_the_stated_signal_to_noise_ratio(level):
    x = tone()
    y = degrade(x, RATE, "noise", level, rng=np.random.default_rng(level))
    assert y.shape == x.shape and y.dtype == np.float32
    assert rms(y) == pytest.approx(rms(x), rel=1e-3)  # loudness kept: not a cue
    gain = float(np.dot(y, x) / np.dot(x, x))  # y = gain * (x + noise)
    noise = y / gain - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert snr == pytest.approx(NOISE_SNR_DB[level], abs=0.3)


def test_clipping_flattens_more_of_the_waveform_at_each_level():
    x = tone()
    flat = []
    for level in (1, 2, 3, 4):
        y = degrade(x, RATE, "clip", level)
        assert rms(y) == pytest.approx(rms(x), rel=1e-3) and np.max(np.abs(y)) <= 1.0
        flat.append(np.mean(np.abs(y) >= 0.999 * np.max(np.abs(y))))  # samples on the clipped plateau
    assert flat == sorted(flat) and flat[0] > 0.2 and flat[-1] > 0.9
    # at threshold t the plateau of a sine covers 1 - (2/pi) asin(t) of the time
    assert flat[1] == pytest.approx(1 - 2 / np.pi * np.arcsin(CLIP_THRESHOLD[2]), abs=0.02)


@pytest.mark.parametrize("level", [1, 4])
def test_detuning_adds_a_copy_shifted_by_the_stated_cents(level):
    x = tone(seconds=3.0)
    y = degrade(x, RATE, "detune", level)
    spectrum = np.abs(np.fft.rfft(y[RATE // 2: RATE // 2 + 2 * RATE] * np.hanning(2 * RATE)))
    freqs = np.fft.rfftfreq(2 * RATE, 1 / RATE)
    expected = 440.0 * 2 ** (DETUNE_CENTS[level] / 1200)
    middle = (440.0 + expected) / 2
    band = (freqs > middle) & (freqs < expected + 10)
    assert freqs[band][np.argmax(spectrum[band])] == pytest.approx(expected, abs=1.0)
    near = (freqs > 430) & (freqs < middle)
    assert freqs[near][np.argmax(spectrum[near])] == pytest.approx(440.0, abs=0.6)  # the original is kept


def test_level_zero_is_the_clean_audio_and_bad_requests_are_refused():
    x = tone()
    assert np.array_equal(degrade(x, RATE, "noise", 0), x)
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(x, RATE, "reverb", 1)
    with pytest.raises(ValueError, match="level"):
        degrade(x, RATE, "noise", 5)
    loud = degrade(tone(amplitude=0.99), RATE, "noise", 4)
    assert np.max(np.abs(loud)) == pytest.approx(1.0)  # scaled into [-1, 1], not clipped
    with pytest.raises(ValueError, match="silent"):
        degrade(np.zeros(100, np.float32), RATE, "clip", 1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("corpus")
    return list(synthesize(folder, 9, SynthOptions(seconds=2.0, seed=3)))


def test_pairs_have_known_answers_and_never_cross_splits(corpus, tmp_path):
    clips = [{**r, "split": "train" if i < 6 else "test"} for i, r in enumerate(corpus)]
    built = build_pairs(clips, tmp_path / "pairs", PairOptions(per_clip=2, seed=1))
    assert built.clips == 9 and built.failed == 0
    by_axis = Counter(p["axis"] for p in built.pairs)
    assert by_axis["musicality"] == 9 * 7  # clean v 1..4, and 1 v 2, 2 v 3, 3 v 4
    assert 0 < by_axis["alignment"] <= 9 * 2
    split_of = {r["id"]: r["split"] for r in clips}
    labels = {r["id"]: r["labels"] for r in clips}
    sides = Counter()
    for pair in built.pairs:
        sides[pair["preference"]] += 1
        assert Path(pair["audio"]).is_file() and Path(pair["audio_b"]).is_file()
        assert pair["split"] == split_of[pair["clip"]]
        preferred = pair["audio"] if pair["preference"] == "a" else pair["audio_b"]
        other = pair["audio_b"] if pair["preference"] == "a" else pair["audio"]
        if pair["axis"] == "alignment":
            own, mismatched = labels[pair["clip"]], labels[pair["mismatched_clip"]]
            assert split_of[pair["mismatched_clip"]] == pair["split"]  # the negative is of the same split
            assert pair["prompt"] == own["caption"] and preferred.endswith(f"{pair['clip']}.clean.wav")
            assert other.endswith(f"{pair['mismatched_clip']}.clean.wav")
            assert own["key"] != mismatched["key"] and set(own["instruments"]) != set(mismatched["instruments"])
            assert abs(own["tempo_bpm"] - mismatched["tempo_bpm"]) >= 0.2 * own["tempo_bpm"]
        else:
            level = lambda path: 0 if path.endswith(".clean.wav") else int(path[-5])  # noqa: E731
            assert level(preferred) < level(other)  # the less degraded is preferred
            system = pair["system"] if pair["preference"] == "a" else pair["system_b"]
            assert system == ("clean" if level(preferred) == 0 else f"level-{level(preferred)}")
    assert sides["a"] > 20 and sides["b"] > 20  # the preferred side is a coin flip
    kinds = Counter(p["degradation"] for p in built.pairs if p["axis"] == "musicality")
    assert set(kinds) == {"noise", "clip", "detune"}
    assert len(built.mos) == 9 * 5
    for record in built.mos:
        assert record["musicality"] == MOS_OF_LEVEL[record["level"]]
        assert record["system"] == ("clean" if record["level"] == 0 else f"level-{record['level']}")
        samples, rate = soundfile.read(record["audio"])
        assert rate == 22050 and len(samples) == 2 * 22050


def test_build_pairs_cli_writes_the_folder_and_error_records(corpus, tmp_path):
    broken = {**corpus[1], "id": "no-caption", "labels": {k: v for k, v in corpus[1]["labels"].items() if k != "caption"}}
    source = tmp_path / "clips.jsonl"
    source.write_bytes(b"".join(dumps(r) for r in [corpus[0], broken, *corpus[2:5]]))
    out = tmp_path / "pairs"
    result = runner.invoke(app, ["build-pairs", str(source), str(out), "--kinds", "noise,clip", "--threads", "1"])
    assert result.exit_code == 1, result.stderr
    streamed = [orjson.loads(line) for line in result.stdout.splitlines()]
    written = [orjson.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert streamed == written
    errors = [r for r in written if "error" in r]
    assert [r["id"] for r in errors] == ["no-caption"] and "labels.caption" in errors[0]["error"]["message"]
    assert {r["degradation"] for r in written if r.get("axis") == "musicality"} == {"noise", "clip"}
    assert len((out / "mos.jsonl").read_text().splitlines()) == 4 * 5
    again = runner.invoke(app, ["build-pairs", str(source), str(out)])
    assert again.exit_code == 2 and "not empty" in again.stderr  # an earlier folder is not written over
