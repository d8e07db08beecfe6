"""A two-stage pipeline on few cores: `mllm encode | mllm caption` against the two in turn.

Stages of a pipeline run at the same time on the same cores. With every stage sizing its torch,
BLAS and OpenMP pools to all the cores (torch's default), the pools spin-wait against each other;
mllm's thread rule (core/threads.py: a third of the cores for a process whose stdin or stdout is a
pipe, every core otherwise) is meant to keep the pipeline near the time of its stages run one
after the other. Three ways to run the same work, repeated in turn (A B C A B C ...):

    in turn   mllm encode clips.jsonl -o emb.jsonl; mllm caption emb.jsonl --model ckpt -o out.jsonl
    piped     mllm encode clips.jsonl | mllm caption - --model ckpt -o out.jsonl        (mllm's rule)
    piped, all cores   the same with MLLM_THREADS=<cores> for both stages (torch's default)

The work: `mllm synth` clips, the DSP encoder at 1 Hz, and a MusicLLM on SmolLM2-135M-Instruct
(the embedded default; random projector and adapter: the speed of generation does not depend on
the weights) answering with up to --max-new-tokens tokens. Prints each median wall time and the
ratios to "in turn" (1.0 = the pipeline costs what its stages cost one after the other; below 1 it
overlaps them). With --suite it also times the test suite (`pytest -x -q`) with the default
threads and with OMP_NUM_THREADS=1 (what `make test` sets), once each.

    python benchmarks/pipeline_threads.py                     # 48 clips of 6 s, 3 repeats
    python benchmarks/pipeline_threads.py --clips 96 --repeats 5 --suite

Run it alone: another process on the machine changes every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MLLM = [sys.executable, "-m", "mllm.cli"]


def run(command: list[str] | str, env: dict, shell: bool = False, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, shell=shell, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            executable="/bin/bash" if shell else None)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {command}\n{result.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - started


def build_checkpoint(folder: Path) -> Path:
    from mllm.core.model import LoraSettings, MusicLLM, save_checkpoint

    model = MusicLLM.build("smollm2", encoder={"name": "dsp", "dim": 39, "frame_rate": 1.0, "layer": None},
                           projector={"kind": "mlp"}, lora=LoraSettings(rank=8, alpha=16))
    return save_checkpoint(model, folder / "ckpt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--suite", action="store_true", help="also time the test suite, default threads vs 1")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                  "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                                  "MLLM_THREADS")}
    print(f"{cores} cores; load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="mllm-pipeline-") as tmp:
        folder = Path(tmp)
        subprocess.run([*MLLM, "synth", str(folder / "corpus"), "--n", str(args.clips), "--seconds", str(args.seconds),
                        "--no-stdout"], check=True, env=base_env, stderr=subprocess.DEVNULL)
        checkpoint = build_checkpoint(folder)
        clips = folder / "corpus" / "manifest.jsonl"
        encode = f"{' '.join(MLLM)} encode {clips} --encoder dsp --frame-rate 1"
        caption = f"{' '.join(MLLM)} caption - --model {checkpoint} --max-new-tokens {args.max_new_tokens} --batch-size 8"
        ways = {
            "in turn": (f"{encode} -o {folder}/emb.jsonl && {caption.replace(' - ', f' {folder}/emb.jsonl ')} "
                        f"-o {folder}/out.jsonl", base_env),
            "piped": (f"set -o pipefail; {encode} | {caption} -o {folder}/out.jsonl", base_env),
            "piped, all cores": (f"set -o pipefail; {encode} | {caption} -o {folder}/out.jsonl",
                                 {**base_env, "MLLM_THREADS": str(cores)}),
        }
        run(ways["in turn"][0], ways["in turn"][1], shell=True)  # warm-up: file caches, the LLM's safetensors
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, (command, env) in ways.items():
                times[name].append(run(command, env, shell=True))
        reference = statistics.median(times["in turn"])
        print(f"{args.clips} clips of {args.seconds:g} s, encode (dsp, 1 Hz) | caption (SmolLM2-135M, "
              f"{args.max_new_tokens} new tokens), {args.repeats} repeats, median wall time:")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:17s} {median:7.1f} s   x{median / reference:.2f} of in turn   "
                  f"(min {min(values):.1f}, max {max(values):.1f})")
    if args.suite:
        print("test suite (pytest -x -q), once each:")
        for name, env in (("default threads", base_env), ("OMP_NUM_THREADS=1", {**base_env, "OMP_NUM_THREADS": "1"})):
            seconds = run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"], env, cwd=ROOT)
            print(f"  {name:17s} {seconds:7.1f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
