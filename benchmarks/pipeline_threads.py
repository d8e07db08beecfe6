"""Several mllm processes on few cores: a two-stage pipeline, and two trainings at once.

Stages of a pipeline run at the same time on the same cores, and so do jobs a researcher starts
side by side. torch's OpenMP pool has one thread per core, and idle OpenMP threads spin before
they sleep; with more busy threads than cores the spinning threads take the cores from the
working ones. mllm's rule (core/threads.py, docs/threads.md): idle OpenMP threads sleep
(OMP_WAIT_POLICY=PASSIVE unless set), and a command uses --threads, else $MLLM_THREADS, else
$OMP_NUM_THREADS, else every core. Each way below runs the same work; "before" is the same command
run by the code of another checkout (--before PATH: a folder holding mllm/cli and mllm/core, e.g.
links into a `git worktree` of the commit before the rule), i.e. torch's defaults.

Pipeline (repeated in turn, A B C D A B C D ...):

    in turn            mllm encode clips.jsonl -o emb.jsonl; mllm caption emb.jsonl --model ckpt -o out.jsonl
    piped              mllm encode clips.jsonl | mllm caption - --model ckpt -o out.jsonl   (the rule)
    piped, 1 thread    the same with MLLM_THREADS=1: one thread per stage
    piped, before      the same, run by the code before the rule (--before)

The work: `mllm synth` clips, encoded at 1 Hz by the DSP encoder (librosa/numpy, few threads) and by
a small HuBERT (12 M parameters, random weights, as in encode_throughput.py: a torch stage whose
pool meets caption's), then a MusicLLM on SmolLM2-135M-Instruct (the embedded default; random
projector and adapter: speed does not depend on the weights) answering with --max-new-tokens
tokens. Prints median wall times and the ratio to "in turn".

Two trainings at once: `mllm sft` on SmolLM2 (batch 8, --sft-steps steps), two runs started
together, now and before; prints the median seconds per step of each way and of one run alone.

    python benchmarks/pipeline_threads.py --before /tmp/oldpkg           # 32 clips of 6 s, 3 repeats
    python benchmarks/pipeline_threads.py --encoders dsp --repeats 5 --no-sft

Run it alone: another process on the machine changes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MLLM = f"{sys.executable} -m mllm.cli"
POOL_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                  "MLLM_THREADS", "OMP_WAIT_POLICY", "PYTHONPATH")


def run(command: str, env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, shell=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            executable="/bin/bash")
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {command}\n{result.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - started


def build_checkpoint(folder: Path, encoder: dict) -> Path:
    from mllm.core.model import LoraSettings, MusicLLM, save_checkpoint

    model = MusicLLM.build("smollm2", encoder=encoder, projector={"kind": "mlp"}, lora=LoraSettings(rank=8, alpha=16))
    return save_checkpoint(model, folder / f"ckpt-{Path(encoder['name']).name}")


def encoders(folder: Path, names: list[str]) -> dict[str, dict]:
    """The encoder spec of each pipeline: the DSP encoder, or a small HuBERT saved to `folder`."""
    specs = {}
    for name in names:
        if name == "dsp":
            specs[name] = {"name": "dsp", "dim": 39, "frame_rate": 1.0, "layer": None}
        elif name == "hubert":
            sys.path.insert(0, str(Path(__file__).parent))
            from encode_throughput import build_model

            specs[name] = {"name": str(build_model("hubert", folder / "hubert")), "dim": 384, "frame_rate": 1.0,
                           "layer": -1}
        else:
            sys.exit(f"--encoders: dsp or hubert, not {name!r}")
    return specs


def pipelines(args, folder: Path, clips: Path, env: dict, before: dict | None) -> None:
    for encoder_name, spec in encoders(folder, args.encoders.split(",")).items():
        checkpoint = build_checkpoint(folder, spec)
        encode = f"{MLLM} encode {clips} --encoder {spec['name']} --frame-rate 1"
        caption = f"{MLLM} caption - --model {checkpoint} --max-new-tokens {args.max_new_tokens} --batch-size 8"
        # each run starts from no output (mllm refuses to write over one; the "before" tree has no --overwrite)
        clean = f"rm -f {folder}/out.jsonl {folder}/emb.jsonl"
        piped = f"set -o pipefail; {clean}; {encode} | {caption} -o {folder}/out.jsonl"
        ways = {
            "in turn": (f"{clean}; {encode} -o {folder}/emb.jsonl && {caption.replace(' - ', f' {folder}/emb.jsonl ')} "
                        f"-o {folder}/out.jsonl", env),
            "piped": (piped, env),
            "piped, 1 thread": (piped, {**env, "MLLM_THREADS": "1"}),
        }
        if before is not None:
            ways["piped, before"] = (piped, before)
        run(ways["in turn"][0], env)  # warm-up: file caches, the LLM's safetensors
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, (command, way_env) in ways.items():
                times[name].append(run(command, way_env))
        reference = statistics.median(times["in turn"])
        print(f"{args.clips} clips of {args.seconds:g} s, encode ({encoder_name}, 1 Hz) | caption (SmolLM2-135M, "
              f"{args.max_new_tokens} new tokens), {args.repeats} repeats, median wall time:", flush=True)
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:17s} {median:7.1f} s   x{median / reference:.2f} of in turn   "
                  f"(min {min(values):.1f}, max {max(values):.1f})", flush=True)


def trainings(args, folder: Path, clips: Path, env: dict, before: dict | None) -> None:
    instructions = folder / "instructions.jsonl"
    run(f"{MLLM} encode {clips} --frame-rate 1 | {MLLM} build-instructions --tasks key -o {instructions}", env)
    sft = f"{MLLM} sft {instructions} --steps {args.sft_steps} --batch-size 8 --no-bf16"

    def seconds_per_step(*logs: Path) -> float:
        return statistics.median(json.loads(line)["s_per_step"] for log in logs for line in log.read_text().splitlines())

    print(f"mllm sft (SmolLM2-135M, LoRA r=8, batch 8, {args.sft_steps} steps), median seconds per step:", flush=True)
    run(f"{sft} -o {folder}/alone > {folder}/alone.log", env)
    print(f"  one run alone        {seconds_per_step(folder / 'alone.log'):6.2f} s", flush=True)
    for name, way_env in (("two at once", env), ("two at once, before", before)):
        if way_env is None:
            continue
        run(f"rm -rf {folder}/a {folder}/b; {sft} -o {folder}/a > {folder}/a.log & {sft} -o {folder}/b > {folder}/b.log & wait",
            way_env)
        print(f"  {name:20s} {seconds_per_step(folder / 'a.log', folder / 'b.log'):6.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encoders", default="dsp,hubert", help="first stages to try: dsp, hubert (comma-separated)")
    parser.add_argument("--sft-steps", type=int, default=4)
    parser.add_argument("--no-sft", action="store_true", help="leave out the two trainings at once")
    parser.add_argument("--before", help="a folder holding mllm/cli and mllm/core of the code to compare with")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items() if k not in POOL_VARIABLES}  # what a user's shell has
    before = {**env, "PYTHONPATH": args.before} if args.before else None
    print(f"{cores} cores; load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="mllm-threads-") as tmp:
        folder = Path(tmp)
        run(f"{MLLM} synth {folder}/corpus --n {args.clips} --seconds {args.seconds} --no-stdout", env)
        clips = folder / "corpus" / "manifest.jsonl"
        pipelines(args, folder, clips, env, before)
        if not args.no_sft:
            trainings(args, folder, clips, env, before)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
