"""Does GRPO on one task keep the model's other skills? Issue 10's retention check.

A sibling of grpo_study.py (whose helpers it imports): one multi-task `mllm sft` checkpoint (a),
the same checkpoint trained on by SFT for the compute GRPO used (b), and (c) SFT + `mllm grpo` on
the records of ONE task (--align, e.g. energy). All three answer the held-out test split of every
task in the SFT records; then

* numeric tasks (energy): `mllm regress --targets task`, scored by `mllm eval-mir` (MAE, R2, ...);
* key: `mllm caption` (greedy), `mllm eval-mir` (accuracy, MIREX weighted score);
* caption: `mllm caption`, `mllm eval-caption` (BLEU-1..4, ROUGE-L, METEOR, CIDEr);

each with its 95 % bootstrap interval, and paired tests of c against a and of c against b on the
same items: `eval-mir --compare` for the MIR tasks; for captions (eval-caption has no --compare)
the library's paired bootstrap (core.metrics.bootstrap.paired_difference) over the statistic that
gives each corpus value (core.evaluation.captions.corpus_statistics: corpus BLEU from summed
counts, METEOR 1.5's aggregate, the mean for ROUGE-L and CIDEr).

The retention margin is fixed here, before any run (RETENTION): c keeps a skill when its figure is
no further below a's than the margin. Read two ways: "holds" (the point difference c - a is within
the margin) and "shown" (the lower end of the paired 95 % interval of c - a is within it: a
non-inferiority claim the test set can carry).

Input: FOLDER holding `instr.jsonl`, the records the SFT run was trained on (every task, with
`audio_embedding`), and the finished SFT checkpoint FOLDER/SFT. The control's step count is the
GRPO run's summed `s_per_step` over the median `s_per_step` of the SFT run's own metrics
(--sft-metrics, the same records and threads) or, without it, of a 10-step probe as grpo_study.py.

    python benchmarks/grpo_retention.py /tmp/gret --sft sft300 --sft-metrics sft300.metrics.jsonl \\
        --name r1 --align energy -- --steps 20 --batch-size 4 --group-size 8 --lr 1e-4 --beta 0.04 \\
        --regression-shape gaussian --max-new-tokens 24

Finished stages are kept (NAME-grpo, NAME-control, the answer and score files), so a rerun
continues. Writes NAME.retention.json in FOLDER and prints the table on stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpo_study import CURVE, cpu_seconds, evaluate, metrics_lines, mllm, timed, trained_steps  # noqa: E402

# Fixed before the runs: (metric, kind of margin, size). "absolute": c >= a - size;
# "relative": c >= a * (1 - size). Key accuracy within 0.05; BLEU-4 and ROUGE-L within 10 % of a.
RETENTION = {
    "key": [("accuracy", "absolute", 0.05), ("weighted_score", "absolute", 0.05)],
    "caption": [("bleu_4", "relative", 0.10), ("rouge_l_f", "relative", 0.10)],
}
SHOWN = {"key": ("accuracy", "weighted_score"), "regression": ("mae", "r2", "pearson"),
         "caption": ("bleu_4", "rouge_l_f", "meteor", "cider")}
CAPTION_METRICS = "bleu,rouge,meteor,cider"
MAX_NEW_TOKENS = {"caption": 48}  # key and numbers: 24


def test_records(folder: Path, task: str) -> Path:
    """FOLDER/test.TASK.jsonl: the test-split records of one task (kept)."""
    out = folder / f"test.{task}.jsonl"
    if not out.exists():
        with open(folder / "instr.jsonl") as source, open(out, "w") as sink:
            sink.writelines(line for line in source
                            if (r := json.loads(line)).get("split") == "test" and r.get("task") == task)
    return out


def align_records(folder: Path, task: str) -> Path:
    """FOLDER/align.TASK.jsonl: every split's records of the task GRPO aligns (kept)."""
    out = folder / f"align.{task}.jsonl"
    if not out.exists():
        with open(folder / "instr.jsonl") as source, open(out, "w") as sink:
            sink.writelines(line for line in source if json.loads(line).get("task") == task)
    return out


def answer(folder: Path, checkpoint: str, task: str, kind: str, threads: int) -> Path:
    """FOLDER/answers/CHECKPOINT.TASK.jsonl: one checkpoint's answers to one task's test records."""
    out = folder / "answers" / f"{checkpoint}.{task}.jsonl"
    if not out.exists():
        out.parent.mkdir(exist_ok=True)
        tokens = str(MAX_NEW_TOKENS.get(task, 24))
        command = (["regress", "--targets", "task"] if kind == "regression"
                   else ["caption", "--max-new-tokens", tokens])
        partial = out.with_suffix(".partial")
        with open(test_records(folder, task), "rb") as source, open(partial, "wb") as sink:
            mllm([*command, "-", "--model", str(folder / checkpoint), "--threads", str(threads)],
                 threads=threads, stdin=source, stdout=sink)
        partial.rename(out)
    return out


