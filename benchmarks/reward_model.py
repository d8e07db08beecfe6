"""Does a trained reward model learn the known answers of the offline preference data? (issue 13 part 2)

On a rendered corpus (`mllm synth`), `mllm build-pairs` makes alignment pairs (a caption's own clip
against a clip of another key, tempo and instruments) and musicality pairs (clean against noise,
clipping or detuning at levels 1-4, and level against level), each clip in one split (60/20/20 by
a hash of its track). A reward model (`mllm train-reward`: DSP encoder pooled mean+std, the prompt
embedded by a frozen text model, a 64-wide head) trains on the train split and validates on valid;
then, on the **test split only** (never trained or selected on):

- pairwise accuracy per axis and per degradation kind, with the exact (Clopper-Pearson) 95 %
  interval and n; chance is 0.5;
- per-system correlation: the MOS-style records (`system` = clean, level-1 ... level-4, stand-in
  MOS 5 ... 1) scored, the scores averaged per system, and the Spearman correlation (SRCC) of the
  system means with the known ranking, over all kinds and per kind; also per clip.

The run is the commands a user types (synth, build-pairs, train-reward, score) as subprocesses,
each with --threads (default 1), and writes OUT/reward_model.json; the table goes to stderr.

    python benchmarks/reward_model.py /tmp/rm-bench --clips 150 --seconds 4 --keep-best
    python benchmarks/reward_model.py /tmp/rm-bench --keep-best --text-encoder none     # the prompt-free control
    python benchmarks/reward_model.py /tmp/rm-bench --keep-best --text-encoder minilm

A second run in the same folder reuses the corpus and the pairs (delete them to rebuild).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mllm.core.metrics.bootstrap import clopper_pearson

MLLM = [sys.executable, "-m", "mllm.cli"]


def run(args: list[str], threads: int, stdout=None) -> float:
    """Run `mllm ARGS --threads N`; its wall seconds. Stops the benchmark when it fails."""
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
    subprocess.run([*MLLM, *args, "--threads", str(threads)], check=True, stdout=stdout, env=env)
    return time.perf_counter() - started


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accuracy(pairs: list[dict], resamples: int = 2000, seed: int = 0) -> dict:
    """Pairwise accuracy of scored pairs on their axis (equal scores 0.5), n, and two 95 % intervals:
    the exact binomial one (pairs taken as independent) and a cluster bootstrap that resamples the
    clips the pairs are made from (`clip`: a clip's pairs share its audio, so they are not
    independent; this interval is the honest one)."""
    right = []
    for pair in pairs:
        a, b = pair["reward"][pair["axis"]], pair["reward_b"][pair["axis"]]
        right.append(0.5 if a == b else float((a > b) == (pair["preference"] == "a")))
    n = len(pairs)
    if not n:
        return {"accuracy": float("nan"), "interval": [float("nan")] * 2, "clip_bootstrap": [float("nan")] * 2, "n": 0}
    by_clip = defaultdict(list)
    for pair, value in zip(pairs, right):
        by_clip[pair["clip"]].append(value)
    groups = list(by_clip.values())
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        chosen = [groups[i] for i in rng.integers(len(groups), size=len(groups))]
        draws.append(sum(map(sum, chosen)) / sum(map(len, chosen)))
    low, high = clopper_pearson(int(round(sum(right))), n)
    return {"accuracy": sum(right) / n, "interval": [low, high],
            "clip_bootstrap": [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))],
            "n": n, "clips": len(groups)}


def system_correlation(records: list[dict]) -> dict:
    """SRCC of the per-system mean musicality score with the stand-in MOS (the known ranking)."""
    by_system, known = defaultdict(list), {}
    for record in records:
        by_system[record["system"]].append(record["reward"]["musicality"])
        known[record["system"]] = record["musicality"]
    systems = sorted(known, key=lambda s: -known[s])  # clean, level-1, ..., level-4
    means = [float(np.mean(by_system[s])) for s in systems]
    return {"srcc": float(spearmanr(means, [known[s] for s in systems])[0]), "systems": systems, "mean_score": means,
            "clips_per_system": [len(by_system[s]) for s in systems]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--clips", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="dsp")
    parser.add_argument("--text-encoder", default="smollm2")
    parser.add_argument("--epochs", type=float, default=20.0)
    parser.add_argument("--per-clip", type=int, default=6, help="Alignment pairs per clip (build-pairs --per-clip).")
    parser.add_argument("--keep-best", action="store_true",
                        help="Score the checkpoint of the best valid accuracy (train-reward --keep-best --select-by val_accuracy).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-only", action="store_true", help="Read the scored files of an earlier run; train and score nothing.")
    parser.add_argument("--name", default=None, help="Name of this run's model folder and JSON (default: from the text encoder).")
    options = parser.parse_args()
    out = options.out
    name = options.name or f"rm-{Path(options.text_encoder).name}"
    seconds = {}
    if not (out / "corpus" / "manifest.jsonl").is_file():
        seconds["synth"] = run(["synth", str(out / "corpus"), "--n", str(options.clips), "--seconds", str(options.seconds),
                                "--seed", str(options.seed), "--no-stdout"], options.threads)
    if not (out / "pairs" / "mos.jsonl").is_file():
        seconds["build-pairs"] = run(["build-pairs", str(out / "corpus" / "manifest.jsonl"), str(out / "pairs"),
                                      "--seed", str(options.seed), "--per-clip", str(options.per_clip), "--no-stdout"],
                                     options.threads)
    pairs_file, mos_file = out / "pairs" / "pairs.jsonl", out / "pairs" / "mos.jsonl"
    model = out / (f"{name}-best" if options.keep_best else name)  # the checkpoint scored
    if not options.report_only:
        with open(out / f"{name}.metrics.jsonl", "wb") as metrics:
            seconds["train-reward"] = run(["train-reward", str(pairs_file), str(mos_file), "-o", str(out / name), "--overwrite",
                                           "--encoder", options.encoder, "--text-encoder", options.text_encoder,
                                           "--epochs", str(options.epochs), "--val-every", "50", "--seed", str(options.seed),
                                           *(["--keep-best", "--select-by", "val_accuracy"] if options.keep_best else [])],
                                          options.threads, stdout=metrics)
        for source in (pairs_file, mos_file):
            with open(out / f"{name}.{source.stem}.scored.jsonl", "wb") as scored:
                seconds[f"score {source.stem}"] = run(["score", str(source), "--model", str(model), "--split", "test"],
                                                      options.threads, stdout=scored)
    pairs = [p for p in read_jsonl(out / f"{name}.pairs.scored.jsonl") if p.get("split") == "test" and "reward" in p]
    mos = [r for r in read_jsonl(out / f"{name}.mos.scored.jsonl") if r.get("split") == "test" and "reward" in r]
    all_pairs = read_jsonl(pairs_file)
    result = {
        "options": vars(options) | {"out": str(out)},
        "split_counts": {split: sum(p.get("split") == split for p in all_pairs) for split in ("train", "valid", "test")},
        "test_pairs": {
            "alignment": accuracy([p for p in pairs if p["axis"] == "alignment"]),
            "musicality": accuracy([p for p in pairs if p["axis"] == "musicality"]),
            **{f"musicality.{kind}": accuracy([p for p in pairs if p.get("degradation") == kind])
               for kind in ("noise", "clip", "detune")},
            "musicality.clean-v-level": accuracy([p for p in pairs if p["axis"] == "musicality" and "clean" in
                                                  (p["system"], p["system_b"])]),
            "musicality.level-v-level": accuracy([p for p in pairs if p["axis"] == "musicality" and "clean" not in
                                                  (p["system"], p["system_b"])]),
        },
        "per_system": {"all": system_correlation(mos),
                       **{kind: system_correlation([r for r in mos if r["degradation"] == kind])
                          for kind in ("noise", "clip", "detune")}},
        "per_clip_srcc": float(spearmanr([r["reward"]["musicality"] for r in mos], [r["musicality"] for r in mos])[0]),
        "test_mos_records": len(mos),
        "validations": [m for m in read_jsonl(out / f"{name}.metrics.jsonl") if "val_loss" in m],
        "scored_checkpoint": str(model),
        "seconds": seconds,
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"test split ({options.text_encoder} prompt tower, {options.encoder} encoder):", file=sys.stderr)
    for what, entry in result["test_pairs"].items():
        low, high = entry["interval"]
        clip_low, clip_high = entry["clip_bootstrap"]
        print(f"  {what:28s} accuracy {entry['accuracy']:.3f}  exact [{low:.3f}, {high:.3f}]  clip bootstrap "
              f"[{clip_low:.3f}, {clip_high:.3f}]  n={entry['n']} pairs of {entry.get('clips', 0)} clips", file=sys.stderr)
    for what, entry in result["per_system"].items():
        print(f"  per-system SRCC {what:8s} {entry['srcc']:.3f}  systems {entry['systems']}  mean scores "
              f"{[round(m, 3) for m in entry['mean_score']]}  clips {entry['clips_per_system']}", file=sys.stderr)
    print(f"  per-clip SRCC {result['per_clip_srcc']:.3f} (n={len(mos)})", file=sys.stderr)
    print(f"  seconds {json.dumps({k: round(v, 1) for k, v in seconds.items()})}", file=sys.stderr)
    print(json.dumps(result["test_pairs"]))


if __name__ == "__main__":
    main()
