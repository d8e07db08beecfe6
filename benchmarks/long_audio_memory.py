"""Peak memory of `mllm extract-features` and `mllm encode` on long audio: whole decoding vs streaming.

For each duration (5, 20 and 60 minutes by default) and each command, two fresh processes analyse
or encode the same file and report their peak RSS (`ru_maxrss`):

- whole: the old way, the span decoded whole first (soundfile at the file's rate and channels,
  averaged to mono, soxr to the analysis rate, as `load_audio` did before streaming), then the
  analysis (`librosa` backend `analyse(samples)`) or the encoder (`embed_clips`) on all of it;
- streamed: what the commands run now, `extract.analyse_record(record)` and
  `encode.encode_records([record])`: decoded, analysed or encoded and pooled block by block.

Both must give the same result (the script compares the features and the embeddings), so the
ratio is memory for nothing. Commands: `features` (extract-features, librosa backend), `dsp`
(encode, the 39-column DSP encoder), `whisper` (encode, a Whisper-base-width encoder: d_model 512,
80 mels, 30 s windows, 2 layers, random weights: memory depends on widths, not on training) and
`hubert` (encode, a small HuBERT: no window, so the whole span goes in one call; the streamed
path refuses spans over 10 minutes with an error record, shown as "refused").

The audio: ten 60 s `mllm synth` pieces resampled to 44.1 kHz stereo 16-bit WAV (a CD-like source,
so decoding at the file's rate and channels costs what it costs on real collections) and
concatenated to each duration, written under --workdir (default /tmp/mllm-long-audio).

    python benchmarks/long_audio_memory.py                                    # everything (~20 min on 2 cores)
    python benchmarks/long_audio_memory.py --minutes 5 20 --commands features dsp

Run it alone with OMP_NUM_THREADS=1 (the figures are memory, but other jobs slow it down).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COMMANDS = ("features", "dsp", "whisper", "hubert")
SOURCE_RATE = 44100


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


# --- the audio ---------------------------------------------------------------------------------
def make_audio(workdir: Path, minutes: list[int]) -> dict[int, Path]:
    import soundfile
    import soxr

    pieces = workdir / "pieces"
    if not (pieces / "manifest.jsonl").exists():
        subprocess.run(
            [str(Path(sys.executable).with_name("mllm")), "synth", str(pieces), "--n", "10", "--seconds", "60", "--seed", "3", "--no-stdout"],
            check=True, stderr=subprocess.DEVNULL,
        )
    paths = {}
    clips = None
    for count in minutes:
        path = workdir / f"long-{count}min.wav"
        paths[count] = path
        if path.exists():
            continue
        if clips is None:
            clips = [soxr.resample(soundfile.read(p, dtype="float32")[0], 22050, SOURCE_RATE) for p in sorted((pieces / "audio").glob("*.wav"))]
        with soundfile.SoundFile(path, "w", SOURCE_RATE, 2, "PCM_16") as out:
            for i in range(count):
                clip = clips[i % len(clips)]
                out.write(np.stack([clip, 0.9 * clip], axis=1))
    return paths


def build_models(workdir: Path) -> dict[str, Path]:
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor, WhisperConfig, WhisperFeatureExtractor, WhisperModel

    folders = {"whisper": workdir / "whisper-base-width", "hubert": workdir / "hubert-small"}
    if not (folders["whisper"] / "config.json").exists():
        torch.manual_seed(0)
        config = WhisperConfig(
            num_mel_bins=80, d_model=512, encoder_layers=2, decoder_layers=1, encoder_attention_heads=8,
            decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_source_positions=1500,
            max_target_positions=16, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        )
        WhisperModel(config).save_pretrained(folders["whisper"])
        WhisperFeatureExtractor(feature_size=80).save_pretrained(folders["whisper"])
    if not (folders["hubert"] / "config.json").exists():
        torch.manual_seed(1)
        config = HubertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, conv_dim=(64,) * 7)
        HubertModel(config).save_pretrained(folders["hubert"])
        Wav2Vec2FeatureExtractor().save_pretrained(folders["hubert"])
    return folders


# --- one measurement (a child process) -----------------------------------------------------------
def whole_decode(path: str, sample_rate: int) -> np.ndarray:
    """The span decoded as load_audio did before streaming: all of it at the file's rate first."""
    import soundfile
    import soxr

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    del samples
    if not np.isfinite(mono).all():
        raise ValueError("NaN")
    return np.ascontiguousarray(soxr.resample(mono, rate, sample_rate, quality="HQ"), dtype=np.float32)


