"""Long audio in bounded memory: extract-features and encode stream the file block by block.

A 20-minute file (16 kHz stereo, 16-bit) is analysed and encoded while tracemalloc follows the
numpy allocations: the peak must not grow with the file beyond what the result holds (decoding
it whole, as before, costs 154 MB at the file's rate). Streamed results equal whole-clip results;
spans over a bound fail alone with an error naming the field and the bound.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile

import encoder_models
from feature_signals import MAJOR_CADENCE, click_track, progression
from mllm.core.audio import load_audio, windows
from mllm.core.encoders import EncodeOptions, embed_clips, encode_records, load_encoder, pool_frames
from mllm.core.encoders.pooling import FramePooler
from mllm.core.encoders.windows import stream_windows
from mllm.core.features import essentia_backend, librosa_backend
from mllm.core.features.extract import analyse_record, extract_features
from mllm.core.io.errors import StreamSummary

RATE = 16000
MINUTES = 20


def music(seconds: float, rate: int) -> np.ndarray:
    """Clicks at 120 BPM in 4/4 over a I-IV-V-I cadence, mono float32."""
    clicks, _, _ = click_track(120.0, 4, seconds, sr=rate)
    chords, _ = progression(MAJOR_CADENCE, seconds / len(MAJOR_CADENCE), sr=rate)
    return clicks + np.pad(chords, (0, max(0, clicks.size - chords.size)))[: clicks.size]


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """20 minutes of 16 kHz stereo 16-bit WAV (77 MB), written a minute at a time."""
    path = tmp_path_factory.mktemp("long") / "twenty-minutes.wav"
    minute = music(60.0, RATE)
    with soundfile.SoundFile(path, "w", RATE, 2, "PCM_16") as handle:
        for _ in range(MINUTES):
            handle.write(np.stack([minute, 0.8 * minute], axis=1))
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"whisper": str(encoder_models.whisper(root / "whisper")), "hubert": str(encoder_models.hubert(root / "hubert"))}


def traced_peak_mb(run) -> tuple[float, object]:
    """(peak MB of traced allocations while `run()` runs, its result)."""
    tracemalloc.start()
    try:
        result = run()
        return tracemalloc.get_traced_memory()[1] / 2**20, result
    finally:
        tracemalloc.stop()


WHOLE_FILE_MB = MINUTES * 60 * RATE * 2 * 4 / 2**20  # the span as float32 at the file's rate, both channels: 146 MiB


def test_decoding_holds_one_block_whatever_the_length(long_file):
    from mllm.core.audio import open_audio

    def count():
        return sum(block.size for block in open_audio(long_file, sample_rate=22050))

    peak, samples = traced_peak_mb(count)
    assert samples == MINUTES * 60 * 22050
    assert peak < 8, f"decoding 20 minutes block by block peaked at {peak:.1f} MB"


def test_extract_features_memory_does_not_grow_with_the_file(long_file):
    analyse_record({"id": "warm-up", "audio": long_file, "end": 5.0}, sample_rate=RATE)  # one-time costs (numba, filters)
    short_peak, short = traced_peak_mb(lambda: analyse_record({"id": "a", "audio": long_file, "end": 120.0}, sample_rate=RATE))
    long_peak, long = traced_peak_mb(lambda: analyse_record({"id": "b", "audio": long_file}, sample_rate=RATE))
    features = long["features"]
    assert features["duration"] == MINUTES * 60 and features["tempo_bpm"] == pytest.approx(120.0, rel=0.02)
    assert len(features["beats"]) == pytest.approx(MINUTES * 120, rel=0.02) and features["key"] == "C major"
    # Ten times the audio costs only its frames: onset envelopes and chroma, about 1.3 MB per minute
    # at 16 kHz (the old whole decoding cost 146 MB more for this file).
    assert long_peak - short_peak < 0.1 * WHOLE_FILE_MB, (short_peak, long_peak)
    assert long_peak < 0.5 * WHOLE_FILE_MB


def test_streamed_features_equal_the_whole_signal_analysis(tmp_path):
    path = tmp_path / "ninety.wav"
    soundfile.write(path, np.stack([music(90.0, 44100), music(90.0, 44100)[::-1]], axis=1), 44100, subtype="PCM_16")
    whole = load_audio(path, sample_rate=22050).samples
    assert analyse_record({"id": "x", "audio": str(path)})["features"] == librosa_backend.analyse(whole, 22050)


@pytest.mark.parametrize("encoder_name", ["loudness", "whisper"])
def test_encode_memory_does_not_grow_with_the_file(long_file, models, encoder_name):
    encoder = load_encoder(models.get(encoder_name, encoder_name), device="cpu")

    def encode(end):
        record = {"id": "x", "audio": long_file, "end": end}
        return list(encode_records([record], encoder, EncodeOptions(frame_rate=10, batch_size=8)))[0]

    short_peak, short = traced_peak_mb(lambda: encode(310.0))  # over one 300 s DSP window, 155 Whisper windows
    long_peak, long = traced_peak_mb(lambda: encode(None))
    assert long["audio_embedding"].shape == (MINUTES * 600, encoder.dim) and "error" not in long
    result_mb = MINUTES * 600 * encoder.dim * (4 + 2) / 2**20  # the pooled float32 frames and the float16 copy
    assert long_peak - short_peak < result_mb + 0.1 * WHOLE_FILE_MB, (short_peak, long_peak, result_mb)


@pytest.mark.parametrize("encoder_name", ["dsp", "whisper"])
def test_a_streamed_record_gets_the_whole_clip_embedding(tmp_path, models, encoder_name):
    path = tmp_path / "seventy.flac"
    soundfile.write(path, music(70.3, 44100), 44100)  # over the 60 s above which records are streamed
    encoder = load_encoder(models.get(encoder_name, encoder_name), device="cpu")
    streamed = list(encode_records([{"id": "x", "audio": str(path)}], encoder, EncodeOptions(frame_rate=4, store_dtype="float32")))
    whole = embed_clips(encoder, [load_audio(path, sample_rate=encoder.sample_rate).samples], frame_rate=4)[0]
    assert streamed[0]["audio_embedding"].shape == whole.shape == (282, encoder.dim)
    assert np.array_equal(streamed[0]["audio_embedding"], whole)


def test_an_encoder_without_a_window_refuses_spans_over_its_bound(tmp_path, models):
    path = tmp_path / "eleven-minutes.wav"
    soundfile.write(path, np.tile(music(60.0, RATE), 11), RATE, subtype="PCM_16")
    encoder = load_encoder(models["hubert"], device="cpu")  # wav2vec2-style: the whole span in one call
    records = [
        {"id": "whole-file", "audio": str(path)},
        {"id": "long-crop", "audio": str(path), "start": 10.0, "end": 630.0},
        {"id": "crop", "audio": str(path), "start": 30.0, "end": 40.0},
    ]
    summary = StreamSummary("encode")
    out = list(encode_records(records, encoder, EncodeOptions(frame_rate=10), summary=summary))
    whole, long_crop, crop = out
    assert whole["error"]["type"] == "AudioTooLong" and long_crop["error"]["type"] == "AudioTooLong"
    assert whole["error"]["message"].startswith("field 'audio':") and "600 s" in whole["error"]["message"]
    assert long_crop["error"]["message"].startswith("field 'end':") and "620.0 s long" in long_crop["error"]["message"]
    assert crop["audio_embedding"].shape == (100, encoder.dim)
    assert summary.failed_here == 2 and [r["id"] for r in out] == ["whole-file", "long-crop", "crop"]


@pytest.mark.parametrize("backend_module, backend", [(librosa_backend, "librosa"), (essentia_backend, "essentia")])
def test_extract_features_refuses_excerpts_over_the_backend_bound(tmp_path, monkeypatch, backend_module, backend):
    if backend == "essentia":
        pytest.importorskip("essentia")
    assert backend_module.LONGEST_SECONDS >= 1800  # the documented bounds: 12 h (librosa), 30 min (essentia)
    monkeypatch.setattr(backend_module, "LONGEST_SECONDS", 8.0)  # the same check on a short file
    path = tmp_path / "twelve.wav"
    soundfile.write(path, music(12.0, 22050), 22050)
    records = [{"id": "file", "audio": str(path)}, {"id": "crop", "audio": str(path), "start": 1.0, "end": 10.0},
               {"id": "ok", "audio": str(path), "end": 8.0}]
    out = list(extract_features(records, backend=backend))
    assert out[0]["error"]["type"] == "AudioTooLong" and out[0]["error"]["message"].startswith("field 'audio':")
    assert "at most 8 s" in out[0]["error"]["message"] and f"--backend {backend}" in out[0]["error"]["message"]
    assert out[1]["error"]["message"].startswith("field 'end':")
    assert out[2]["features"]["duration"] == 8.0


# --- the streaming pieces --------------------------------------------------------------------------


def test_stream_windows_cut_the_windows_of_the_whole_clip():
    rng = np.random.default_rng(0)
    for _ in range(300):
        rate = int(rng.choice([16000, 22050, 100, 7]))
        length = float(rng.choice([30.0, 10.1, 1.9, 0.37, 3.0]))
        n = int(rng.integers(1, int(length * rate * 4) + 2))
        samples = np.arange(n, dtype=np.float32)
        duration = n / rate
        # The rule of docs/encoders.md: windows of core.audio.windows, one window when the clip fits.
        spans = windows(duration, length) if duration > length else [(0.0, duration)]
        expected = [(round(s * rate) / rate, samples[round(s * rate) : min(n, round(e * rate))]) for s, e in spans]
        expected = [(s, w) for s, w in expected if w.size]
        blocks = np.split(samples, np.sort(rng.integers(0, n, size=int(rng.integers(0, 6)))))
        got = list(stream_windows(blocks, rate, length))
        assert [s for s, _ in got] == [s for s, _ in expected]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected))


def test_pooling_window_by_window_equals_pooling_at_once():
    rng = np.random.default_rng(1)
    for _ in range(300):
        native, rate = rng.choice([43.07, 50.0, 3.2, 0.1]), rng.choice([10.0, 1.0, 0.0, 3.0, 0.02])
        duration = float(rng.uniform(0.01, 100))
        times = np.arange(max(1, int(duration * native) + int(rng.integers(0, 4)))) / native  # some past the end
        frames = rng.normal(size=(times.size, 3)).astype(np.float32)
        inside = int(np.count_nonzero(times < duration - 1e-6))
        cuts = np.sort(rng.choice(np.arange(1, inside), size=min(inside - 1, 5), replace=False)) if inside > 1 else []
        pooler = FramePooler(rate)
        for piece in np.split(np.arange(times.size), cuts):
            pooler.add(frames[piece], times[piece])
        assert np.allclose(pooler.finish(duration), pool_frames(frames, times, duration, rate), atol=1e-6)


def test_pooling_refuses_frames_past_the_end_before_the_last_window():
    pooler = FramePooler(10.0)
    pooler.add(np.ones((20, 2)), np.arange(20) / 10)  # 0 .. 1.9 s
    pooler.add(np.ones((5, 2)), 2.0 + np.arange(5) / 10)
    with pytest.raises(ValueError, match="before the last one"):
        pooler.finish(1.0)
