"""Audio encoders: DSP features and Hugging Face models, pooled in time to a chosen frame rate.

    from mllm.core.encoders import EncodeOptions, EmbeddingCache, embed_clips, encode_records, load_encoder
    encoder = load_encoder("dsp")                          # or a hub id / local folder, layer=..., device=...
    embeddings = embed_clips(encoder, [samples], frame_rate=10)   # [ceil(seconds * 10), D] per clip

registry.py (names -> encoders, layers), dsp.py (librosa features), huggingface.py (Whisper, CLAP,
AST, wav2vec2-style), windows.py (long audio, batches), pooling.py (mean pooling to a frame rate),
cache.py (embeddings on disk), encode.py (records in, records out), for_model.py (the encoder a
MusicLLM checkpoint names: its records checked, or encoded on the fly). Decisions: docs/encoders.md.
"""

from mllm.core.encoders.cache import EmbeddingCache, file_sha256
from mllm.core.encoders.encode import EncodeOptions, encode_records
from mllm.core.encoders.pooling import frame_count, pool_frames
from mllm.core.encoders.registry import Encoder, EncoderError, layer_label, load_encoder, parse_layer
from mllm.core.encoders.windows import embed_clips, encode_clips

__all__ = [
    "EmbeddingCache", "EncodeOptions", "Encoder", "EncoderError", "embed_clips", "encode_clips", "encode_records",
    "file_sha256", "frame_count", "layer_label", "load_encoder", "parse_layer", "pool_frames",
]
