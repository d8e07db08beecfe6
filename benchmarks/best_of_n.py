"""Best-of-N against greedy decoding on the test split: how much do N samples and a reranker buy?

Issue 13 part 3's evidence. For a `mllm sft` checkpoint and the test split of its instruction
records (tasks key, tempo, energy), the script

1. answers every test item greedily (`mllm caption`, the default) and with N_max samples
   (`mllm caption --samples N_max --seed S`, each sample with its log-probability);
2. scores every answer by the verifiable reward (`mllm score --reward task`: the task's per-item
   score against the reference, grpo's reward);
3. for each N in --ns keeps samples 0 .. N-1 of every item and reranks them (`mllm rerank`):
   - oracle: by `reward.total`, the verifiable reward, which reads the reference: an upper bound
     of what any reranker could pick from those N samples, not a method;
   - logprob-mean, logprob-sum: by the model's own log-probability of the answer, per token
     (`logprob_mean`) or summed (`logprob`); they need no reference;
   - learned reward (`--reward-model PATH`, the hook for `mllm train-reward`'s models): by
     `--reward-field` (default reward.alignment) of `mllm score --model PATH`, each sample's answer
     given to the model as the `prompt` its clip is judged against; not run without the option;
   and, as the sampling baseline, `sample mean`: each item's score averaged over its N samples
   (the expected score of one sample, less noisy than sample 0 alone);
4. scores every system by `mllm eval-mir --per-item` (the task's metric per item: key MIREX
   weighted score, tempo Acc1, energy absolute error with an unparsed answer counted as the mean
   of that system's parsed predictions, CMI-Bench's rule, as eval-mir's `metrics_unparsed_as_mean`),
   and compares each with greedy on the same items: the mean, its 95 % percentile bootstrap
   interval, and the paired bootstrap difference to greedy with its interval and p-value
   (core/metrics/bootstrap.py).

Without --checkpoint the folder is prepared first, as `mllm demo` does (its default sizes, the
MIR tasks only): `mllm synth` 200 clips of 8 s, `mllm encode` (DSP), `mllm build-instructions` per
task (70/10/20 split), `mllm sft` SmolLM2-135M-Instruct + LoRA, 150 steps. Finished stages are
reused (the answer files, the checkpoint), so a stopped run continues where it was.

    python benchmarks/best_of_n.py /tmp/best-of-n --threads 2 --markdown benchmarks/results/best_of_n.md
    python benchmarks/best_of_n.py /tmp/best-of-n --checkpoint runs/sft --reward-model runs/rm --reward-field reward.alignment

Writes FOLDER/best_of_n.json (every figure) and, with --markdown, the results table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from mllm.core.metrics.bootstrap import bootstrap_interval, mean_statistic, paired_difference

# The per-item metric of each task kind (eval-mir's `eval.scores`) and whether higher is better.
METRIC = {"key": ("weighted_score", True), "tempo": ("acc1", True), "regression": ("abs_error", False)}
PREPARE = {"clips": 200, "seconds": 8.0, "sft_steps": 150}


def mllm(args: list[str], *, threads: int, stdin: Path | None = None, stdout: Path | None = None) -> float:
    """Run `python -m mllm.cli ARGS` with `threads` threads; its wall seconds. Exits on failure."""
    env = {**os.environ, **{name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    print(f"$ mllm {' '.join(map(str, args))}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as source, open(stdout or os.devnull, "wb") as sink:
        result = subprocess.run([sys.executable, "-m", "mllm.cli", *map(str, args)], stdin=source, stdout=sink,
                                stderr=subprocess.PIPE, env=env, check=False)
    if result.returncode != 0:
        sys.exit(f"mllm {args[0]} failed ({result.returncode}):\n{result.stderr.decode(errors='replace')[-3000:]}")
    return time.perf_counter() - start


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)


def prepare(folder: Path, tasks: list[str], threads: int, seed: int) -> Path:
    """The demo's corpus, instructions and SFT checkpoint in `folder` (each stage skipped when done)."""
    if not (folder / "corpus" / "manifest.jsonl").exists():
        mllm(["synth", folder / "corpus", "--n", PREPARE["clips"], "--seconds", PREPARE["seconds"], "--seed", seed,
              "--no-stdout", "--overwrite", "--threads", threads], threads=threads)
    if not (folder / "clips.jsonl").exists():
        mllm(["encode", folder / "corpus" / "manifest.jsonl", "--encoder", "dsp", "--frame-rate", 1.0,
              "--threads", threads, "-o", folder / "clips.jsonl"], threads=threads)
    (folder / "instructions").mkdir(exist_ok=True)
    for task in tasks:
        if not (folder / "instructions" / f"{task}.jsonl").exists():
            mllm(["build-instructions", folder / "clips.jsonl", "--tasks", task, "--split-fractions", "0.7,0.1,0.2",
                  "--seed", seed, "-o", folder / "instructions" / f"{task}.jsonl"], threads=threads)
    checkpoint = folder / "runs" / "sft"
    if not (checkpoint / "config.json").exists():
        every = folder / "instructions.all.jsonl"
        write(every, [r for task in tasks for r in read(folder / "instructions" / f"{task}.jsonl")])
        mllm(["sft", every, "--llm", "smollm2", "-o", checkpoint, "--steps", PREPARE["sft_steps"], "--batch-size", 8,
              "--lr", 1e-3, "--warmup", 10, "--val-every", 30, "--transpose", "--seed", seed, "--overwrite",
              "--threads", threads], threads=threads, stdout=folder / "runs" / "sft.metrics.jsonl")
    return checkpoint


