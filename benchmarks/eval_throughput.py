"""Throughput of `mllm eval-mir` (key, tempo, regression) and `mllm eval-caption`.

Generates 100k records per task in a temporary folder, runs the real commands on them (one
process each, so one core), and prints records per second with the time split into the scoring
pass and the bootstrap intervals. The goal for eval-mir is >= 10,000 records/s on one core.

    python benchmarks/eval_throughput.py              # 100k records per task
    python benchmarks/eval_throughput.py --n 20000    # quicker
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


def run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one command (its own process)."""
    start = time.perf_counter()
    before = os.times()
    one_core = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "mllm.cli", *args], capture_output=True, env=one_core)
    after = os.times()
    if result.returncode != 0:
        sys.exit(f"command failed: mllm {' '.join(args)}\n{result.stderr.decode()[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return time.perf_counter() - start, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="records per eval-mir task")
    parser.add_argument("--captions", type=int, default=10_000, help="caption pairs")
    args = parser.parse_args()
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for task, generate in (("key", key_records), ("tempo", tempo_records), ("regression", regression_records)):
            path = folder / f"{task}.jsonl"
            write(path, generate(args.n, rng))
            wall_scoring, cpu_scoring = run(["eval-mir", str(path), "--bootstrap", "0", "-o", str(folder / "s.json")])
            wall_all, cpu_all = run(["eval-mir", str(path), "-o", str(folder / "s.json")])
            rows.append((f"eval-mir {task}", args.n, wall_scoring, wall_all, cpu_all))
        path = folder / "captions.jsonl"
        write(path, caption_records(args.captions, rng))
        for metrics in ("bleu,rouge,cider", "meteor"):
            wall, cpu = run(["eval-caption", str(path), "--metrics", metrics, "-o", str(folder / "c.json")])
            rows.append((f"eval-caption {metrics}", args.captions, wall, wall, cpu))
    print(f"{'command':34} {'items':>8} {'no bootstrap':>14} {'with intervals':>15} {'items/s':>10} {'goal':>8}")
    for name, n, scoring, total, cpu in rows:
        goal = 10_000 if name.startswith("eval-mir") else None
        rate = n / total
        verdict = "" if goal is None else ("ok" if rate >= goal else "MISSED")
        print(f"{name:34} {n:>8} {scoring:>13.2f}s {total:>14.2f}s {rate:>10.0f} {verdict:>8}")
    print(f"(one process per command, so one core; CPU seconds of the last column: {rows[-1][4]:.1f})")


if __name__ == "__main__":
    main()
