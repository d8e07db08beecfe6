"""core/encoders: mean pooling to a frame rate, windows over long audio, batching, layer parsing."""

from __future__ import annotations

import numpy as np
import pytest

from mllm.core.encoders import EncoderError, embed_clips, encode_clips, frame_count, parse_layer, pool_frames
from mllm.core.encoders.registry import Encoder, layer_label
from mllm.core.encoders.windows import split_windows


def test_frame_count_is_the_number_of_started_windows():
    assert frame_count(8.0, 10) == 80
    assert frame_count(3.05, 10) == 31
    assert frame_count(0.3, 10) == 3  # 0.3 * 10 is 3.0000000000000004 in floating point
    assert frame_count(0.01, 10) == 1
    assert frame_count(25.0, 0) == 1
    with pytest.raises(ValueError):
        frame_count(1.0, -1)


def test_pooling_50_hz_to_10_hz_averages_five_frames():
    frames = np.arange(100, dtype=np.float32)[:, None] * np.array([[1.0, -2.0]], dtype=np.float32)
    times = np.arange(100) / 50
    pooled = pool_frames(frames, times, duration=2.0, frame_rate=10)
    assert pooled.shape == (20, 2) and pooled.dtype == np.float32
    expected = frames.reshape(20, 5, 2).mean(axis=1)
    assert np.allclose(pooled, expected)


def test_last_window_is_cut_at_the_end_of_the_clip():
    # 2.05 s at 50 Hz: 103 frames (times 0 .. 2.04); the 21st window [2.0, 2.1) holds frames 100-102.
    frames = np.arange(103, dtype=np.float64)[:, None]
    pooled = pool_frames(frames, np.arange(103) / 50, duration=2.05, frame_rate=10)
    assert pooled.shape == (21, 1)
    assert pooled[-1, 0] == pytest.approx(101.0)  # mean of 100, 101, 102


def test_frames_starting_after_the_end_are_dropped():
    # An encoder that padded its input to 2 s returns 100 frames for a 1 s clip: only the first 50 count.
    frames = np.concatenate([np.ones((50, 1)), np.full((50, 1), 99.0)])
    pooled = pool_frames(frames, np.arange(100) / 50, duration=1.0, frame_rate=10)
    assert pooled.shape == (10, 1) and np.all(pooled == 1.0)
    assert pool_frames(frames, np.arange(100) / 50, duration=1.0, frame_rate=0)[0, 0] == 1.0


def test_slower_encoder_repeats_its_frame_over_the_windows_it_covers():
    # One vector per 10 s (CLAP's projection) pooled to 1 Hz over 25 s.
    frames = np.array([[1.0], [2.0], [3.0]])
    pooled = pool_frames(frames, np.array([0.0, 10.0, 20.0]), duration=25.0, frame_rate=1)
    assert pooled.shape == (25, 1)
    assert np.array_equal(pooled[:, 0], [1.0] * 10 + [2.0] * 10 + [3.0] * 5)


def test_non_integer_native_rate_assigns_frames_by_start_time():
    rate = 22050 / 512  # the DSP encoders' 43.07 Hz
    times = np.arange(130) / rate  # 3.0 s
    pooled = pool_frames(times[:, None], times, duration=3.0, frame_rate=1)
    for k in range(3):
        inside = times[(times >= k) & (times < k + 1)]
        assert pooled[k, 0] == pytest.approx(inside.mean())


def test_frame_rate_zero_is_the_mean_over_the_clip():
    frames = np.random.default_rng(0).normal(size=(40, 3))
    pooled = pool_frames(frames, np.arange(40) / 10, duration=4.0, frame_rate=0)
    assert pooled.shape == (1, 3) and np.allclose(pooled[0], frames.mean(axis=0), atol=1e-6)


def test_pool_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        pool_frames(np.zeros((4, 2)), np.zeros(3), 1.0, 10)


def test_split_windows_covers_the_clip_in_order():
    samples = np.arange(1000, dtype=np.float32)
    pieces = split_windows(samples, 100, window_seconds=3.0)
    assert [start for start, _ in pieces] == [0.0, 3.0, 6.0, 9.0]
    assert [len(p) for _, p in pieces] == [300, 300, 300, 100]
    assert np.array_equal(np.concatenate([p for _, p in pieces]), samples)
    assert len(split_windows(samples, 100, window_seconds=None)) == 1
    assert len(split_windows(samples, 100, window_seconds=10.0)) == 1


