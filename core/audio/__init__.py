"""Audio in: decode any file libsndfile or the installed decoders read, downmix, resample, crop.

    from mllm.core.audio import load_audio, record_audio, llark_crop
    audio = record_audio(record, sample_rate=22050)      # record["audio"], ["start"], ["end"]
    for block in record_audio_stream(record, sample_rate=22050):   # the same, block by block
        ...
    start, end = llark_crop(duration, key=record["id"], seed=0)
"""

from mllm.core.audio.crop import LLARK_CLIP_SECONDS, llark_crop, windows
from mllm.core.audio.decode import Audio, AudioError, AudioInfo, AudioStream, AudioTooLong, audio_info, load_audio, open_audio
from mllm.core.audio.records import record_audio, record_audio_stream, record_path, record_span

__all__ = [
    "Audio", "AudioError", "AudioInfo", "AudioStream", "AudioTooLong", "audio_info", "load_audio", "open_audio",
    "record_audio", "record_audio_stream", "record_path", "record_span",
    "llark_crop", "windows", "LLARK_CLIP_SECONDS",
]
