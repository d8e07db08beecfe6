"""Two choices of the madmom backend measured: meter 2 in the bar tracker, and --workers scaling.

    python benchmarks/madmom_choices.py meter CORPUS.jsonl [MORE.jsonl ...]   # labelled and/or unlabelled manifests
    python benchmarks/madmom_choices.py workers MANIFEST.jsonl --repeat 2     # 1 vs 2 workers, alternating

`meter`: for each record, madmom's downbeat activation once (the backend's own code path), then
`DBNDownBeatTrackingProcessor` with beats_per_bar [3, 4] (the backend's) and [2, 3, 4], each
turned into meter and downbeats as the backend does (`meter_and_downbeats`). Where a record has
`labels.meter` / `labels.downbeats` (an `mllm synth` corpus: 6/8 is labelled 2 beats per bar, at
the dotted quarter) meter accuracy and downbeat F-measure (mir_eval, 70 ms) are printed per
label meter; for records without labels, how often each choice says 2, 3 or 4 and how often the
two agree.

`workers`: the whole command `mllm extract-features MANIFEST --backend madmom --sample-rate 44100
--workers N --threads 1` for N = 1 and 2, alternating (1, 2, 1, 2, ...) so that both see the same
machine load; wall seconds, CPU seconds (the children's, workers included) and x real time per
core (audio seconds / CPU seconds) and per wall second. On a machine shared with other jobs the
wall-clock ratio is only indicative; run it alone for the real figure.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mllm.core.audio import record_audio  # noqa: E402
from mllm.core.io.records import read_records  # noqa: E402
from mllm.core.metrics import beats as beat_metrics  # noqa: E402

BAR_CHOICES = {"3,4": [3, 4], "2,3,4": [2, 3, 4]}


def meter(manifests: list[str]) -> None:
    from mllm.core.features import madmom_backend as mb
    from mllm.core.features.madmom_networks import run_processor
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    madmom = mb.processors()
    trackers = {name: DBNDownBeatTrackingProcessor(beats_per_bar=bars, fps=mb.FRAMES_PER_SECOND) for name, bars in BAR_CHOICES.items()}
    labelled = collections.defaultdict(lambda: collections.defaultdict(list))  # label meter -> choice -> [(right, F)]
    unlabelled = collections.defaultdict(collections.Counter)
    agree = [0, 0]
    for manifest in manifests:
        for record in read_records(manifest):
            audio = record_audio(record, sample_rate=mb.MADMOM_SAMPLE_RATE)
            signal = mb.to_madmom_signal(audio.samples, audio.sample_rate)
            beats = np.asarray(madmom["beats"](run_processor(madmom["beat_activation"], signal)), dtype=float)
            activation = run_processor(madmom["bar_activation"], signal)
            results = {}
            for name, tracker in trackers.items():
                bars = np.asarray(tracker(activation), dtype=float).reshape(-1, 2)
                results[name] = mb.meter_and_downbeats(bars, beats)
            labels = record.get("labels") or {}
            if labels.get("meter"):
                for name, (value, downbeats) in results.items():
                    f = beat_metrics.evaluate(np.array(labels["downbeats"]), downbeats)["f_measure"] if labels.get("downbeats") else float("nan")
                    labelled[labels["meter"]][name].append((value == labels["meter"], f))
            else:
                for name, (value, _) in results.items():
                    unlabelled[name][value] += 1
                agree[0] += results["3,4"][0] == results["2,3,4"][0]
                agree[1] += 1
    if labelled:
        print("| label meter | n | " + " | ".join(f"meter acc / downbeat F, [{c}]" for c in BAR_CHOICES) + " |")
        print("| --- | ---: |" + " ---: |" * len(BAR_CHOICES))
        everything = collections.defaultdict(list)
        for label in sorted(labelled):
            cells = []
            for name in BAR_CHOICES:
                rows = labelled[label][name]
                everything[name] += rows
                cells.append(f"{np.mean([r for r, _ in rows]):.3f} / {np.nanmean([f for _, f in rows]):.3f}")
            print(f"| {label} | {len(labelled[label][next(iter(BAR_CHOICES))])} | " + " | ".join(cells) + " |")
        cells = [f"{np.mean([r for r, _ in everything[n]]):.3f} / {np.nanmean([f for _, f in everything[n]]):.3f}" for n in BAR_CHOICES]
        print(f"| all | {len(everything[next(iter(BAR_CHOICES))])} | " + " | ".join(cells) + " |")
    if agree[1]:
        for name in BAR_CHOICES:
            print(f"unlabelled, [{name}]: meters {dict(sorted(unlabelled[name].items(), key=str))}")
        print(f"unlabelled: the two choices agree on {agree[0]} of {agree[1]}")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def workers(manifest: str, repeat: int, counts: list[int]) -> None:
    seconds = sum(float(r["end"]) - float(r.get("start") or 0.0) for r in read_records(manifest))
    runs = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="mllm-madmom-workers-") as scratch:
        for _ in range(repeat):
            for n in counts:
                out = Path(scratch) / f"out{n}.jsonl"
                command = [sys.executable, "-m", "mllm.cli", "extract-features", manifest, "--backend", "madmom", "--sample-rate",
                           "44100", "--workers", str(n), "--threads", "1", "--overwrite", "-o", str(out)]
                load = os.getloadavg()[0]
                before, wall = children_cpu(), time.perf_counter()
                subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
                runs[n].append((time.perf_counter() - wall, children_cpu() - before, load))
                print(f"--workers {n}: {runs[n][-1][0]:.1f} s wall, {runs[n][-1][1]:.1f} s CPU (load before {load:.1f})", file=sys.stderr)
            same = [Path(scratch, f"out{n}.jsonl").read_bytes() for n in counts]
            assert all(s == same[0] for s in same), "the outputs differ between worker counts"
    print(f"{manifest}: {seconds:.0f} s of audio; runs alternate between worker counts; outputs identical")
    print("| --workers | runs | wall s (each) | CPU s (each) | x real time per core | x real time (wall) | load before |")
    print("| ---: | ---: | --- | --- | ---: | ---: | --- |")
    for n in counts:
        walls, cpus, loads = zip(*runs[n])
        print(f"| {n} | {len(walls)} | {', '.join(f'{w:.1f}' for w in walls)} | {', '.join(f'{c:.1f}' for c in cpus)} | "
              f"{seconds / np.median(cpus):.1f} | {seconds / np.median(walls):.1f} | {', '.join(f'{x:.1f}' for x in loads)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    meter_parser = commands.add_parser("meter", help="bar tracker with meters [3, 4] vs [2, 3, 4]")
    meter_parser.add_argument("manifests", nargs="+")
    workers_parser = commands.add_parser("workers", help="the whole command with 1 vs 2 workers")
    workers_parser.add_argument("manifest")
    workers_parser.add_argument("--repeat", type=int, default=2)
    workers_parser.add_argument("--counts", default="1,2", help="worker counts, comma-separated")
    args = parser.parse_args()
    if args.command == "meter":
        meter(args.manifests)
    else:
        workers(args.manifest, args.repeat, [int(n) for n in args.counts.split(",")])


if __name__ == "__main__":
    main()
