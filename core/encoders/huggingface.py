"""Hugging Face audio models as encoders, by hub id or local folder.

Families (chosen from the folder's `config.json` `model_type`):

    family     model types                         frames                          window
    whisper    whisper                             encoder states, 50 Hz           feature extractor's chunk (30 s)
    clap       clap, clap_audio_model              HTSAT stage, mean over freq     feature extractor's max_length_s (10 s)
    ast        audio-spectrogram-transformer       patches, mean over freq, 10 Hz  the patches that fit max_length (~10.1 s)
    waveform   any config with conv_kernel/        transformer states, 50 Hz       none (the clip's length)
               conv_stride: wav2vec2, hubert,
               wavlm, data2vec-audio, MERT...

Every model runs in eval mode under `torch.inference_mode()` with `output_hidden_states=True`;
`--layer` picks one hidden state or the mean of several (registry.py). Hidden state 0 is the input
embedding and -1 the model's final output (`last_hidden_state`, after any final norm).

Batched = one at a time. Whisper, AST and CLAP pad (or repeat) every clip to a fixed length in
their feature extractors whatever the batch, so a clip's frames do not depend on its batch.
wav2vec2-style models get each clip's feature-extractor output (normalised per clip), are padded
with zeros and given an attention mask when their convolutions use layer norm
(`feat_extract_norm="layer"`: padding then changes nothing); with group norm (wav2vec2-base,
HuBERT-base; read from the config) the normalisation runs over the whole padded input, so those
are batched only with clips of the same length (`equal_lengths_only`). CLAP's feature extractor marks a random clip
of each batch as "longer" (fusion) when none is; here no clip is, since windows never exceed 10 s.

Devices and precision: `--device auto` takes CUDA when torch sees it (the rank's `LOCAL_RANK`
under torchrun), else the CPU. `--dtype bfloat16` runs on CPUs and on GPUs that support it;
`float16` needs CUDA. The weights are loaded in float32 and then cast.

`trust_remote_code` is passed to transformers only when the user asks; a folder whose
`config.json` needs its own code (MERT's `auto_map`) fails with a message that says so.

Sources and weights (core/model/sources.py): the spec is resolved first - a missing path, or a
hub id offline and not in the local cache, is an EncoderError at once; a cached hub id is read
from its snapshot folder. Weights are loaded as safetensors only (`use_safetensors=True`); a local
folder holding only a pickle (pytorch_model.bin) or an unreadable model.safetensors is refused with
an EncoderError naming it. Records keep the spec as given in `encoder`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any

import numpy as np

from mllm.core.encoders.registry import Encoder, EncoderError, Layer

__all__ = ["load_huggingface_encoder", "resolve_device", "resolve_dtype"]

CODE_VERSION = 1  # bump when the way frames are read out of a model changes


def resolve_device(name: str):
    """`auto`, `cpu`, `cuda`, `cuda:N` -> torch.device; CUDA must be visible when asked for."""
    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EncoderError(f"--device must be cpu, cuda, cuda:N or auto, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EncoderError("--device cuda: torch sees no CUDA device here; use --device cpu (or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def resolve_dtype(name: str, device):
    """float32 | bfloat16 | float16 -> torch dtype, checked against the device."""
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise EncoderError(f"--dtype must be one of {', '.join(dtypes)}, got {name!r}")
    if name == "float16" and device.type != "cuda":
        raise EncoderError("--dtype float16 needs a CUDA device; on a CPU use bfloat16 or float32")
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise EncoderError("--dtype bfloat16: this GPU does not support bfloat16; use float16 or float32")
    return dtypes[name]


def _layer_indices(layer: Layer, count: int) -> list[int]:
    """Indices into a model's `count` hidden states for `layer` (not 'projection')."""
    if layer == "all":
        return list(range(count))
    if isinstance(layer, str):
        raise EncoderError(f"--layer {layer}: only CLAP models have a projection; use an integer, a list or 'all'")
    numbers = layer if isinstance(layer, tuple) else (layer,)
    for number in numbers:
        if not -count <= number < count:
            raise EncoderError(
                f"--layer {number}: this model has {count} hidden states "
                f"(0 = input embedding ... {count - 1} = last; negative numbers count from the end)"
            )
    indices = [n % count for n in numbers]
    if len(set(indices)) != len(indices):
        raise EncoderError(f"--layer names the same hidden state twice: {layer!r}")
    return indices