def per_item(path: Path, folder: Path, threads: int) -> dict[str, dict]:
    """{id: {"task", "kind", "value" (the task's metric, None when unparsed), "parsed",
    "prediction", "reference"}} from `mllm eval-mir --per-item --split test`."""
    scored = folder / "scores" / (path.stem + ".items.jsonl")
    if not scored.exists() or scored.stat().st_mtime < path.stat().st_mtime:
        mllm(["eval-mir", path, "--split", "test", "--per-item", "--bootstrap", 0, "--overwrite", "-o", scored,
              "--threads", threads], threads=threads)
    out: dict[str, list[dict]] = defaultdict(list)
    for record in read(scored):
        if record.get("split") != "test":
            continue
        kind = record["eval"]["task_type"]
        name, _ = METRIC[kind]
        target = next(iter(record["answer"])) if kind == "regression" else None
        out[record["id"]].append({
            "task": record["task"], "kind": kind, "parsed": bool(record["eval"]["parse_ok"]),
            "value": record["eval"]["scores"].get(name),
            "prediction": (record.get("prediction") or {}).get(target) if target else None,
            "reference": record["answer"][target] if target else None})
    return out


def item_values(items: dict[str, list[dict]], ids: list[str]) -> np.ndarray:
    """The metric of each of `ids` (mean over its records when an id has several: the sample mean),
    an unparsed regression answer counted as the mean of the parsed predictions (per task)."""
    parsed = [i["prediction"] for rows in items.values() for i in rows if i["kind"] == "regression" and i["parsed"]]
    fill = float(np.mean(parsed)) if parsed else math.nan
    values = []
    for key in ids:
        row = []
        for item in items[key]:
            if item["kind"] == "regression" and not item["parsed"]:
                row.append(abs(fill - item["reference"]))
            else:
                row.append(float(item["value"]))
        values.append(float(np.mean(row)))
    return np.array(values)


def compare(systems: dict[str, dict], tasks: dict[str, list[str]], bootstrap: int, seed: int) -> dict:
    """Per task and system: n, parse rate, mean with its interval, paired difference to greedy."""
    out = {}
    for task, ids in tasks.items():
        greedy = item_values(systems["greedy"], ids)
        kind = systems["greedy"][ids[0]][0]["kind"]
        name, higher = METRIC[kind]
        rows = {}
        for system, items in systems.items():
            values = item_values(items, ids)
            interval = bootstrap_interval(mean_statistic, (values,), n_resamples=bootstrap, seed=seed)
            parse = float(np.mean([np.mean([i["parsed"] for i in items[k]]) for k in ids]))
            row = {"n": len(ids), "parse_rate": parse, "value": float(values.mean()), "low": interval.low,
                   "high": interval.high}
            if system != "greedy":
                row["vs_greedy"] = paired_difference(mean_statistic, (values,), (greedy,), n_resamples=bootstrap,
                                                     seed=seed)
            rows[system] = row
        out[task] = {"metric": name if kind != "regression" else "mae (unparsed = mean)",
                     "higher_is_better": higher, "systems": rows}
    return out


