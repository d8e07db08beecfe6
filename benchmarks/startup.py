"""Start-up of `mllm`: `mllm --help` and `mllm eval-mir` on 100 records, this tree against another revision.

Issue 11's goal: `mllm --help` under 0.3 s and `mllm eval-mir` on 100 records under 1 s on an
idle core (a CI script or a quick one-off evaluation pays start-up once per stage). The script
checks REV out into a temporary git worktree, runs every command under both trees with the same
interpreter (this virtualenv; the other tree is put first on the import path as the `mllm`
namespace), alternating old and new, and prints the median wall seconds, the peak resident memory
of each process (os.wait4) and the ratio new / old. Run it alone on the machine.

    python benchmarks/startup.py                 # against 5db8c8c, the tree before the start-up work
    python benchmarks/startup.py --old 5db8c8c --repeats 7

The records are made up (100 per task: key, tempo, a numeric attribute, genre; plus 2 beat
answers), written to a temporary folder; one core per command (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = [f"{t} {m}" for t in ("C", "D", "Eb", "F#", "A", "Bb") for m in ("major", "minor")]
GENRES = ["rock", "jazz", "blues", "classical", "pop"]


def write_records(folder: Path) -> dict[str, Path]:
    """100 answers per task (and 2 of beats), in files named by task."""
    rng = random.Random(0)
    tasks = {
        "key": lambda i: {"task": "key", "response": f"The key is {rng.choice(KEYS)}.", "reference": rng.choice(KEYS)},
        "tempo": lambda i: {"task": "tempo", "response": f"About {rng.randint(60, 180)} BPM", "reference": 120.0},
        "energy": lambda i: {"task": "energy", "response": f"I would rate it {rng.randint(1, 9)} out of 9.",
                             "reference": float(rng.randint(1, 9)), "scale": [1, 9]},
        "genre": lambda i: {"task": "genre", "response": f"This sounds like {rng.choice(GENRES)}.",
                            "reference": rng.choice(GENRES)},
    }
    paths = {}
    for name, make in tasks.items():
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps({"id": f"{name}{i}", **make(i)}) + "\n" for i in range(100)))
    beats = [{"id": f"b{i}", "task": "beats", "response": "0.5s, 1.0s, 1.5s, 2.0s", "reference": [0.5, 1.0, 1.5, 2.0]}
             for i in range(2)]
    paths["beats (2)"] = folder / "beats.jsonl"
    paths["beats (2)"].write_text("".join(json.dumps(r) + "\n" for r in beats))
    return paths


def package_tree(source: Path, into: Path) -> Path:
    """A folder holding `mllm/cli` and `mllm/core` linked to `source`'s cli/ and core/."""
    (into / "mllm").mkdir(parents=True)
    (into / "mllm" / "cli").symlink_to(source / "cli")
    (into / "mllm" / "core").symlink_to(source / "core")
    return into


def timed(args: list[str], pythonpath: str | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `python -c main() ARGS` run to completion."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-c", "import sys; from mllm.cli.main import main; sys.argv[0] = 'mllm'; main()", *args]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode()
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {process.returncode}:\n{error[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default="5db8c8c", help="the revision to compare with (default: the last one before the start-up work)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command on each side")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tmp / "old"), options.old], check=True)
        try:
            old_path = str(package_tree(tmp / "old", tmp / "old-package"))
            records = write_records(tmp)
            commands = {"mllm --help": ["--help"], "mllm --version": ["--version"]}
            commands |= {f"eval-mir {name}": ["eval-mir", str(path)] for name, path in records.items()}
            for args in commands.values():  # warm-up: the page cache, numba's and Python's caches
                timed(args, old_path), timed(args, None)
            print(f"{'command':24} {'old s':>7} {'new s':>7} {'new/old':>8} {'old MB':>7} {'new MB':>7}", file=sys.stderr)
            for label, args in commands.items():
                old, new = [], []
                for _ in range(options.repeats):
                    old.append(timed(args, old_path))
                    new.append(timed(args, None))
                old_s, new_s = statistics.median(s for s, _ in old), statistics.median(s for s, _ in new)
                old_mb, new_mb = max(m for _, m in old), max(m for _, m in new)
                print(f"{label:24} {old_s:7.2f} {new_s:7.2f} {new_s / old_s:8.3f} {old_mb:7.0f} {new_mb:7.0f}",
                      file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "old")], check=False)
    print(f"median of {options.repeats} runs each, alternating; old = {options.old}, new = this tree; "
          f"one thread per process; {os.cpu_count()} cores", file=sys.stderr)


if __name__ == "__main__":
    main()