def score_captions(answers: Path, threads: int, resamples: int) -> dict:
    out = answers.with_suffix(".eval.json")
    if not out.exists():
        mllm(["eval-caption", str(answers), "--split", "test", "--metrics", CAPTION_METRICS, "--bootstrap",
              str(resamples), "--threads", str(threads), "-o", str(out)], threads=threads, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())["splits"]["test"]["metrics"]


def caption_corpus_scores(answers: Path):
    """The per-item caption scores of one answers file (test split), items sorted by id."""
    from mllm.core.evaluation.captions import CaptionCorpus, CaptionOptions, caption_pair, check_options, score_corpus

    options = check_options(CaptionOptions(metrics=tuple(CAPTION_METRICS.split(",")), split="test"))
    records = sorted((json.loads(line) for line in answers.read_text().splitlines() if line.strip()),
                     key=lambda r: r["id"])
    records = [r for r in records if r.get("split") == "test" and "error" not in r]
    corpus = CaptionCorpus()
    for record in records:
        corpus.add(*caption_pair(record, options), keep_raw=False, split="test")
    return [r["id"] for r in records], score_corpus(corpus, options), options


def compare_captions(answers_a: Path, answers_b: Path, resamples: int) -> dict:
    """Paired bootstrap of A - B on the items both answered: per metric the difference, its
    interval and p (core.metrics.bootstrap.paired_difference on each corpus statistic)."""
    import numpy as np

    from mllm.core.evaluation.captions import corpus_statistics
    from mllm.core.metrics.bootstrap import paired_difference

    ids_a, scores_a, options = caption_corpus_scores(answers_a)
    ids_b, scores_b, _ = caption_corpus_scores(answers_b)
    common = sorted(set(ids_a) & set(ids_b))
    rows_a = np.array([ids_a.index(i) for i in common])
    rows_b = np.array([ids_b.index(i) for i in common])
    tests = {}
    for (names, statistic, data_a), (_, _, data_b) in zip(corpus_statistics(scores_a, rows_a),
                                                          corpus_statistics(scores_b, rows_b)):
        for index, name in enumerate(names):  # one metric of a (possibly multi-valued) statistic at a time
            def one(*arrays, index=index):
                return statistic(*arrays)[index]
            tests[name] = paired_difference(one, data_a, data_b, n_resamples=resamples, seed=options.seed)
    value = lambda scores, rows, name: next(float(statistic(*data)[names.index(name)])
                                            for names, statistic, data in corpus_statistics(scores, rows) if name in names)
    for name, test in tests.items():
        test["a"], test["b"] = value(scores_a, rows_a, name), value(scores_b, rows_b, name)
    return {"n_paired": len(common), "metrics": tests}


def control_extra_steps(folder: Path, sft: Path, name: str, grpo: str, sft_metrics: Path | None, threads: int) -> int:
    """SFT steps that cost what the GRPO run cost: its summed s_per_step over SFT's median step."""
    if sft_metrics is None:
        sft_metrics = folder / f"{name}-probe.metrics.jsonl"
        if not sft_metrics.exists():
            probe = folder / f"{name}-probe"
            shutil.rmtree(probe, ignore_errors=True)
            shutil.copytree(sft, probe)
            timed(["sft", str(folder / "instr.jsonl"), "--resume", str(probe), "-o", str(probe), "--extend-to",
                   str(trained_steps(sft) + 10), "--threads", str(threads)], threads=threads, stdout_path=sft_metrics)
            shutil.rmtree(probe, ignore_errors=True)
    per_step = statistics.median(m["s_per_step"] for m in metrics_lines(sft_metrics) if "s_per_step" in m)
    grpo_seconds = sum(m["s_per_step"] for m in metrics_lines(folder / f"{grpo}.metrics.jsonl") if "s_per_step" in m)
    return max(1, round(grpo_seconds / per_step))


