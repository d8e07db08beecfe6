"""Throughput of `mllm eval-mir` (key, tempo, regression) and `mllm eval-caption`, and of the
classification and tagging statistics with their bootstrap intervals.

Generates 100k records per task in a temporary folder, runs the real commands on them (one
process each, so one core), and prints records per second with the time split into the scoring
pass and the bootstrap intervals. The goal for eval-mir is >= 10,000 records/s on one core.

Classification and tagging are measured at the library level (this process, one BLAS thread):
the metrics with eval-mir's default bootstrap, three ways side by side:

* old: the sklearn report recomputed on every resample, one bootstrap per metric (what eval-mir's
  `task_statistics` did). Too slow to run in full: timed on --old-resamples resamples per metric
  and scaled to the full number (its cost is the same for every resample);
* per metric: core.metrics.classification.*_statistics, one bootstrap_interval per metric (the
  drop-in for the old lambdas);
* one pass: *_metrics_over_items, one bootstrap_intervals for all metrics (shared resamples).

    python benchmarks/eval_throughput.py              # 100k records per task
    python benchmarks/eval_throughput.py --n 20000 --captions 10000   # quicker
    python benchmarks/eval_throughput.py --only-labels                 # only the label statistics
    python benchmarks/eval_throughput.py --cli-labels 100000           # also eval-mir on such files
"""

from __future__ import annotations

import argparse
import os

# One core for the in-process measurements too (set before numpy is imported anywhere).
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import orjson  # noqa: E402

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


GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
# MTG-Jamendo's 56 mood/theme tags (gama's MTG_emotion file: 4,231 items)
MOODS = (
    "action adventure advertising background ballad calm children christmas commercial cool corporate dark deep "
    "documentary drama dramatic dream emotional energetic epic fast film fun funny game groovy happy heavy holiday "
    "hopeful inspiring love meditative melancholic melodic motivational movie nature party positive powerful "
    "relaxing retro romantic sad sexy slow soft soundscape space sport summer trailer travel upbeat uplifting"
).split()


def classification_records(n: int, rng: random.Random):
    for i in range(n):
        ref = rng.choice(GENRES)
        est = ref if rng.random() < 0.6 else rng.choice(GENRES)
        response = "I cannot tell." if rng.random() < 0.1 else f"The genre is {est}."
        yield {"id": f"g{i}", "task": "genre", "response": response, "reference": ref}


def tagging_records(n: int, rng: random.Random):
    for i in range(n):
        refs = rng.sample(MOODS, rng.choice([1, 1, 2, 3]))
        answer = [m for m in refs if rng.random() < 0.5] + rng.sample(MOODS, rng.choice([0, 1, 2]))
        yield {"id": f"m{i}", "task": "moods", "response": "Moods: " + ", ".join(answer or ["none"]) + ".", "reference": refs}


def write(path: Path, records) -> None:
    with open(path, "wb") as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")


# The command runs under a small Python parent that reports its child's CPU time and peak RSS: a
# child forked from this process would report at least this process's own resident memory at the
# fork (Linux carries the old address space's high-water mark across exec), and this process
# holds the generated records.
_MEASURE = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, usage.ru_maxrss)\n"
)