def field_of(record: dict, path: str) -> float:
    value = record
    for part in path.split("."):
        value = value[part]
    return float(value)


def agreement(scored: Path, rerankers: dict[str, tuple[Path, str]]) -> dict:
    """How well each reranker orders an item's samples as the verifiable reward does: Spearman's rho
    between its field and reward.total over an item's samples, averaged per task over the items
    where both vary (n_items), as a reranker's quality apart from N."""
    from scipy.stats import spearmanr

    truth = {(r["id"], r["sample"]): (r["task"], r["reward"]["total"]) for r in read(scored) if "sample" in r}
    out = {}
    for name, (source, field) in rerankers.items():
        if name == "oracle":
            continue
        groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
        tasks = {}
        for record in read(source):
            if "sample" in record and "error" not in record:
                task, total = truth[(record["id"], record["sample"])]
                groups[record["id"]].append((field_of(record, field), total))
                tasks[record["id"]] = task
        by_task: dict[str, list[float]] = defaultdict(list)
        for key, pairs in groups.items():
            x, y = zip(*pairs)
            if len(set(x)) > 1 and len(set(y)) > 1:
                by_task[tasks[key]].append(float(spearmanr(x, y).statistic))
        out[name] = {task: {"mean_rho": float(np.mean(v)), "n_items": len(v)} for task, v in sorted(by_task.items())}
    return out


