"""Throughput of `mllm encode`'s batched path against a plain one-clip-at-a-time loop, and its memory.

No pretrained weights can be downloaded here, so the model is built from a config with random
weights (the speed of a forward pass does not depend on the values of the weights):

- `--family hubert` (default): a small HuBERT (hidden 384, 6 layers, 6 heads, FFN 1536, a 7-layer
  convolutional front end of 256 channels), about 12 M parameters;
- `--family whisper`: a Whisper-base-sized encoder (d_model 512, 6 layers, 8 heads, FFN 2048,
  80 mels, 30 s windows), about 20 M parameters in the encoder.

Both paths embed the same clips with the same weights, layer (-1) and pooling (10 Hz):
- loop: what one writes with transformers directly: per clip, the feature extractor, the model
  with `output_hidden_states=True` under `torch.inference_mode()`, the last hidden state, then a
  mean over each 100 ms;
- batched: `mllm.core.encoders.embed_clips(encoder, clips, frame_rate=10, batch_size=B)`.
The script checks that both give the same embeddings, then prints clips/s for each and the ratio
(goal >= 3x on CPU). Memory: `encode_records` over N and 4N records read from JSONL (wav files on
disk, written to a JSONL output), each in a fresh process, printing the peak RSS (goal: flat).

    python benchmarks/encode_throughput.py                        # HuBERT, 64 clips of 4 s, batch 16
    python benchmarks/encode_throughput.py --family whisper --clips 32 --seconds 10
    python benchmarks/encode_throughput.py --bfloat16                # also the batched path in bfloat16

On a CPU the result depends on the load: with two threads and another process on one of the two
cores, every parallel region of a batch-of-one pass waits for the preempted thread, which
batching amortises. Run it alone and report the load average it prints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def build_model(family: str, folder: Path) -> Path:
    torch.manual_seed(0)
    if family == "hubert":
        from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

        config = HubertConfig(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536, conv_dim=(256,) * 7
        )
        model, extractor = HubertModel(config), Wav2Vec2FeatureExtractor()
    else:
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

        config = WhisperConfig(
            num_mel_bins=80, d_model=512, encoder_layers=6, decoder_layers=1, encoder_attention_heads=8,
            decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_source_positions=1500,
            vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        )
        model, extractor = WhisperModel(config), WhisperFeatureExtractor(feature_size=80)
    model.eval().save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def make_clips(count: int, seconds: float, rate: int = 16000) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    return [
        (0.2 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
        for _ in range(count)
    ]


def plain_loop(family: str, folder: Path, clips: list[np.ndarray]) -> list[np.ndarray]:
    """One clip at a time, the way the transformers documentation shows it."""
    from transformers import AutoFeatureExtractor, HubertModel, WhisperModel

    extractor = AutoFeatureExtractor.from_pretrained(folder)
    model = (HubertModel if family == "hubert" else WhisperModel).from_pretrained(folder).eval()
    run = model if family == "hubert" else model.encoder
    out = []
    with torch.inference_mode():
        for clip in clips:
            inputs = extractor(clip, sampling_rate=16000, return_tensors="pt")
            state = run(**inputs, output_hidden_states=True).last_hidden_state[0].numpy()
            frames = min(len(state), math.ceil(len(clip) / 16000 * 50))
            state = state[:frames]
            # mean over each 100 ms (5 frames at 50 Hz)
            out.append(np.stack([state[k : k + 5].mean(axis=0) for k in range(0, frames, 5)]))
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process since the last `reset_peak_rss` (Linux VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start the peak over (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def memory_run(folder: str, count: int, seconds: float, batch_size: int) -> None:
    """Encode `count` records from files through encode_records into a JSONL file; print peak RSS."""
    import soundfile

    from mllm.core.encoders import EncodeOptions, encode_records, load_encoder
    from mllm.core.io.records import RecordWriter, read_records

    encoder = load_encoder(folder, device="cpu")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        clip = make_clips(1, seconds)[0]
        with open(work / "in.jsonl", "w") as handle:
            for i in range(count):
                path = work / f"{i}.wav"
                soundfile.write(path, np.roll(clip, i * 160), 16000)
                handle.write(json.dumps({"id": str(i), "audio": str(path)}) + "\n")
        reset_peak_rss()
        before = peak_rss_mb()  # the model is loaded: from here on only encoding adds memory
        start = time.perf_counter()
        with RecordWriter(work / "out.jsonl") as writer:
            for record in encode_records(read_records(work / "in.jsonl"), encoder, EncodeOptions(batch_size=batch_size)):
                writer.write(record)
        elapsed = time.perf_counter() - start
    print(json.dumps({"records": count, "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_mb": round(before, 1), "seconds": round(elapsed, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=("hubert", "whisper"), default="hubert")
    parser.add_argument("--clips", type=int, default=64, help="clips for the throughput comparison (N)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--memory-clips", type=int, default=64, help="N of the memory check (runs N and 4N; 0: skip)")
    parser.add_argument("--bfloat16", action="store_true", help="also time the batched path in bfloat16")
    parser.add_argument("--memory-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_run:
        memory_run(args.model, args.memory_run, args.seconds, args.batch_size)
        return

    from mllm.core.encoders import embed_clips, load_encoder

    with tempfile.TemporaryDirectory() as work:
        folder = build_model(args.family, Path(work) / args.family)
        parameters = sum(p.numel() for p in load_encoder(str(folder), device="cpu").model.parameters())
        clips = make_clips(args.clips, args.seconds)
        print(f"{args.family}: {parameters / 1e6:.1f} M parameters in the encoder; {args.clips} clips of {args.seconds:g} s; "
              f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}", flush=True)

        plain_loop(args.family, folder, clips[:1])  # warm-up
        start = time.perf_counter()
        reference = plain_loop(args.family, folder, clips)
        loop_seconds = time.perf_counter() - start

        encoder = load_encoder(str(folder), device="cpu")
        embed_clips(encoder, clips[:1], frame_rate=10)  # warm-up
        start = time.perf_counter()
        batched = embed_clips(encoder, clips, frame_rate=10, batch_size=args.batch_size)
        batched_seconds = time.perf_counter() - start
        difference = max(float(np.abs(a - b).max()) for a, b in zip(batched, reference))

        print(f"plain loop:        {args.clips / loop_seconds:7.2f} clips/s ({loop_seconds:.1f} s)")
        print(f"batched (B={args.batch_size}):  {args.clips / batched_seconds:7.2f} clips/s ({batched_seconds:.1f} s)")
        print(f"ratio:             {loop_seconds / batched_seconds:7.2f}x   (max |difference| of the embeddings {difference:.2e})", flush=True)
        if args.bfloat16:
            half = load_encoder(str(folder), device="cpu", dtype="bfloat16")
            embed_clips(half, clips[:1], frame_rate=10)
            start = time.perf_counter()
            low = embed_clips(half, clips, frame_rate=10, batch_size=args.batch_size)
            half_seconds = time.perf_counter() - start
            relative = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(low, reference))
            print(f"batched bfloat16:  {args.clips / half_seconds:7.2f} clips/s ({half_seconds:.1f} s), "
                  f"{loop_seconds / half_seconds:.2f}x the float32 loop (max difference {relative:.1%} of the largest value)", flush=True)

        rows = []
        for count in (args.memory_clips, 4 * args.memory_clips) if args.memory_clips else ():
            result = subprocess.run(
                [sys.executable, __file__, "--memory-run", str(count), "--model", str(folder),
                 "--seconds", str(args.seconds), "--batch-size", str(args.batch_size)],
                capture_output=True, text=True, check=True,
            )
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"encode_records over {count:4d} records: peak RSS {rows[-1]['peak_rss_mb']:.0f} MB "
                  f"(after loading {rows[-1]['rss_before_mb']:.0f} MB), {count / rows[-1]['seconds']:.2f} records/s", flush=True)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
