"""Hugging Face encoders: tiny random models of each family, saved to a folder and loaded by path.

Each family's frames are checked against the transformers model run directly on the same clip,
then: shapes at the asked frame rate, layer choice and averages, batched = one at a time, long
audio in windows, remote code only when trusted, bfloat16 on CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import encoder_models
from mllm.core.encoders import EncoderError, embed_clips, encode_clips, load_encoder

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    made = {family: str(encoder_models.build(family, root / family)) for family in encoder_models.FAMILIES}
    made["clap-audio"] = str(encoder_models.clap(root / "clap-audio", audio_only=True))
    made["clap-fusion"] = str(encoder_models.clap(root / "clap-fusion", fusion=True))
    made["remote"] = str(encoder_models.remote_code_hubert(root / "remote"))
    return made


def noise(seconds, rate):
    return (0.1 * RNG.standard_normal(int(round(seconds * rate)))).astype(np.float32)


def tone(seconds, rate, freq=440.0):
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- frames equal the model run directly ---------------------------------------------------------


def reference(folder, model_class):
    """The feature extractor and model of `folder` loaded with transformers alone."""
    import transformers

    return transformers.AutoFeatureExtractor.from_pretrained(folder), getattr(transformers, model_class).from_pretrained(folder).eval()


def test_whisper_frames_are_the_encoder_states(folders):
    clip = noise(1.3, 16000)
    frames = encode_clips(load_encoder(folders["whisper"], device="cpu"), [clip])[0].frames
    extractor, model = reference(folders["whisper"], "WhisperModel")
    with torch.no_grad():
        direct = model.encoder(extractor(clip, sampling_rate=16000, return_tensors="pt").input_features).last_hidden_state[0]
    assert frames.shape == (math.ceil(1.3 * 50), 32)
    assert np.allclose(frames, direct[: len(frames)].numpy(), atol=1e-5)


def test_hubert_frames_are_the_model_states(folders):
    clip = noise(1.0, 16000)
    frames = encode_clips(load_encoder(folders["hubert"], layer="2", device="cpu"), [clip])[0].frames
    extractor, model = reference(folders["hubert"], "HubertModel")
    with torch.no_grad():
        out = model(extractor(clip, sampling_rate=16000, return_tensors="pt").input_values, output_hidden_states=True)
    assert frames.shape == (49, 32)  # (16000 - 400) // 320 + 1
    assert np.allclose(frames, out.hidden_states[2][0].numpy(), atol=1e-5)


def test_ast_frames_are_patches_averaged_over_frequency(folders):
    clip = noise(1.0, 16000)
    frames = encode_clips(load_encoder(folders["ast"], device="cpu"), [clip])[0].frames
    extractor, model = reference(folders["ast"], "ASTModel")
    with torch.no_grad():
        states = model(extractor(clip, sampling_rate=16000, return_tensors="pt").input_values).last_hidden_state[0]
    patches = states[2:].reshape(3, 19, 32).mean(dim=0)  # 3 frequency x 19 time patches
    assert frames.shape == (10, 32)  # patches every 0.1 s that start inside the second
    assert np.allclose(frames, patches[:10].numpy(), atol=1e-5)


def test_clap_projection_is_get_audio_features(folders):
    clip = noise(3.0, 48000)
    encoder = load_encoder(folders["clap"], layer="projection", device="cpu")
    pooled = embed_clips(encoder, [clip], frame_rate=2)[0]
    extractor, model = reference(folders["clap"], "ClapModel")
    with torch.no_grad():
        direct = model.get_audio_features(**extractor(clip, sampling_rate=48000, return_tensors="pt")).pooler_output[0]
    assert pooled.shape == (6, 16)
    assert np.allclose(pooled, direct.numpy()[None, :], atol=1e-5)  # one vector per 10 s window, repeated
    assert np.linalg.norm(pooled[0]) == pytest.approx(1.0, abs=1e-4)


def test_clap_last_state_is_time_resolved(folders):
    clip = noise(2.0, 48000)
    frames = encode_clips(load_encoder(folders["clap-audio"], device="cpu"), [clip])[0].frames
    extractor, model = reference(folders["clap-audio"], "ClapAudioModel")
    with torch.no_grad():
        state = model(**extractor(clip, sampling_rate=48000, return_tensors="pt")).last_hidden_state[0]  # [C, F, T]
    assert frames.shape == (math.ceil(2.0 * 12.8), 32)  # 128 steps per 10 s window
    assert np.allclose(frames, state.mean(dim=1).T[: len(frames)].numpy(), atol=1e-5)
    # Stages are unfolded into time the way HTSAT unfolds its last one: check on the last stage.
    with torch.no_grad():
        out = model(**extractor(clip, sampling_rate=48000, return_tensors="pt"), output_hidden_states=True)
        image = out.hidden_states[-1]  # [1, C, H, W] before the final norm
        normed = model.audio_encoder.norm(image.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    unfolded = load_encoder(folders["clap-audio"], device="cpu")._unfold(normed)[0]
    assert np.allclose(unfolded.numpy(), state.mean(dim=1).T.numpy(), atol=1e-5)
    with pytest.raises(EncoderError, match="projection"):
        load_encoder(folders["clap-audio"], layer="projection", device="cpu")


# --- shapes, layers, batching, windows --------------------------------------------------------------

FAMILIES = ("whisper", "hubert", "wav2vec2", "wav2vec2-layer-norm", "ast", "clap")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("frame_rate", [10.0, 4.0, 0.0])
def test_shape_follows_the_frame_rate(folders, family, frame_rate):
    encoder = load_encoder(folders[family], device="cpu")
    durations = (1.0, 2.35, 0.33)
    results = embed_clips(encoder, [noise(d, encoder.sample_rate) for d in durations], frame_rate=frame_rate)
    for duration, result in zip(durations, results):
        expected = 1 if frame_rate == 0 else math.ceil(duration * frame_rate - 1e-6)
        assert result.shape == (expected, encoder.dim) and result.dtype == np.float32
        assert np.isfinite(result).all()


@pytest.mark.parametrize("family", ["whisper", "hubert", "ast", "clap"])
def test_layers_differ_and_all_is_their_mean(folders, family):
    clip = noise(1.2, load_encoder(folders[family], device="cpu").sample_rate)

    def frames(layer):
        return encode_clips(load_encoder(folders[family], layer=layer, device="cpu"), [clip])[0].frames

    first, last = frames("1" if family == "clap" else "0"), frames("-1")  # CLAP's state 0 is narrower
    count = {"whisper": 3, "hubert": 4, "ast": 3, "clap": 3}[family]
    assert not np.allclose(first, last, atol=1e-3)
    if family == "clap":  # stages differ in width: the two last stages can be averaged
        assert np.allclose(frames("1,2"), (frames("1") + frames("2")) / 2, atol=1e-5)
        with pytest.raises(EncoderError, match="width"):
            load_encoder(folders[family], layer="all", device="cpu")
        return
    every = [frames(str(i)) for i in range(count)]
    assert np.allclose(frames("all"), np.mean(every, axis=0), atol=1e-5)
    assert np.allclose(frames("0,1"), (every[0] + every[1]) / 2, atol=1e-5)
    assert np.allclose(frames(str(count - 1)), last)
    with pytest.raises(EncoderError, match=f"{count} hidden states"):
        load_encoder(folders[family], layer=str(count), device="cpu")


@pytest.mark.parametrize("family", [*FAMILIES, "clap-fusion"])
def test_batched_equals_one_at_a_time(folders, family):
    encoder = load_encoder(folders[family], device="cpu", layer="-1" if family.startswith("clap") else "all")
    rate = encoder.sample_rate
    clips = [noise(1.0, rate), tone(0.45, rate), noise(1.7, rate), noise(1.0, rate), tone(0.8, rate, 220.0)]
    batched = embed_clips(encoder, clips, frame_rate=10, batch_size=4)
    alone = [embed_clips(encoder, [clip], frame_rate=10, batch_size=1)[0] for clip in clips]
    for a, b in zip(batched, alone):
        assert a.shape == b.shape
        assert np.allclose(a, b, atol=2e-5), float(np.abs(a - b).max())


def test_group_norm_models_batch_equal_lengths_only(folders):
    group = load_encoder(folders["wav2vec2"], device="cpu")
    layer = load_encoder(folders["wav2vec2-layer-norm"], device="cpu")
    assert group.equal_lengths_only and not layer.equal_lengths_only
    long, short = noise(1.0, 16000), noise(0.5, 16000)
    # Why: padding a group-norm model's input changes the short clip's frames; with layer norm and a mask it does not.
    assert not np.allclose(group.encode_batch([long, short])[1], group.encode_batch([short])[0], atol=1e-3)
    assert np.allclose(layer.encode_batch([long, short])[1], layer.encode_batch([short])[0], atol=2e-5)
    calls = []
    for encoder in (group, layer):
        original = encoder.encode_batch
        encoder.encode_batch = lambda clips, original=original: calls.append(len(clips)) or original(clips)
        embed_clips(encoder, [long, short, noise(1.0, 16000)], frame_rate=10, batch_size=8)
    assert calls == [1, 2, 3]  # group norm: 0.5 s alone, the two 1 s clips together; layer norm: one batch


@pytest.mark.parametrize("family, window", [("whisper", 2.0), ("ast", 1.9), ("clap", 10.0)])
def test_long_audio_is_encoded_in_windows(folders, family, window):
    encoder = load_encoder(folders[family], device="cpu")
    assert encoder.window_seconds == pytest.approx(window)
    rate = encoder.sample_rate
    seconds = 2.5 * window
    clip = noise(seconds, rate)
    native = encode_clips(encoder, [clip])[0]
    first = encode_clips(encoder, [clip[: round(window * rate)]])[0].frames
    tail = encode_clips(encoder, [clip[2 * round(window * rate) :]])[0].frames
    assert native.times[-1] < seconds
    assert np.allclose(native.frames[: len(first)], first, atol=2e-5)
    assert np.allclose(native.frames[-len(tail) :], tail, atol=2e-5)
    assert embed_clips(encoder, [clip], frame_rate=10)[0].shape == (math.ceil(seconds * 10), encoder.dim)


def test_remote_code_runs_only_when_trusted(folders):
    with pytest.raises(EncoderError, match="--trust-remote-code"):
        load_encoder(folders["remote"], device="cpu")
    trusted = load_encoder(folders["remote"], device="cpu", trust_remote_code=True)
    assert type(trusted.model).__name__ == "TinyRemoteModel"
    clip = noise(0.8, 16000)
    plain = load_encoder(folders["hubert"], device="cpu")  # the same weights through transformers' own class
    assert np.allclose(trusted.encode_batch([clip])[0], plain.encode_batch([clip])[0], atol=1e-6)


def test_bfloat16_runs_on_cpu_and_float16_is_refused(folders):
    clip = noise(1.0, 16000)
    full = load_encoder(folders["hubert"], device="cpu").encode_batch([clip])[0]
    half = load_encoder(folders["hubert"], device="cpu", dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16
    low = half.encode_batch([clip])[0]
    assert low.dtype == np.float32 and not np.array_equal(low, full)
    assert np.abs(low - full).max() < 0.1 * np.abs(full).max()
    with pytest.raises(EncoderError, match="CUDA"):
        load_encoder(folders["hubert"], device="cpu", dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderError, match="no CUDA"):
            load_encoder(folders["hubert"], device="cuda")


def test_fingerprint_follows_weights_and_dtype(folders, tmp_path):
    a = load_encoder(folders["hubert"], device="cpu")
    assert a.fingerprint == load_encoder(folders["hubert"], device="cpu").fingerprint
    assert a.fingerprint != load_encoder(folders["hubert"], device="cpu", dtype="bfloat16").fingerprint
    copy = encoder_models.hubert(tmp_path / "copy")
    assert load_encoder(str(copy), device="cpu").fingerprint == a.fingerprint  # same weights elsewhere
    from transformers import HubertModel

    model = HubertModel.from_pretrained(copy)
    with torch.no_grad():
        model.encoder.layers[0].attention.q_proj.weight[0, 0] += 1e-3
    model.save_pretrained(copy)
    assert load_encoder(str(copy), device="cpu").fingerprint != a.fingerprint


def test_unusable_specs_say_why(folders, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying the network
    with pytest.raises(EncoderError, match="no such model folder"):
        load_encoder("./not-here", device="cpu")
    with pytest.raises(EncoderError, match="Hugging Face hub"):
        load_encoder("someone/no-such-model", device="cpu")
    from transformers import BertConfig

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(tmp_path / "bert")
    with pytest.raises(EncoderError, match="not supported"):
        load_encoder(str(tmp_path / "bert"), device="cpu")
