"""The encoder registry: a DSP name, a Hugging Face hub id or a local folder -> an Encoder.

    encoder = load_encoder("dsp")                                   # librosa features, no weights
    encoder = load_encoder("openai/whisper-base", layer="-1")       # the Whisper encoder
    encoder = load_encoder("m-a-p/MERT-v1-95M", layer="all", trust_remote_code=True)
    frames = encoder.encode_batch([clip_a, clip_b])                 # [T_i, D] at encoder.native_frame_rate

An Encoder turns mono float32 clips at its `sample_rate` into frames `[T, D]` at its
`native_frame_rate` (one frame every 1/native_frame_rate seconds from the clip's start). It takes
at most `window_seconds` of audio per clip (None: any length); `windows.encode_clips` splits longer
audio and `pooling.pool_frames` brings the frames to the frame rate a study asks for.

Names: the DSP encoders (`dsp`, `chroma`, `onset`, `tempogram`, `loudness`, `centroid`, `logmel`,
or a `+`-joined list such as `chroma+onset+loudness`) need no weights. Anything else is a local
folder (when it exists) or a hub id, resolved by core/model/sources.py (a missing path, or a hub id
offline and not cached, fails at once) and read by `huggingface.load_huggingface_encoder`.

Layers (`--layer`), for encoders that have them:
    -1          the last hidden state (the model's final output); 0 is the input embedding
    6           one hidden state (negative counts from the end)
    4,5,6       the mean of several hidden states
    all         the mean of every hidden state the model returns (input embedding included)
    projection  CLAP only: the joint audio-text embedding, one vector per window
"""

from __future__ import annotations

import abc
from typing import Union

import numpy as np

__all__ = ["Encoder", "EncoderError", "Layer", "layer_label", "load_encoder", "parse_layer"]

# An int (one hidden state), a tuple (their mean), "all" or "projection".
Layer = Union[int, tuple[int, ...], str]
NAMED_LAYERS = ("all", "projection")


class EncoderError(ValueError):
    """An encoder cannot be loaded or used as asked; the message says why and what to do."""


class Encoder(abc.ABC):
    """Mono clips in, frames out. Subclasses set the attributes and implement `encode_batch`."""

    name: str  # what records carry in `encoder`: the DSP name, hub id or folder as given
    sample_rate: int  # clips must be mono float32 at this rate
    native_frame_rate: float  # frames per second of `encode_batch`'s output
    dim: int  # D
    window_seconds: float | None = None  # longest clip one call takes; None: any length
    min_samples: int = 1  # shorter clips are padded with zeros to this length
    equal_lengths_only: bool = False  # True when padding clips to a common length would change results
    layer: Layer | None = None  # the hidden state(s) chosen; None for encoders without layers

    @abc.abstractmethod
    def encode_batch(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        """Frames `[T_i, D]` (float32) of each clip; frame t starts at t / native_frame_rate seconds.

        A clip may yield frames past its own end (an encoder that pads its input to a fixed length
        returns all of them); callers keep the frames that start inside the clip.
        """

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever the encoder's numbers would: code version, weights, settings."""


def parse_layer(text: str | int | list[int] | None) -> Layer | None:
    """`--layer` text (or a record's `layer` label) -> Layer: "-1" -> -1, "4,5,6" -> (4, 5, 6),
    [4, 5, 6] -> (4, 5, 6), "all", "projection"; None stays None.

    >>> parse_layer("-2"), parse_layer("3, 4"), parse_layer("ALL"), parse_layer([1, 2])
    (-2, (3, 4), 'all', (1, 2))
    """
    if text is None or isinstance(text, int):
        return text
    value = ",".join(map(str, text)) if isinstance(text, (list, tuple)) else str(text).strip().lower()
    if value in NAMED_LAYERS:
        return value
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise EncoderError(
            f"--layer takes an integer (negative counts from the end), a comma-separated list of integers, "
            f"'all' or 'projection'; got {text!r}"
        ) from None
    if len(set(numbers)) != len(numbers):
        raise EncoderError(f"--layer lists a layer twice: {text!r}")
    return numbers[0] if len(numbers) == 1 else numbers


def layer_label(layer: Layer | None) -> int | list[int] | str | None:
    """The `layer` field written into records (JSON: an int, a list of ints, a string or null)."""
    return list(layer) if isinstance(layer, tuple) else layer


def load_encoder(
    spec: str,
    *,
    layer: str | Layer | None = None,
    device: str = "auto",
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> Encoder:
    """The encoder named by `spec`: a DSP name, a local folder or a hub id.

    `layer` applies to Hugging Face models (default -1, the last hidden state); DSP encoders have
    none. `device` is cpu, cuda, cuda:N or auto; `dtype` float32, bfloat16 or float16 (see
    huggingface.py for where each is allowed). `trust_remote_code` lets a model folder run its own
    Python code (MERT needs it); it is never turned on implicitly.
    """
    from mllm.core.encoders import dsp

    parsed = parse_layer(layer)
    if dsp.is_dsp_name(spec):
        if parsed is not None:
            raise EncoderError(f"the DSP encoder {spec!r} has no layers; leave out --layer")
        return dsp.DspEncoder(spec)
    from mllm.core.encoders.huggingface import load_huggingface_encoder

    return load_huggingface_encoder(
        spec, layer=-1 if parsed is None else parsed, device=device, dtype=dtype, trust_remote_code=trust_remote_code
    )
