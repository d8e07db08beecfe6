"""core.audio: decoding every format the machine reads, downmix, resample, crops, broken files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from mllm.core.audio import AudioError, audio_info, llark_crop, load_audio, record_audio, windows
from mllm.core.io.errors import RecordError


def tone(seconds=2.0, rate=44100, freq=440.0, channels=1, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def peak_frequency(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]


FORMATS = [
    ("wav", {}), ("flac", {}), ("ogg", {"subtype": "VORBIS"}), ("ogg", {"subtype": "OPUS"}), ("mp3", {}),
]


@pytest.mark.parametrize("suffix, options", FORMATS, ids=["wav", "flac", "vorbis", "opus", "mp3"])
def test_every_format_decodes_to_mono_at_the_asked_rate(tmp_path, suffix, options):
    rate = 48000 if options.get("subtype") == "OPUS" else 44100  # opus runs at 48 kHz
    path = tmp_path / f"tone.{suffix}"
    soundfile.write(path, tone(2.0, rate, 440.0, channels=2), rate, **options)
    audio = load_audio(path, sample_rate=22050)
    assert audio.sample_rate == 22050 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(2.0, abs=0.06)  # lossy codecs pad a few ms
    assert peak_frequency(audio.samples, 22050) == pytest.approx(440.0, abs=3.0)
    assert 0.3 < np.abs(audio.samples).max() < 0.7


def test_stereo_is_averaged(tmp_path):
    left, right = tone(1.0, 8000, 440.0), tone(1.0, 8000, 1000.0)
    path = tmp_path / "two.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    audio = load_audio(path, sample_rate=None)
    assert np.allclose(audio.samples, (left + right) / 2, atol=1e-6)


def test_crop_reads_only_the_span_and_records_where_it_starts(tmp_path):
    rate = 8000
    ramp = (np.arange(rate * 10) / (rate * 10)).astype(np.float32)  # value = position in the file
    path = tmp_path / "ramp.wav"
    soundfile.write(path, ramp, rate, subtype="FLOAT")
    audio = load_audio(path, sample_rate=None, start=2.5, end=4.0)
    assert audio.start == 2.5 and audio.end == pytest.approx(4.0)
    assert audio.samples[0] == pytest.approx(0.25, abs=1e-4) and audio.samples[-1] == pytest.approx(0.4, abs=1e-3)
    past_end = load_audio(path, sample_rate=None, start=9.0, end=30.0)  # reads to the end
    assert past_end.duration == pytest.approx(1.0)
    assert audio_info(path).duration == pytest.approx(10.0)


def test_a_long_file_is_cropped_without_reading_it_all(tmp_path):
    rate = 8000
    path = tmp_path / "long.flac"
    with soundfile.SoundFile(path, "w", rate, 1, format="FLAC") as handle:
        block = tone(60.0, rate, 220.0)
        for _ in range(30):  # 30 minutes
            handle.write(block)
    assert audio_info(path).duration == pytest.approx(1800.0)
    audio = load_audio(path, sample_rate=None, start=1500.0, end=1525.0)
    assert audio.duration == pytest.approx(25.0) and peak_frequency(audio.samples, rate) == pytest.approx(220, abs=1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such audio file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 50), "not a readable audio file"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "not a readable audio file"),  # header cut short
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["missing", "empty", "garbage", "truncated-header", "folder"],
)
def test_broken_files_raise_a_clear_error(tmp_path, make, message):
    path = tmp_path / "broken.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_start_past_the_end_and_bad_spans(tmp_path):
    path = tmp_path / "short.wav"
    soundfile.write(path, tone(1.0, 8000), 8000)
    with pytest.raises(AudioError, match="past the end"):
        load_audio(path, start=5.0)
    with pytest.raises(AudioError, match="must be after start"):
        load_audio(path, start=0.5, end=0.5)


def test_very_short_silent_and_non_finite_files(tmp_path):
    one = tmp_path / "one.wav"
    soundfile.write(one, np.array([0.1], dtype=np.float32), 8000, subtype="FLOAT")
    assert load_audio(one, sample_rate=None).samples.shape == (1,)  # one sample is a (tiny) result
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(8000, dtype=np.float32), 8000)
    assert not load_audio(silent).samples.any()  # silence is not an error
    bad = tmp_path / "nan.wav"
    soundfile.write(bad, np.array([0.1, np.nan, 0.2], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(bad)


def test_record_audio_checks_fields(tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(path, tone(3.0, 8000), 8000)
    audio = record_audio({"id": "x", "audio": "a.wav", "start": 1.0, "end": 2.0}, sample_rate=None, root=tmp_path)
    assert audio.duration == pytest.approx(1.0)
    with pytest.raises(RecordError, match="no 'audio' field"):
        record_audio({"id": "x"})
    with pytest.raises(RecordError, match="field 'start'"):
        record_audio({"id": "x", "audio": str(path), "start": "soon"})
    with pytest.raises(RecordError, match="field 'end'"):
        record_audio({"id": "x", "audio": str(path), "start": 2.0, "end": 1.0})
    with pytest.raises(AudioError, match="field 'audio'.*no such audio file"):
        record_audio({"id": "x", "audio": str(tmp_path / "nope.wav")})


def test_llark_crop_rule():
    assert llark_crop(12.0, "a") == (0.0, 12.0)
    assert llark_crop(59.9, "a") == (0.0, 25.0)
    crops = [llark_crop(200.0, f"track-{i}", seed=7) for i in range(2000)]
    assert set(crops) == {(30.0, 55.0), (0.0, 25.0)}
    late = sum(c == (30.0, 55.0) for c in crops) / len(crops)
    assert 0.77 < late < 0.83  # p = 0.8
    assert crops == [llark_crop(200.0, f"track-{i}", seed=7) for i in range(2000)]  # seeded, per track
    assert crops != [llark_crop(200.0, f"track-{i}", seed=8) for i in range(2000)]
    with pytest.raises(ValueError):
        llark_crop(0.0, "a")


def test_windows_cover_the_audio():
    assert windows(25.0, 10.0) == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    assert windows(25.0, 10.0, keep_last=False) == [(0.0, 10.0), (10.0, 20.0)]
    assert windows(20.0, 10.0, hop=5.0) == [(0.0, 10.0), (5.0, 15.0), (10.0, 20.0)]
    assert windows(4.0, 10.0) == [(0.0, 4.0)]


# --- streaming: the same samples, one block at a time ---------------------------------------------


def whole_span(path, sample_rate, start=0.0, end=None):
    """The span decoded the way load_audio did before it streamed: all of it at the file's rate."""
    import soxr

    with soundfile.SoundFile(str(path)) as handle:
        rate, total = handle.samplerate, handle.frames
        first = int(round(start * rate))
        last = total if end is None else min(total, int(round(end * rate)))
        handle.seek(first)
        samples = handle.read(last - first, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    return mono if sample_rate in (None, rate) else soxr.resample(mono, rate, sample_rate, quality="HQ")


@pytest.mark.parametrize("suffix, options", FORMATS, ids=["wav", "flac", "vorbis", "opus", "mp3"])
def test_streamed_decoding_gives_the_samples_of_whole_decoding(tmp_path, suffix, options):
    from mllm.core.audio import open_audio

    rate = 48000 if options.get("subtype") == "OPUS" else 44100
    path = tmp_path / f"noise.{suffix}"
    rng = np.random.default_rng(0)
    soundfile.write(path, (0.2 * rng.standard_normal((rate * 25 + 17, 2))).astype(np.float32), rate, **options)
    for sample_rate, start, end in [(22050, 0.0, None), (16000, 3.3, 21.7), (None, 1.0, None), (24000, 2.2, 99.0)]:
        stream = open_audio(path, sample_rate=sample_rate, start=start, end=end, block_seconds=2.0)
        blocks = list(stream)
        assert len(blocks) > 5  # it did stream
        streamed, whole = np.concatenate(blocks), whole_span(path, sample_rate, start, end)
        assert streamed.size == whole.size
        # Bit for bit, but for Opus's last samples: after the file's final 20 ms frame libsndfile
        # decodes them differently depending on how much is read at once, whole or in blocks.
        keep = whole.size - (int(0.05 * (sample_rate or rate)) if options.get("subtype") == "OPUS" else 0)
        assert np.array_equal(streamed[:keep], whole[:keep])
        assert stream.expected_samples == streamed.size  # the length the header promises (the cache relies on it)
        assert np.array_equal(load_audio(path, sample_rate=sample_rate, start=start, end=end).samples[:keep], streamed[:keep])


def test_audioread_reads_the_span_libsndfile_reads(tmp_path):
    from mllm.core.audio.decode import _AudioreadSource, _SoundfileSource

    path = tmp_path / "pcm16.wav"  # audioread's standard-library reader opens 16-bit WAV
    soundfile.write(path, tone(6.0, 8000, channels=2), 8000, subtype="PCM_16")
    for start, end in [(0.0, None), (2.5, 4.25), (5.0, 30.0)]:
        ours, theirs = _SoundfileSource(path, start, end), _AudioreadSource(path, start, end)
        try:
            assert np.array_equal(np.concatenate(list(theirs.blocks(1000))), np.concatenate(list(ours.blocks(1000))))
        finally:
            ours.close()
            theirs.close()


def test_a_span_over_the_bound_is_refused_before_decoding(tmp_path):
    from mllm.core.audio import AudioTooLong

    path = tmp_path / "ten.wav"
    soundfile.write(path, tone(10.0, 8000), 8000)
    with pytest.raises(AudioTooLong, match=r"10\.0 s long, over the bound of 6 s"):
        load_audio(path, longest=6.0)
    assert load_audio(path, start=2.0, end=8.0, longest=6.0).duration == pytest.approx(6.0)
    record = {"id": "x", "audio": str(path)}
    with pytest.raises(AudioTooLong, match=r"^field 'audio': .*at most 6 s"):
        record_audio(record, longest=6.0, purpose="the test")
    with pytest.raises(AudioTooLong, match=r"^field 'end': .*the test takes at most 6 s"):
        record_audio(dict(record, start=1.0, end=9.5), longest=6.0, purpose="the test")


@pytest.mark.parametrize("channels", range(1, 10))
def test_downmix_equals_numpy_mean_bit_for_bit(channels):
    from mllm.core.audio.decode import downmix

    rng = np.random.default_rng(channels)
    for dtype in (np.float32, np.float64):
        data = (rng.standard_normal((50_001, channels)) * 0.3).astype(dtype)
        mono = downmix(data)
        assert mono.dtype == dtype and mono.shape == (50_001,)
        assert np.array_equal(mono, data.mean(axis=1))