def child(mode: str, command: str, path: str, model: str | None) -> dict:
    from threadpoolctl import threadpool_limits

    record = {"id": Path(path).stem, "audio": path}
    if command == "features":
        from mllm.core.features.backend import get_backend
        from mllm.core.features.extract import DEFAULT_SAMPLE_RATE, analyse_record

        backend = get_backend("librosa")
        baseline, started = peak_mb(), time.perf_counter()
        if mode == "whole":
            samples = whole_decode(path, DEFAULT_SAMPLE_RATE)
            with threadpool_limits(1):
                result = backend.analyse(samples, DEFAULT_SAMPLE_RATE)
        else:
            result = analyse_record(record)["features"]
        digest = hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()[:16]
        return {"peak_mb": peak_mb(), "baseline_mb": baseline, "seconds": time.perf_counter() - started, "result": digest,
                "beats": len(result["beats"])}
    from mllm.core.encoders import EncodeOptions, embed_clips, encode_records, load_encoder

    encoder = load_encoder("dsp" if command == "dsp" else model, device="cpu")
    baseline, started = peak_mb(), time.perf_counter()
    if mode == "whole":
        embedding = embed_clips(encoder, [whole_decode(path, encoder.sample_rate)], frame_rate=10.0, batch_size=8)[0]
        if isinstance(embedding, Exception):
            raise embedding
    else:
        out = list(encode_records([record], encoder, EncodeOptions(frame_rate=10.0, store_dtype="float32")))[0]
        if "error" in out:
            return {"peak_mb": peak_mb(), "baseline_mb": baseline, "seconds": time.perf_counter() - started,
                    "refused": out["error"]["type"], "message": out["error"]["message"]}
        embedding = out["audio_embedding"]
    return {"peak_mb": peak_mb(), "baseline_mb": baseline, "seconds": time.perf_counter() - started,
            "result": hashlib.sha256(np.ascontiguousarray(embedding, dtype=np.float32).tobytes()).hexdigest()[:16],
            "shape": list(embedding.shape)}


def run_child(mode: str, command: str, path: Path, model: Path | None) -> dict:
    args = [sys.executable, __file__, "--child", mode, command, str(path)] + ([str(model)] if model else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[5, 20, 60])
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mllm-long-audio"))
    parser.add_argument("--hubert-whole-up-to", type=int, default=20, help="minutes: skip the whole-decoding HuBERT run above this (its attention is quadratic)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    paths = make_audio(args.workdir, args.minutes)
    models = build_models(args.workdir) if {"whisper", "hubert"} & set(args.commands) else {}
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}; audio: 44.1 kHz stereo 16-bit WAV", file=sys.stderr)
    header = f"{'command':10} {'minutes':>7} | {'whole: peak MB':>14} {'s':>6} | {'streamed: peak MB':>17} {'s':>6} | {'ratio':>6} | same result"
    print(header)
    print("-" * len(header))
    for command in args.commands:
        for minutes in args.minutes:
            model = models.get(command)
            skip_whole = command == "hubert" and minutes > args.hubert_whole_up_to
            whole = {"failed": "skipped"} if skip_whole else run_child("whole", command, paths[minutes], model)
            streamed = run_child("streamed", command, paths[minutes], model)

            def cell(result: dict) -> str:
                if "failed" in result:
                    return f"{result['failed'][:24]:>24}"
                return f"{result['peak_mb']:14.0f} {result['seconds']:6.1f}"

            if "refused" in streamed:
                right, ratio, same = f"{'refused':>10} {streamed['peak_mb']:6.0f} {streamed['seconds']:6.1f}", "-", streamed["refused"]
            else:
                right = cell(streamed).rjust(24)
                ok = "peak_mb" in whole and "peak_mb" in streamed
                ratio = f"{whole['peak_mb'] / streamed['peak_mb']:6.2f}" if ok else "-"
                same = str(whole.get("result") == streamed.get("result")) if ok else "-"
            print(f"{command:10} {minutes:7d} | {cell(whole).rjust(21)} | {right} | {ratio:>6} | {same}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, command, path = sys.argv[2:5]
        print(json.dumps(child(mode, command, path, sys.argv[5] if len(sys.argv) > 5 else None)))
    else:
        main()
