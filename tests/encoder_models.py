"""Tiny random Hugging Face audio models of each family, built from a config and saved to a folder.

No weights can be downloaded here, so tests (and benchmarks/encode_throughput.py) build models of
the real classes with small configs, `save_pretrained` them with their feature extractors, and
load them through the same path a user takes with a hub id: `load_encoder(folder)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

FAMILIES = ("whisper", "hubert", "wav2vec2", "wav2vec2-layer-norm", "ast", "clap")


def _save(model, extractor, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def whisper(folder: Path, *, layers: int = 2, width: int = 32, chunk_seconds: int = 2) -> Path:
    """Whisper with a 2 s chunk (100 frames at 50 Hz) instead of 30 s, so windows are cheap to test."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=chunk_seconds)
    config = WhisperConfig(
        num_mel_bins=16, d_model=width, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=2 * width, decoder_ffn_dim=2 * width,
        max_source_positions=extractor.nb_max_frames // 2, max_target_positions=16, vocab_size=64,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    torch.manual_seed(0)
    return _save(WhisperModel(config), extractor, folder)


def _waveform_config(config_class, **extra):
    return config_class(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **extra,
    )


def hubert(folder: Path) -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(1)
    return _save(HubertModel(_waveform_config(HubertConfig)), Wav2Vec2FeatureExtractor(), folder)


def wav2vec2(folder: Path, *, layer_norm: bool = False) -> Path:
    """wav2vec2 with group norm (like wav2vec2-base) or layer norm (like wav2vec2-large-lv60)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    extra = {"feat_extract_norm": "layer", "do_stable_layer_norm": True} if layer_norm else {}
    torch.manual_seed(2)
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=layer_norm)
    return _save(Wav2Vec2Model(_waveform_config(Wav2Vec2Config, **extra)), extractor, folder)


def ast(folder: Path, *, max_length: int = 200) -> Path:
    """AST over 200 fbank frames (19 patches in time, 1.9 s windows) and 16 mel bins."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    config = ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_length=max_length, num_mel_bins=32, patch_size=16, frequency_stride=8, time_stride=10,
    )
    torch.manual_seed(3)
    return _save(ASTModel(config), ASTFeatureExtractor(max_length=max_length, num_mel_bins=32), folder)


def clap(folder: Path, *, audio_only: bool = False, fusion: bool = False) -> Path:
    """CLAP (audio tower + a tiny text tower) with two Swin stages; 10 s windows at 48 kHz."""
    from transformers import ClapAudioConfig, ClapAudioModel, ClapConfig, ClapFeatureExtractor, ClapModel

    audio = dict(
        spec_size=256, num_mel_bins=64, window_size=8, hidden_size=32, patch_embeds_hidden_size=16,
        depths=[1, 1], num_attention_heads=[2, 2], projection_dim=16, enable_fusion=fusion,
    )
    extractor = ClapFeatureExtractor(truncation="fusion" if fusion else "rand_trunc")
    torch.manual_seed(4)
    if audio_only:
        return _save(ClapAudioModel(ClapAudioConfig(**audio)), extractor, folder)
    text = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, projection_dim=16)
    return _save(ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)), extractor, folder)


def remote_code_hubert(folder: Path) -> Path:
    """A HuBERT whose config.json names its own code (as MERT's does): loading needs trust_remote_code."""
    hubert(folder)
    (folder / "configuration_tiny.py").write_text(
        "from transformers import HubertConfig\n\n\nclass TinyRemoteConfig(HubertConfig):\n    model_type = 'tiny_remote_hubert'\n"
    )
    (folder / "modeling_tiny.py").write_text(
        "from transformers import HubertModel\n\nfrom .configuration_tiny import TinyRemoteConfig\n\n\n"
        "class TinyRemoteModel(HubertModel):\n    config_class = TinyRemoteConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "tiny_remote_hubert"
    config["architectures"] = ["TinyRemoteModel"]
    config["auto_map"] = {"AutoConfig": "configuration_tiny.TinyRemoteConfig", "AutoModel": "modeling_tiny.TinyRemoteModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def build(family: str, folder: Path) -> Path:
    if family == "wav2vec2-layer-norm":
        return wav2vec2(folder, layer_norm=True)
    return {"whisper": whisper, "hubert": hubert, "wav2vec2": wav2vec2, "ast": ast, "clap": clap}[family](folder)