def table(result: dict) -> str:
    """The markdown table: one row per system, one column group per task."""
    tasks = result["tasks"]
    head = "| system | " + " | ".join(f"{t}: {b['metric']} [95 % CI] | vs greedy [95 % CI], p" for t, b in tasks.items()) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(tasks))]
    systems = next(iter(tasks.values()))["systems"]
    for system in systems:
        cells = []
        for block in tasks.values():
            row = block["systems"][system]
            cells.append(f"{row['value']:.3f} [{row['low']:.3f}, {row['high']:.3f}]")
            test = row.get("vs_greedy")
            cells.append("" if test is None else f"{test['difference']:+.3f} [{test['low']:+.3f}, {test['high']:+.3f}], "
                                                  f"{test['p_value']:.3f}")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="Work folder (prepared here without --checkpoint).")
    parser.add_argument("--checkpoint", type=Path, help="A `mllm sft` checkpoint; FOLDER/instructions/TASK.jsonl hold its records.")
    parser.add_argument("--tasks", default="key,tempo,energy")
    parser.add_argument("--ns", default="1,4,8", help="The N of best-of-N; samples drawn: the largest.")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reward-model", type=Path,
                        help="HOOK for the learned reward: a `mllm train-reward` checkpoint; its `mllm score --model` "
                             "field --reward-field reranks a third family of rows. Not run without it.")
    parser.add_argument("--reward-field", default="reward.alignment", help="The learned reward's field to rank by.")
    parser.add_argument("--markdown", type=Path, help="Write the results table (markdown) here too.")
    args = parser.parse_args()
    folder, threads, tasks = args.folder, args.threads, args.tasks.split(",")
    ns = sorted({int(n) for n in args.ns.split(",")})
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("answers", "scores"):
        (folder / sub).mkdir(exist_ok=True)
    checkpoint = args.checkpoint or prepare(folder, tasks, threads, args.seed)

    test = folder / "test.jsonl"  # the test items of every task (the other splits are not answered)
    if not test.exists():
        write(test, [r for task in tasks for r in read(folder / "instructions" / f"{task}.jsonl") if r.get("split") == "test"])
    seconds = {}
    answers = folder / "answers"
    common = ["--model", checkpoint, "--split", "test", "--max-new-tokens", args.max_new_tokens, "--threads", threads]
    if not (answers / "greedy.jsonl").exists():
        seconds["greedy"] = mllm(["caption", test, *common, "-o", answers / "greedy.jsonl"], threads=threads)
    samples = answers / f"samples{ns[-1]}.jsonl"
    if not samples.exists():  # --resume: a stopped run continues
        seconds["samples"] = mllm(["caption", test, *common, "--samples", ns[-1], "--seed", args.seed, "--temperature",
                                   args.temperature, "--top-p", args.top_p, "-o", samples, "--resume"], threads=threads)
    scored = answers / f"samples{ns[-1]}.scored.jsonl"
    if not scored.exists() or scored.stat().st_mtime < samples.stat().st_mtime:
        mllm(["score", samples, "--reward", "task", "--split", "test", "--overwrite", "-o", scored], threads=threads)
    rerankers = {"oracle": (scored, "reward.total"), "logprob-mean": (scored, "logprob_mean"),
                 "logprob-sum": (scored, "logprob")}
    if args.reward_model is not None:  # the learned-reward hook (see the module docstring)
        learned = answers / f"samples{ns[-1]}.learned.jsonl"
        if not learned.exists() or learned.stat().st_mtime < samples.stat().st_mtime:
            # A reward model reads a record's audio and its `prompt` text: each sample's answer
            # becomes the prompt, so the model judges how well the clip matches what was answered.
            judged = answers / f"samples{ns[-1]}.as-prompts.jsonl"
            write(judged, [{**r, "prompt": r["response"]} if "sample" in r else r for r in read(samples)])
            mllm(["score", judged, "--model", args.reward_model, "--split", "test", "--overwrite", "-o", learned],
                 threads=threads)
        rerankers["learned"] = (learned, args.reward_field)

    # The rows, in order: greedy; one sample (sample 0: best-of-1 by any reranker); then for each
    # N > 1 the sample mean of N and each reranker's best of N.
    files: dict[str, tuple[Path, bool]] = {"greedy": (answers / "greedy.jsonl", False)}
    for n in ns:
        for name, (source, field) in rerankers.items():
            first = answers / f"{source.stem}.first{n}.jsonl"
            if not first.exists() or first.stat().st_mtime < source.stat().st_mtime:
                write(first, [r for r in read(source) if r.get("split") != "test" or r["sample"] < n])
            if n == 1:
                files.setdefault("one sample (sample 0)", (first, False))
                continue
            files.setdefault(f"sample mean of {n}", (first, True))
            best = answers / f"{name}.best{n}.jsonl"
            mllm(["rerank", first, "--by", field, "--split", "test", "--overwrite", "-o", best], threads=threads)
            files[f"{name} best-of-{n}"] = (best, False)
    systems = {name: per_item(path, folder, threads) for name, (path, _) in files.items()}
    ids_by_task: dict[str, list[str]] = defaultdict(list)
    for key, rows in systems["greedy"].items():
        ids_by_task[rows[0]["task"]].append(key)
    for name, (_, averaged) in files.items():
        counts = {len(rows) for rows in systems[name].values()}
        expected = {int(name.split()[-1])} if averaged else {1}
        if counts != expected:  # each id once (a reranked file), or N times (the samples)
            sys.exit(f"{files[name][0]}: {sorted(counts)} records per id, expected {sorted(expected)}")
    result = {
        "checkpoint": str(checkpoint), "split": "test", "tasks_items": {t: len(v) for t, v in ids_by_task.items()},
        "samples": ns[-1], "ns": ns, "temperature": args.temperature, "top_p": args.top_p, "seed": args.seed,
        "max_new_tokens": args.max_new_tokens, "bootstrap": args.bootstrap, "threads": threads,
        "reward_model": str(args.reward_model) if args.reward_model else None, "seconds": seconds,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "tasks": compare(systems, dict(ids_by_task), args.bootstrap, args.seed),
        "agreement_with_reward": agreement(scored, rerankers),
    }
    (folder / "best_of_n.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(result)
    text += "\n\nWithin-item Spearman rho with the verifiable reward (mean over items where both vary):\n\n"
    text += "| reranker | " + " | ".join(ids_by_task) + " |\n|---|" + "---|" * len(ids_by_task) + "\n"
    for name, tasks in result["agreement_with_reward"].items():
        cells = [f"{tasks[t]['mean_rho']:+.3f} (n={tasks[t]['n_items']})" if t in tasks else "" for t in ids_by_task]
        text += f"| {name} | " + " | ".join(cells) + " |\n"
    print(text, file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
