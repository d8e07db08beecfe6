"""CPU time of the whole `mllm extract-features` process, this tree against another revision.

Issue 12's goal: the default backend at >= 100x real time per core for the whole command
(seconds of audio / CPU seconds of the process: start-up, imports and numba's cache loading
included). The script checks REV out into a temporary git worktree, runs
`extract-features --workers 1 --threads 1` on each JSONL under both trees with this virtualenv's
interpreter (the other tree put first on the import path as the `mllm` namespace), alternating
old and new, and prints per input the median user + sys CPU seconds of the child (os.wait4), x
real time per core and the ratio new / old. It also checks that both trees write the same
records (every field, every value): a start-up change must not change a feature.

    python benchmarks/features_startup.py ~/.cache/mllm/real-music/dev.jsonl one.jsonl
    python benchmarks/features_startup.py --old ef9dc80 --repeats 5 clips.jsonl

Audio seconds are the records' `features.duration`. One core per command (OMP_NUM_THREADS=1 and
--threads 1); the machine's load average is printed before and after, since a shared machine's
CPU time still drifts a few per cent with its neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import package_tree  # noqa: E402


def run(records: Path, output: Path, pythonpath: str | None) -> float:
    """CPU seconds (user + sys) of one `extract-features` process, which writes `output`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-c", "import sys; from mllm.cli.main import main; sys.argv[0] = 'mllm'; main()",
               "extract-features", str(records), "-o", str(output), "--overwrite", "--workers", "1", "--threads", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    error = process.stderr.read().decode()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"extract-features {records} failed:\n{error[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="JSONL files of records with `audio`")
    parser.add_argument("--old", default="ef9dc80", help="the revision to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        worktree = scratch_path / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.old],
                       check=True, capture_output=True)
        try:
            old_path = str(package_tree(worktree, scratch_path / "old-package"))
            for records in args.inputs:
                outputs = {name: scratch_path / f"{name}.jsonl" for name in ("old", "new")}
                trees = {"old": old_path, "new": None}
                for name in trees:  # warm-up: numba caches, the page cache
                    run(records, outputs[name], trees[name])
                seconds: dict[str, list[float]] = {"old": [], "new": []}
                for _ in range(args.repeats):
                    for name in trees:
                        seconds[name].append(run(records, outputs[name], trees[name]))
                old_records, new_records = read(outputs["old"]), read(outputs["new"])
                same = old_records == new_records
                audio = sum(r["features"]["duration"] for r in new_records if "features" in r)
                old_cpu, new_cpu = statistics.median(seconds["old"]), statistics.median(seconds["new"])
                print(f"{records} ({len(new_records)} records, {audio:.0f} s of audio): "
                      f"old {old_cpu:.2f} s CPU ({audio / old_cpu:.0f}x real time per core), "
                      f"new {new_cpu:.2f} s ({audio / new_cpu:.0f}x), new/old {new_cpu / old_cpu:.2f}; "
                      f"records identical: {same}")
                print(f"  old runs {[round(s, 2) for s in seconds['old']]}, new runs {[round(s, 2) for s in seconds['new']]}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