def run(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak resident memory (MB) of one command in its own process."""
    one_core = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    measured = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "mllm.cli", *args, "--overwrite"],
                              capture_output=True, env=one_core)
    wall = time.perf_counter() - start
    code, cpu, rss_kb = measured.stdout.split()
    if int(code) != 0:
        sys.exit(f"command failed: mllm {' '.join(args)}\n{measured.stderr.decode()[-2000:]}")
    return wall, float(cpu), int(rss_kb) / 1024


# ---------------------------------------------------------------- label statistics (library level)


def label_arrays(n: int, seed: int = 0):
    """Synthetic classification and tagging items like the CLI records above, as metric inputs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    refs = rng.choice(GENRES, n).tolist()
    ests = [None if rng.random() < 0.1 else (r if rng.random() < 0.6 else str(rng.choice(GENRES))) for r in refs]
    n_tags = len(MOODS)
    y_true = np.zeros((n, n_tags), dtype=int)
    for i, k in enumerate(rng.choice([1, 1, 2, 3], n)):
        y_true[i, rng.choice(n_tags, k, replace=False)] = 1
    # answers: half the true tags, plus about one wrong tag per item (an LLM naming tags in text)
    y_pred = ((y_true == 1) & (rng.random((n, n_tags)) < 0.5)) | (rng.random((n, n_tags)) < 1 / n_tags)
    y_score = np.round(np.clip(0.35 * y_true + 0.65 * rng.random((n, n_tags)), 0, 1), 3)  # scores (ties)
    return refs, ests, GENRES, y_true, y_pred.astype(int), y_score


def cpu_seconds(function) -> float:
    start = time.process_time()
    function()
    return time.process_time() - start


def _rowwise(function):
    """eval-mir's old lift of a per-index-vector metric (a report call per resample)."""
    import numpy as np

    def statistic(index):
        index = np.asarray(index)
        if index.ndim == 1:
            return np.asarray(function(index))
        flat = index.reshape(-1, index.shape[-1])
        return np.array([function(row) for row in flat]).reshape(index.shape[:-1])

    return statistic


def label_statistics_rows(sizes: list[int], n_resamples: int, old_resamples: int, old_max_n: int) -> list[tuple]:
    """(task, n, old s, per-metric s, one-pass s): CPU seconds of the metrics and their intervals.

    Each way computes every metric's value and its interval as eval-mir's _metric_entry does
    (value on all items, then the bootstrap with the default seed and confidence).
    """
    import numpy as np

    from mllm.core.metrics import classification as cl
    from mllm.core.metrics.bootstrap import bootstrap_interval, bootstrap_intervals

    rows = []
    for n in sizes:
        refs, ests, labels, y_true, y_pred, y_score = label_arrays(n)
        refs_a, ests_a = np.asarray(refs, dtype=object), np.asarray(ests, dtype=object)
        index = np.arange(n)
        tasks = {
            "classification": (
                cl.SINGLE_LABEL_METRICS,
                lambda i: cl.single_label_report(list(refs_a[i]), list(ests_a[i]), labels),
                lambda: cl.single_label_statistics(refs, ests, labels),
                lambda: cl.single_label_metrics_over_items(refs, ests, labels),
            ),
            "tagging (answers)": (
                cl.multilabel_metric_names(False),
                lambda i: cl.multilabel_report(y_true[i], y_pred[i]),
                lambda: cl.multilabel_statistics(y_true, y_pred),
                lambda: cl.multilabel_metrics_over_items(y_true, y_pred),
            ),
            "tagging (scores)": (
                cl.multilabel_metric_names(True),
                lambda i: cl.multilabel_report(y_true[i], y_pred[i], y_score[i]),
                lambda: cl.multilabel_statistics(y_true, y_pred, y_score),
                lambda: cl.multilabel_metrics_over_items(y_true, y_pred, y_score),
            ),
        }
        for task, (names, report, per_metric, one_pass) in tasks.items():
            old = float("nan")
            if old_resamples > 0 and n <= old_max_n:
                old_statistics = [_rowwise(lambda i, m=name: report(i)[m]) for name in names]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # sklearn's ill-defined-metric warnings
                    values = cpu_seconds(lambda: [statistic(index) for statistic in old_statistics])
                    intervals = cpu_seconds(lambda: [
                        bootstrap_interval(statistic, (index,), n_resamples=old_resamples) for statistic in old_statistics
                    ])
                old = values + intervals * n_resamples / old_resamples  # the bootstrap scaled to its full size

            def per_metric_way():
                for statistic in per_metric().values():
                    statistic(index)
                    bootstrap_interval(statistic, (index,), n_resamples=n_resamples)

            def one_pass_way():
                statistic = one_pass()
                statistic(index)
                bootstrap_intervals(statistic, (index,), n_resamples=n_resamples)

            rows.append((task, n, len(names), old, cpu_seconds(per_metric_way), cpu_seconds(one_pass_way)))
            print(f"  measured {task} at {n} items", file=sys.stderr, flush=True)
    return rows


def print_label_rows(rows: list[tuple], n_resamples: int, old_resamples: int) -> None:
    print(f"\nclassification/tagging metrics with intervals ({n_resamples} resamples), library level, one core:")
    print(f"{'task':20} {'items':>8} {'metrics':>7} {'old s':>9} {'per-metric s':>12} {'one-pass s':>10} "
          f"{'old it/s':>9} {'per-metric it/s':>15} {'one-pass it/s':>13} {'x per-metric':>12} {'x one-pass':>10} {'goal':>5}")
    for task, n, k, old, per_metric, one_pass in rows:
        old_rate = n / old if old == old else float("nan")
        verdict = "ok" if n / one_pass >= 10_000 else "MISSED"
        print(f"{task:20} {n:>8} {k:>7} {old:>9.1f} {per_metric:>12.2f} {one_pass:>10.2f} {old_rate:>9.1f} "
              f"{n / per_metric:>15.0f} {n / one_pass:>13.0f} {old / per_metric:>12.0f} {old / one_pass:>10.0f} {verdict:>5}")
    print("CPU seconds in this process (values and intervals of every metric); old = the sklearn report on every")
    print(f"resample, its bootstrap timed on {old_resamples} resamples per metric and scaled to {n_resamples}; x = old / new;")
    print("goal: one pass >= 10,000 items/s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="records per eval-mir task")
    parser.add_argument("--captions", type=int, default=100_000, help="caption pairs")
    parser.add_argument("--label-n", type=int, nargs="+", default=[4_231, 100_000],
                        help="items for the classification/tagging statistics (4,231: gama's MTG_emotion file)")
    parser.add_argument("--old-resamples", type=int, default=2,
                        help="resamples per metric the old way is timed on (0: skip it)")
    parser.add_argument("--old-max-n", type=int, default=10_000,
                        help="time the old way only up to this many items (its reports take seconds each at 100k)")
    parser.add_argument("--only-labels", action="store_true", help="only the classification/tagging statistics")
    parser.add_argument("--cli-labels", type=int, default=0,
                        help="also run eval-mir on classification and tagging files of this many records")
    args = parser.parse_args()
    from mllm.core.evaluation.options import EvalOptions

    n_resamples = EvalOptions().n_resamples  # eval-mir's default bootstrap
    label_rows = label_statistics_rows(args.label_n, n_resamples, args.old_resamples, args.old_max_n)
    if args.only_labels:
        print_label_rows(label_rows, n_resamples, args.old_resamples)
        return
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        tasks = [("key", key_records, args.n, ()), ("tempo", tempo_records, args.n, ()),
                 ("regression", regression_records, args.n, ())]
        if args.cli_labels:
            tasks += [("classification", classification_records, args.cli_labels, ("--labels", "genre=" + ",".join(GENRES))),
                      ("tagging", tagging_records, args.cli_labels, ("--labels", "moods=" + ",".join(MOODS)))]
        for task, generate, n, options in tasks:
            path = folder / f"{task}.jsonl"
            write(path, generate(n, rng))
            scoring, _, _ = run(["eval-mir", str(path), *options, "--bootstrap", "0", "-o", str(folder / "s.json")])
            total, cpu, rss = run(["eval-mir", str(path), *options, "-o", str(folder / "s.json")])
            rows.append((f"eval-mir {task}", n, scoring, total, cpu, rss))
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
        goal = 10_000 if name.startswith("eval-mir") and "tenth" not in name else None
        rate = n / total
        verdict = "" if goal is None else ("ok" if rate >= goal else "MISSED")
        no_bootstrap = "-" if scoring != scoring else f"{scoring:.2f}s"
        print(f"{name:30} {n:>8} {no_bootstrap:>13} {total:>14.2f}s {cpu:>7.1f} {rate:>9.0f} {rss:>8.0f} {verdict:>6}")
    print(f"items/s = items / wall seconds with intervals ({n_resamples} bootstrap resamples), process start included;")
    print("one process per command, BLAS limited to one thread. eval-caption's METEOR runs METEOR 1.5 in a Java")
    print("child process: its CPU seconds and memory are counted in that row (and can exceed the wall time).")
    print_label_rows(label_rows, n_resamples, args.old_resamples)


if __name__ == "__main__":
    main()
