"""Throughput of `mllm eval-mir` (key, tempo, regression) and `mllm eval-caption`.

Generates 100k records per task in a temporary folder, runs the real commands on them (one
process each, so one core), and prints records per second with the time split into the scoring
pass and the bootstrap intervals. The goal for eval-mir is >= 10,000 records/s on one core.

    python benchmarks/eval_throughput.py              # 100k records per task
    python benchmarks/eval_throughput.py --n 20000 --captions 10000   # quicker
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

TONICS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
KEY_PHRASES = [
    "The key of this song is {k}.",
    "It sounds like {k}",
    "{k}",
    "This piece is in {k}, with a bright feel.",
    "I can't tell the key.",
]
TEMPO_PHRASES = ["around {t} BPM", "The tempo is {t}.", "{t} beats per minute", "Tempo: {t} BPM (steady)", "It is quite fast."]
NUMBER_PHRASES = [
    "I would assign a {v} on the 1-9 scale",
    "Score: {v}/9",
    "On a scale from 1 to 9, I'd rate the arousal as {v}.",
    "{v}",
    "Hard to say.",
]
WORDS = "calm piano melody with soft strings and a slow steady beat bright synth lead energetic drums bass guitar".split()


def key_records(n: int, rng: random.Random):
    for i in range(n):
        ref = f"{rng.choice(TONICS)} {rng.choice(['major', 'minor'])}"
        est = ref if rng.random() < 0.5 else f"{rng.choice(TONICS)} {rng.choice(['major', 'minor'])}"
        yield {"id": f"k{i}", "task": "key", "response": rng.choice(KEY_PHRASES).format(k=est), "reference": ref}


def tempo_records(n: int, rng: random.Random):
    for i in range(n):
        ref = rng.uniform(60, 180)
        est = round(ref * rng.choice([1, 1, 2, 0.5, 1.1]))
        yield {"id": f"t{i}", "task": "tempo", "response": rng.choice(TEMPO_PHRASES).format(t=est), "reference": round(ref, 1)}


def regression_records(n: int, rng: random.Random):
    for i in range(n):
        ref = rng.uniform(1, 9)
        est = min(9, max(1, ref + rng.gauss(0, 1)))
        yield {"id": f"r{i}", "task": "arousal", "response": rng.choice(NUMBER_PHRASES).format(v=round(est, 1)), "reference": round(ref, 2)}


def caption_records(n: int, rng: random.Random):
    for i in range(n):
        ref = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        cand = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        yield {"id": f"c{i}", "response": cand, "reference": [ref]}


def write(path: Path, records) -> None:
    with open(path, "wb") as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")


def run(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak resident memory (MB) of one command in its own process."""
    one_core = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "mllm.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=one_core)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time and peak RSS
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: mllm {' '.join(args)}\n{stderr.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="records per eval-mir task")
    parser.add_argument("--captions", type=int, default=100_000, help="caption pairs")
    args = parser.parse_args()
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for task, generate in (("key", key_records), ("tempo", tempo_records), ("regression", regression_records)):
            path = folder / f"{task}.jsonl"
            write(path, generate(args.n, rng))
            scoring, _, _ = run(["eval-mir", str(path), "--bootstrap", "0", "-o", str(folder / "s.json")])
            total, cpu, rss = run(["eval-mir", str(path), "-o", str(folder / "s.json")])
            rows.append((f"eval-mir {task}", args.n, scoring, total, cpu, rss))
        # Memory as the input grows: the same task on a tenth of the records.
        small = folder / "key_small.jsonl"
        write(small, key_records(args.n // 10, rng))
        total, cpu, rss = run(["eval-mir", str(small), "-o", str(folder / "s.json")])
        rows.append(("eval-mir key (a tenth)", args.n // 10, float("nan"), total, cpu, rss))
        path = folder / "captions.jsonl"
        write(path, caption_records(args.captions, rng))
        for metrics in ("bleu,rouge,cider", "meteor"):
            total, cpu, rss = run(["eval-caption", str(path), "--metrics", metrics, "-o", str(folder / "c.json")])
            rows.append((f"eval-caption {metrics}", args.captions, float("nan"), total, cpu, rss))
    print(f"{'command':30} {'items':>8} {'no bootstrap':>13} {'with intervals':>15} {'CPU s':>7} {'items/s':>9} {'peak MB':>8} {'goal':>6}")
    for name, n, scoring, total, cpu, rss in rows:
        goal = 10_000 if name.startswith("eval-mir") and n == args.n else None
        rate = n / total
        verdict = "" if goal is None else ("ok" if rate >= goal else "MISSED")
        no_bootstrap = "-" if scoring != scoring else f"{scoring:.2f}s"
        print(f"{name:30} {n:>8} {no_bootstrap:>13} {total:>14.2f}s {cpu:>7.1f} {rate:>9.0f} {rss:>8.0f} {verdict:>6}")
    print("items/s = items / wall seconds with intervals (1000 bootstrap resamples), process start included;")
    print("one process per command, BLAS limited to one thread. eval-caption's METEOR runs METEOR 1.5 in a Java")
    print("child process: its CPU seconds and memory are counted in that row (and can exceed the wall time).")


if __name__ == "__main__":
    main()