class RampEncoder(Encoder):
    """Frame t of a clip = [sum of its samples in the frame's span, clip length]: checks windows and batches."""

    name = "ramp"
    sample_rate = 100
    native_frame_rate = 10.0
    dim = 2

    def __init__(self, window_seconds=None, equal_lengths_only=False, min_samples=1, pad_to=None):
        self.window_seconds = window_seconds
        self.equal_lengths_only = equal_lengths_only
        self.min_samples = min_samples
        self.pad_to = pad_to
        self.batches: list[list[int]] = []

    @property
    def fingerprint(self):
        return "ramp"

    def encode_batch(self, clips):
        self.batches.append([len(c) for c in clips])
        out = []
        for clip in clips:
            if self.pad_to:
                clip = np.pad(clip, (0, self.pad_to - len(clip)))
            spans = clip[: len(clip) // 10 * 10].reshape(-1, 10).sum(axis=1)
            if len(spans) == 0:
                spans = np.array([clip.sum()])
            out.append(np.stack([spans, np.full(len(spans), len(clip))], axis=1).astype(np.float32))
        return out


def test_windows_give_frames_with_absolute_times():
    encoder = RampEncoder(window_seconds=2.0)
    clip = np.ones(550, dtype=np.float32)  # 5.5 s: windows of 2, 2, 1.5 s
    native = encode_clips(encoder, [clip], batch_size=8)[0]
    assert np.allclose(native.times, np.arange(55) / 10)
    assert native.frames.shape == (55, 2) and np.all(native.frames[:, 0] == 10.0)
    assert list(native.frames[:, 1]) == [200.0] * 40 + [150.0] * 15  # frames know their window's length
    assert encoder.batches == [[150, 200, 200]]  # one batch, shortest window first


def test_padding_frames_past_a_window_end_are_not_kept():
    encoder = RampEncoder(window_seconds=2.0, pad_to=200)  # pads every window to 2 s, like Whisper
    native = encode_clips(encoder, [np.ones(250, dtype=np.float32)], batch_size=8)[0]
    assert len(native.frames) == 25
    pooled = embed_clips(encoder, [np.ones(250, dtype=np.float32)], frame_rate=10)[0]
    assert pooled.shape == (25, 2)


def test_short_windows_are_padded_to_the_minimum():
    encoder = RampEncoder(min_samples=40)
    native = encode_clips(encoder, [np.ones(5, dtype=np.float32)])[0]
    assert encoder.batches == [[40]] and len(native.frames) == 1 and native.frames[0, 0] == 5.0


def test_batches_sort_by_length_and_respect_equal_lengths_only():
    clips = [np.ones(n, dtype=np.float32) for n in (300, 100, 300, 200, 100)]
    mixed = RampEncoder()
    embed_clips(mixed, clips, frame_rate=10, batch_size=2)
    assert mixed.batches == [[100, 100], [200, 300], [300]]
    equal = RampEncoder(equal_lengths_only=True)
    results = embed_clips(equal, clips, frame_rate=10, batch_size=8)
    assert equal.batches == [[100, 100], [200], [300, 300]]
    assert [r.shape[0] for r in results] == [30, 10, 30, 20, 10]  # back in input order


class FailingEncoder(RampEncoder):
    def encode_batch(self, clips):
        if any(len(c) == 123 for c in clips):
            raise RuntimeError("this clip breaks the model")
        return super().encode_batch(clips)


def test_a_failing_clip_fails_alone():
    clips = [np.ones(n, dtype=np.float32) for n in (120, 123, 125)]
    results = embed_clips(FailingEncoder(), clips, frame_rate=10, batch_size=8)
    assert isinstance(results[1], RuntimeError)
    assert results[0].shape == (12, 2) and results[2].shape == (13, 2)


def test_wrong_output_shape_is_an_error():
    class Wrong(RampEncoder):
        dim = 3

    assert isinstance(embed_clips(Wrong(), [np.ones(100, dtype=np.float32)], frame_rate=10)[0], EncoderError)


@pytest.mark.parametrize(
    "text, layer", [("-1", -1), ("6", 6), ("4,5,6", (4, 5, 6)), (" 1, 2 ", (1, 2)), ("all", "all"), ("Projection", "projection"), (None, None)]
)
def test_parse_layer(text, layer):
    assert parse_layer(text) == layer


@pytest.mark.parametrize("text", ["last", "1.5", "1,1", ""])
def test_parse_layer_rejects(text):
    with pytest.raises(EncoderError):
        parse_layer(text)


def test_layer_label_is_json_friendly():
    assert layer_label((1, 2)) == [1, 2] and layer_label(-1) == -1 and layer_label("all") == "all" and layer_label(None) is None