def verdict(task: str, paired_c_a: dict) -> list[dict]:
    """The pre-stated margin of each retention metric against c - a (point and interval)."""
    rows = []
    for metric, how, size in RETENTION.get(task, ()):
        test = paired_c_a["metrics"].get(metric)
        if test is None:
            continue
        bound = -size if how == "absolute" else -size * test["b"]  # b of "c vs a" is a's value
        rows.append({"metric": metric, "margin": f"{size:g}" if how == "absolute" else f"{size:.0%} of a", "allowed_difference": bound,
                     "difference": test["difference"], "low": test["low"],
                     "holds": test["difference"] >= bound, "shown": test["low"] >= bound})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="holds instr.jsonl (every task) and the SFT checkpoint")
    parser.add_argument("--sft", required=True, help="the multi-task SFT checkpoint folder (a), inside FOLDER")
    parser.add_argument("--sft-metrics", type=Path, help="the SFT run's metrics (JSONL) for the control's step time")
    parser.add_argument("--name", required=True, help="this run's name: NAME-grpo, NAME-control")
    parser.add_argument("--align", required=True, help="the task GRPO trains on (e.g. energy)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the intervals and paired tests")
    parser.add_argument("--control-steps", type=int, default=0, help="extra SFT steps of b (0: measured)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # after --: the options of mllm grpo
    args = parser.parse_args(argv[:cut])
    folder, threads = args.folder.resolve(), args.threads
    options = argv[cut + 1:]
    sft, grpo, control = folder / args.sft, f"{args.name}-grpo", f"{args.name}-control"
    sft_metrics = None if args.sft_metrics is None else (folder / args.sft_metrics)

    # (c) SFT + GRPO on one task's records
    grpo_cpu = cpu_seconds(folder, grpo, lambda: timed(
        ["grpo", str(align_records(folder, args.align)), "--checkpoint", str(sft), "-o", str(folder / grpo),
         "--threads", str(threads), *options], threads=threads, stdout_path=folder / f"{grpo}.metrics.jsonl"))
    curve = [{k: m[k] for k in CURVE if k in m} for m in metrics_lines(folder / f"{grpo}.metrics.jsonl")]

    # (b) SFT on every task, continued for the same compute
    base_steps = trained_steps(sft)
    extra = args.control_steps or control_extra_steps(folder, sft, args.name, grpo, sft_metrics, threads)

    def run_control() -> float:
        shutil.rmtree(folder / control, ignore_errors=True)
        shutil.copytree(sft, folder / control)
        return timed(["sft", str(folder / "instr.jsonl"), "--resume", str(folder / control), "-o",
                      str(folder / control), "--extend-to", str(base_steps + extra), "--threads", str(threads)],
                     threads=threads, stdout_path=folder / f"{control}.metrics.jsonl")

    control_cpu = cpu_seconds(folder, control, run_control)

    from mllm.core.evaluation.kinds import KIND_OF_TASK

    tasks = sorted({json.loads(line)["task"] for line in (folder / "instr.jsonl").open()})
    systems = {"a: SFT": args.sft, "b: SFT + same compute": control, "c: SFT + GRPO": grpo}
    a, b, c = systems.values()
    results: dict = {}
    for task in tasks:
        kind = "caption" if task == "caption" else KIND_OF_TASK.get(task, "regression")
        files = {label: answer(folder, ckpt, task, kind, threads) for label, ckpt in systems.items()}
        if kind == "caption":
            scores = {label: score_captions(path, threads, args.bootstrap) for label, path in files.items()}
            systems_block = {label: {"n": s["bleu_4"]["n"], "metrics": s} for label, s in scores.items()}
            paired = {"c vs a": compare_captions(files["c: SFT + GRPO"], files["a: SFT"], args.bootstrap),
                      "c vs b": compare_captions(files["c: SFT + GRPO"], files["b: SFT + same compute"], args.bootstrap)}
        else:
            scores = {label: evaluate(path, None, threads, args.bootstrap)["tasks"][task] for label, path in files.items()}
            systems_block = {label: {"n": s["n"], "parse_rate": s["parse_rate"], "metrics": s["metrics"]}
                             for label, s in scores.items()}
            paired = {pair: evaluate(files["c: SFT + GRPO"], files[other], threads, args.bootstrap)["comparison"]["tasks"][task]
                      for pair, other in (("c vs a", "a: SFT"), ("c vs b", "b: SFT + same compute"))}
        results[task] = {"kind": kind, "systems": systems_block, "paired": paired,
                         "retention": verdict(task, paired["c vs a"]) if task != args.align else []}

    report = {"folder": str(folder), "split": "test", "align": args.align, "grpo_options": options,
              "sft_steps": base_steps, "control_extra_steps": extra,
              "grpo_config": json.loads((folder / grpo / "trainer_state.json").read_text())["config"],
              "cpu_seconds": {"grpo": grpo_cpu, "control": control_cpu}, "retention_margin": RETENTION,
              "tasks": results, "grpo_curve": curve, "checkpoints": {"a": a, "b": b, "c": c},
              "written": time.strftime("%Y-%m-%d %H:%M")}
    (folder / f"{args.name}.retention.json").write_text(json.dumps(report, indent=1))

    print(f"\nGRPO on {args.align}: {grpo_cpu:.0f} CPU s; control {control_cpu:.0f} CPU s ({extra} extra SFT steps "
          f"after {base_steps}); test split, {threads} thread(s)", file=sys.stderr)
    for task, block in results.items():
        shown = SHOWN[block["kind"]]
        for label, s in block["systems"].items():
            cells = [f"{m} {s['metrics'][m]['value']:.3f} ({s['metrics'][m]['low']:.2f}-{s['metrics'][m]['high']:.2f})"
                     for m in shown if m in s["metrics"]]
            print(f"  {task:8} {label:24} n {s['n']}  {'  '.join(cells)}", file=sys.stderr)
        for pair, test in block["paired"].items():
            for m in shown:
                t = test["metrics"].get(m)
                if t:
                    print(f"  {task:8} {pair}: {m} {t['difference']:+.3f} ({t['low']:+.3f} to {t['high']:+.3f}), "
                          f"p {t['p_value']:.3f}, n {test['n_paired']}", file=sys.stderr)
        for row in block["retention"]:
            print(f"  {task:8} retention {row['metric']}: c - a {row['difference']:+.3f} (low {row['low']:+.3f}), "
                  f"allowed {row['allowed_difference']:+.3f}: holds {row['holds']}, shown {row['shown']}", file=sys.stderr)


if __name__ == "__main__":
    main()
