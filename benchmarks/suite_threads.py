"""The test suite (or part of it) alone and beside a busy job, by thread settings.

`make test` is one pytest process that also starts `mllm` subprocesses; on a shared machine it runs
beside other jobs. The slow case of torch's defaults is more busy threads than cores with idle
OpenMP threads spinning (docs/threads.md). Ways, each timing `pytest -q SELECTION`:

    alone                       the defaults (every core; idle threads sleep: tests/conftest.py)
    alone, OMP_NUM_THREADS=1    one thread
    beside a job                the defaults, while an `mllm sft` (SmolLM2, batch 8) trains in a loop
    beside a job, spinning      the same with OMP_WAIT_POLICY=ACTIVE for both (idle threads spin:
                                an upper bound of torch's default, which spins for a shorter while)

    python benchmarks/suite_threads.py                          # tests/test_train_sft.py, 2 repeats
    python benchmarks/suite_threads.py --select tests --repeats 1   # the whole suite (~10 min a way)

Run it alone: another process on the machine changes every figure.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MLLM = f"{sys.executable} -m mllm.cli"
POOL_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                  "MLLM_THREADS", "OMP_WAIT_POLICY")


def timed_suite(selection: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"the suite failed ({result.returncode}):\n{result.stdout.decode(errors='replace')[-3000:]}")
    return time.perf_counter() - started


def busy_job(folder: Path, env: dict) -> subprocess.Popen:
    """`mllm sft` over and over until stopped (a new process group, so it can be stopped whole)."""
    sft = f"{MLLM} sft {folder}/instructions.jsonl --steps 1000 --batch-size 8 --no-bf16 --save-every 0"
    return subprocess.Popen(f"while true; do {sft} -o {folder}/busy >/dev/null 2>&1; rm -rf {folder}/busy; done",
                            shell=True, env=env, start_new_session=True, executable="/bin/bash")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--select", nargs="+", default=["tests/test_train_sft.py"], help="pytest arguments")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in POOL_VARIABLES}  # what a user's shell has
    spinning = {**env, "OMP_WAIT_POLICY": "ACTIVE"}
    ways = {"alone": (env, None), "alone, OMP_NUM_THREADS=1": ({**env, "OMP_NUM_THREADS": "1"}, None),
            "beside a job": (env, env), "beside a job, spinning": (spinning, spinning)}
    print(f"{len(os.sched_getaffinity(0))} cores; load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="mllm-suite-") as tmp:
        folder = Path(tmp)
        subprocess.run(f"{MLLM} synth {folder}/corpus --n 16 --seconds 2 --no-stdout && {MLLM} encode "
                       f"{folder}/corpus/manifest.jsonl --frame-rate 1 | {MLLM} build-instructions --tasks key "
                       f"-o {folder}/instructions.jsonl", shell=True, env=env, check=True, capture_output=True)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, (suite_env, job_env) in ways.items():
                job = busy_job(folder, job_env) if job_env is not None else None
                try:
                    if job is not None:
                        time.sleep(5)  # the job past its start-up, training
                    times[name].append(timed_suite(args.select, suite_env))
                finally:
                    if job is not None:
                        os.killpg(job.pid, signal.SIGKILL)
                        job.wait()
        reference = statistics.median(times["alone"])
        print(f"pytest -q {' '.join(args.select)}, {args.repeats} repeats, median wall time:", flush=True)
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:26s} {median:7.1f} s   x{median / reference:.2f} of alone   "
                  f"(min {min(values):.1f}, max {max(values):.1f})", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