def _to_numpy(tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()


class HuggingFaceEncoder(Encoder):
    """What every family shares: loading, layers, device and dtype, the fingerprint.

    A family sets `family`, loads its model in `_load_model` and sets, in `_configure`, the
    sample rate, window, the frame rate and width of each hidden state; `_hidden_states` runs the
    model on a batch and returns every hidden state as `[B, T, D]` plus the frames each clip owns.
    """

    family = ""

    def __init__(self, spec: str, config: Any, *, layer: Layer, device, dtype, trust_remote_code: bool,
                 source: str | None = None):
        import torch
        from safetensors import SafetensorError
        from transformers import AutoFeatureExtractor

        source = source or spec  # what from_pretrained reads: a folder, a cached snapshot or the hub id
        self.name = spec
        self.config = config
        self.device = device
        self.dtype = dtype
        self.trust_remote_code = trust_remote_code
        try:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(source, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise EncoderError(f"{spec}: cannot load its feature extractor (preprocessor_config.json): {exc}") from None
        try:
            self.model = self._load_model(source)
        except (OSError, SafetensorError) as exc:  # a hub repo without safetensors, a corrupt download
            raise EncoderError(f"{spec}: cannot load its weights ({exc}); mllm loads safetensors only") from None
        self.model.eval()
        self.model.to(device=device, dtype=dtype)
        self._torch = torch
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.layer_dims: list[int] = []
        self.layer_rates: list[float] = []
        self._configure()
        self.layer = layer
        self._set_layer(layer)
        self._fingerprint: str | None = None

    # --- family hooks -------------------------------------------------------------------------
    def _load_model(self, source: str):
        """The model read from `source` with `use_safetensors=True`."""
        raise NotImplementedError

    def _configure(self) -> None:
        raise NotImplementedError

    def _hidden_states(self, clips: list[np.ndarray]) -> tuple[list[Any], list[int] | None]:
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    def _set_layer(self, layer: Layer) -> None:
        self.indices = _layer_indices(layer, len(self.layer_dims))
        dims = {self.layer_dims[i] for i in self.indices}
        rates = {self.layer_rates[i] for i in self.indices}
        if len(dims) > 1 or len(rates) > 1:
            raise EncoderError(
                f"--layer {layer}: these hidden states differ in width {sorted(dims)} or frame rate "
                f"{sorted(rates)} and cannot be averaged; choose states of the same stage size"
            )
        self.dim = dims.pop()
        self.native_frame_rate = rates.pop()

    def _inputs(self, features: dict[str, Any]) -> dict[str, Any]:
        """Feature-extractor tensors moved to the device; floating ones cast to the model's dtype."""
        out = {}
        for key, value in features.items():
            if not isinstance(value, self._torch.Tensor):
                value = self._torch.as_tensor(np.asarray(value))
            if value.is_floating_point():
                value = value.to(self.dtype)
            out[key] = value.to(self.device)
        return out

    def _run(self, inputs: dict[str, Any]) -> list[Any]:
        """Every hidden state of the model on `inputs`; the last one is the model's final output."""
        out = self.model(**self._inputs(inputs), output_hidden_states=True)
        hidden = list(out.hidden_states)
        hidden[-1] = out.last_hidden_state
        return hidden

    def _run_extracted(self, clips: list[np.ndarray], name: str) -> list[Any]:
        """`_run` on the feature extractor's `name` tensor of the whole batch (it pads every clip alike)."""
        features = self.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        return self._run({name: features[name]})

    def _select(self, hidden: list[Any]):
        """Mean of the chosen hidden states, `[B, T, D]`, in float32."""
        chosen = [hidden[i].float() for i in self.indices]
        return chosen[0] if len(chosen) == 1 else self._torch.stack(chosen).mean(dim=0)

    def encode_batch(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        with self._torch.inference_mode():
            hidden, lengths = self._hidden_states(clips)
            frames = _to_numpy(self._select(hidden))
        if lengths is None:
            return [frames[i] for i in range(len(clips))]
        return [frames[i, : lengths[i]] for i in range(len(clips))]

    @property
    def fingerprint(self) -> str:
        """sha256 of the family, transformers' minor version, config (not its path), feature extractor,
        dtype, window and every weight (computed once, when first asked)."""
        if self._fingerprint is None:
            import transformers

            config = self.config.to_dict()
            config.pop("_name_or_path", None)  # where the folder is does not change the numbers
            config.pop("transformers_version", None)
            digest = hashlib.sha256()
            for part in (
                f"hf:{self.family}:v{CODE_VERSION}:transformers{'.'.join(transformers.__version__.split('.')[:2])}",
                json.dumps(config, sort_keys=True, default=str),
                self.feature_extractor.to_json_string(),
                str(self.dtype),
                repr(self.window_seconds),
            ):
                digest.update(part.encode())
                digest.update(b"\x00")
            for name, tensor in sorted(self.model.state_dict().items()):
                digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
                data = tensor.detach().to("cpu").contiguous().reshape(-1)
                digest.update(data.view(self._torch.uint8).numpy())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


class WhisperEncoder(HuggingFaceEncoder):
    """Whisper's encoder (the decoder is dropped). Every window is padded to the feature
    extractor's chunk (30 s for the released models), as Whisper was trained."""

    family = "whisper"

    def _load_model(self, source: str):
        from transformers import WhisperModel

        return WhisperModel.from_pretrained(source, use_safetensors=True).get_encoder()

    def _configure(self) -> None:
        extractor, config = self.feature_extractor, self.config
        if extractor.nb_max_frames != 2 * config.max_source_positions or extractor.feature_size != config.num_mel_bins:
            raise EncoderError(
                f"{self.name}: the feature extractor ({extractor.nb_max_frames} frames x {extractor.feature_size} mels) "
                f"does not match the model ({2 * config.max_source_positions} frames x {config.num_mel_bins} mels)"
            )
        self.window_seconds = float(extractor.chunk_length)
        rate = self.sample_rate / (2 * extractor.hop_length)  # the second convolution has stride 2
        self.layer_dims = [config.d_model] * (config.encoder_layers + 1)
        self.layer_rates = [rate] * len(self.layer_dims)

    def _hidden_states(self, clips):
        return self._run_extracted(clips, "input_features"), None


class WaveformEncoder(HuggingFaceEncoder):
    """wav2vec2-style models on raw samples: wav2vec2, HuBERT, WavLM, data2vec-audio, MERT."""

    family = "waveform"

    def _load_model(self, source: str):
        from transformers import AutoModel

        return AutoModel.from_pretrained(source, trust_remote_code=self.trust_remote_code, use_safetensors=True)

    def _configure(self) -> None:
        config = self.config
        self.kernels, self.strides = list(config.conv_kernel), list(config.conv_stride)
        receptive = 1
        for kernel, stride in zip(reversed(self.kernels), reversed(self.strides)):
            receptive = (receptive - 1) * stride + kernel
        self.min_samples = receptive
        self.window_seconds = None
        self.masks_padding = getattr(config, "feat_extract_norm", "group") == "layer"
        self.equal_lengths_only = not self.masks_padding
        rate = self.sample_rate / math.prod(self.strides)
        self.layer_dims = [config.hidden_size] * (config.num_hidden_layers + 1)
        self.layer_rates = [rate] * len(self.layer_dims)

    def frames_for(self, samples: int) -> int:
        """Frames the convolutional front end makes of `samples` samples."""
        for kernel, stride in zip(self.kernels, self.strides):
            samples = (samples - kernel) // stride + 1
        return samples

    def _hidden_states(self, clips):
        values = [
            np.asarray(self.feature_extractor(clip, sampling_rate=self.sample_rate, return_tensors="np")["input_values"][0], dtype=np.float32)
            for clip in clips
        ]
        longest = max(len(v) for v in values)
        batch = np.zeros((len(values), longest), dtype=np.float32)
        mask = np.zeros((len(values), longest), dtype=np.int64)
        for row, value in enumerate(values):
            batch[row, : len(value)] = value
            mask[row, : len(value)] = 1
        inputs = {"input_values": batch}
        if self.masks_padding:
            inputs["attention_mask"] = mask
        return self._run(inputs), [self.frames_for(len(v)) for v in values]


class AstEncoder(HuggingFaceEncoder):
    """The Audio Spectrogram Transformer: patch tokens (the two class tokens dropped) arranged as
    frequency x time and averaged over frequency, one frame per `time_stride` fbank frames (10 Hz)."""

    family = "ast"
    FRAME_SHIFT = 0.01  # seconds between the fbank frames of ASTFeatureExtractor

    def _load_model(self, source: str):
        from transformers import AutoModel

        return AutoModel.from_pretrained(source, use_safetensors=True)

    def _configure(self) -> None:
        config, extractor = self.config, self.feature_extractor
        if extractor.max_length != config.max_length or extractor.num_mel_bins != config.num_mel_bins:
            raise EncoderError(
                f"{self.name}: the feature extractor ({extractor.max_length} frames x {extractor.num_mel_bins} mels) "
                f"does not match the model ({config.max_length} x {config.num_mel_bins})"
            )
        self.freq_patches = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
        self.time_patches = (config.max_length - config.patch_size) // config.time_stride + 1
        rate = 1.0 / (self.FRAME_SHIFT * config.time_stride)
        self.window_seconds = self.time_patches / rate  # every patch of the window starts inside it
        self.min_samples = int(round(0.025 * self.sample_rate))  # one 25 ms fbank frame
        self.layer_dims = [config.hidden_size] * (config.num_hidden_layers + 1)
        self.layer_rates = [rate] * len(self.layer_dims)

    def _hidden_states(self, clips):
        grids = []
        for state in self._run_extracted(clips, "input_values"):
            batch, _, width = state.shape
            patches = state[:, 2:].reshape(batch, self.freq_patches, self.time_patches, width)  # [B, F, T, D]
            grids.append(patches.mean(dim=1))
        return grids, None


class ClapEncoder(HuggingFaceEncoder):
    """CLAP's audio tower (HTSAT). Hidden state 0 is the patch embedding and 1..S the Swin stages,
    each unfolded back to time (HTSAT stacks four time chunks along the frequency axis) and
    averaged over frequency; -1 is the final normalised state. `projection` is the joint
    audio-text embedding of `get_audio_features`: one vector per 10 s window."""

    family = "clap"

    def _load_model(self, source: str):
        from transformers import ClapAudioModel, ClapModel

        if self.config.model_type == "clap":
            model = ClapModel.from_pretrained(source, use_safetensors=True)
            model.text_model = None  # only the audio tower and its projection are used
            model.text_projection = None
            self.audio_config = self.config.audio_config
            return model
        self.audio_config = self.config
        return ClapAudioModel.from_pretrained(source, use_safetensors=True)

    def _configure(self) -> None:
        config, extractor = self.audio_config, self.feature_extractor
        self.window_seconds = float(extractor.max_length_s)
        self.freq_ratio = config.spec_size // config.num_mel_bins
        stages = len(config.depths)
        grid = config.spec_size // config.patch_stride[1] if isinstance(config.patch_stride, (list, tuple)) else config.spec_size // config.patch_stride
        self.layer_dims = [config.patch_embeds_hidden_size * 2 ** min(i, stages - 1) for i in range(stages + 1)]
        steps = [grid // 2 ** min(i, stages - 1) * self.freq_ratio for i in range(stages + 1)]
        self.layer_rates = [n / self.window_seconds for n in steps]
        self.truncation = "fusion" if config.enable_fusion else "rand_trunc"

    def _set_layer(self, layer: Layer) -> None:
        if layer == "projection":
            if self.config.model_type != "clap":
                raise EncoderError(f"--layer projection: {self.name} is an audio tower without the projection (a ClapModel has it)")
            self.indices = []
            self.dim = self.config.projection_dim
            self.native_frame_rate = 1.0 / self.window_seconds
            return
        super()._set_layer(layer)

    def _audio_model(self):
        return self.model.audio_model if self.config.model_type == "clap" else self.model

    def _unfold(self, image):
        """[B, C, H, W] with H = freq_ratio chunks x frequency -> [B, freq_ratio * W, C]."""
        batch, channels, height, steps = image.shape
        chunks = image.reshape(batch, channels, self.freq_ratio, height // self.freq_ratio, steps)
        return chunks.mean(dim=3).reshape(batch, channels, self.freq_ratio * steps).transpose(1, 2)

    def _hidden_states(self, clips):
        features = self.feature_extractor(
            clips, sampling_rate=self.sample_rate, return_tensors="pt", truncation=self.truncation, padding=self.feature_extractor.padding
        )
        inputs = self._inputs({"input_features": features["input_features"]})
        is_longer = self._torch.zeros((len(clips), 1), dtype=self._torch.bool, device=self.device)  # windows <= 10 s
        if self.layer == "projection":
            out = self.model.get_audio_features(input_features=inputs["input_features"], is_longer=is_longer)
            return [out.pooler_output[:, None, :]], None
        out = self._audio_model()(input_features=inputs["input_features"], is_longer=is_longer, output_hidden_states=True)
        hidden = [self._unfold(image) for image in out.hidden_states]
        hidden[-1] = out.last_hidden_state.mean(dim=2).transpose(1, 2)  # [B, C, F, T] -> [B, T, C]
        return hidden, None

    def _select(self, hidden):
        if self.layer == "projection":
            return hidden[0].float()
        return super()._select(hidden)


FAMILIES = {"whisper": WhisperEncoder, "clap": ClapEncoder, "clap_audio_model": ClapEncoder, "audio-spectrogram-transformer": AstEncoder}


def _family_of(spec: str, config: Any) -> type[HuggingFaceEncoder]:
    if config.model_type in FAMILIES:
        return FAMILIES[config.model_type]
    if hasattr(config, "conv_kernel") and hasattr(config, "conv_stride") and hasattr(config, "hidden_size"):
        return WaveformEncoder
    raise EncoderError(
        f"{spec}: model type {config.model_type!r} is not supported; mllm encode reads Whisper, CLAP, AST and "
        "wav2vec2-style models (wav2vec2, HuBERT, WavLM, data2vec-audio, MERT)"
    )


def load_huggingface_encoder(spec: str, *, layer: Layer, device: str, dtype: str, trust_remote_code: bool) -> HuggingFaceEncoder:
    """The encoder of the model at `spec` (a local folder or a hub id); see the module docstring."""
    from transformers import AutoConfig

    from mllm.core.model.sources import ModelSourceError, check_weights, resolve_model

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    try:
        source = resolve_model(spec, option="encoder")
    except ModelSourceError as exc:
        raise EncoderError(str(exc)) from None
    local = os.path.isdir(source)
    if local and not os.path.isfile(os.path.join(source, "config.json")):
        raise EncoderError(f"{source} has no config.json: not a Hugging Face model folder")
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc) or "custom code" in str(exc):
            raise EncoderError(
                f"{spec}: this model ships its own Python code (config.json auto_map); "
                "pass --trust-remote-code if you trust it"
            ) from None
        raise EncoderError(f"{spec}: cannot read its config.json: {exc}") from None
    except OSError as exc:
        raise EncoderError(
            f"{spec}: not a DSP encoder, not a local model folder, and the Hugging Face hub does not give it ({exc})"
        ) from None
    family = _family_of(spec, config)
    if local:
        try:
            check_weights(source)
        except ModelSourceError as exc:
            raise EncoderError(str(exc)) from None
    return family(spec, config, layer=layer, device=torch_device, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                  source=source)
