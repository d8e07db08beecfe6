"""Does GRPO beat instruction tuning alone? SFT (a) vs SFT + the same extra compute (b) vs SFT + GRPO (c).

Issue 10's study, on the held-out test split, one target at a time. Input: a folder holding the
instruction records (`instr.jsonl`, from `mllm build-instructions`, with `audio_embedding`) and a
finished `mllm sft` checkpoint of them (a). The script

1. runs `mllm grpo instr.jsonl --checkpoint A -o NAME-grpo GRPO_OPTIONS` (c), and counts the CPU
   seconds it used (the child's own user + system time, os.wait4);
2. runs the control (b): a copy of A trained on with `mllm sft --resume NAME-control --extend-to
   S + k` (the run's own options, its cosine recomputed for S + k steps), where k is the number of
   SFT steps that cost what (c) cost: k = the GRPO run's summed `s_per_step` / the median
   `s_per_step` of a 10-step probe of the same continuation (both wall seconds per step with the
   same threads, model loading left out). The report prints both runs' measured CPU seconds: the
   control's compute is a measurement, not a promise;
3. answers the test split with each of a, b, c (`mllm caption` for key and other text answers,
   `mllm regress` for numeric targets) and scores them with `mllm eval-mir --split test`, then
   `--compare` c against a and c against b (paired bootstrap on the same items: the difference,
   its interval and a two-sided p-value).

Finished stages are kept (a rerun reuses NAME-grpo, NAME-control and the answer files), so a study
can be stopped and continued. Every command runs with `--threads` threads (default 1: two studies
can share a 2-core machine, one per core).

    python benchmarks/grpo_study.py /tmp/study/key --sft run-t450 --name v2 --task key \\
        -- --steps 40 --batch-size 4 --group-size 8 --lr 2e-5 --beta 0.04 --max-new-tokens 16

Prints a table (stderr) and writes NAME.study.json in the folder: per system the metrics with
their intervals, the paired tests, the CPU seconds, and the GRPO run's reward/KL/spread curve.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEADLINE = {"key": ("accuracy", "weighted_score"), "regression": ("mae", "r2")}
CURVE = ("step", "reward_mean", "reward_std", "reward_task", "zero_spread", "kl", "clip_region", "entropy",
         "completion_length", "parse_rate", "s_per_step")


def mllm(args: list[str], *, threads: int, stdout=None, stdin=None) -> None:
    """Run `python -m mllm.cli ARGS` with `threads` threads; exits with its stderr on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads)}
    print(f"$ mllm {' '.join(args)}", file=sys.stderr, flush=True)
    result = subprocess.run([sys.executable, "-m", "mllm.cli", *args], check=False, stdout=stdout, stdin=stdin,
                            stderr=subprocess.PIPE, env=env)
    if result.returncode != 0:
        sys.exit(f"mllm {args[0]} failed ({result.returncode}):\n{result.stderr.decode(errors='replace')[-3000:]}")


def timed(args: list[str], *, threads: int, stdout_path: Path) -> float:
    """Run a training command with its metrics to stdout_path; its CPU seconds (os.wait4)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads)}
    print(f"$ mllm {' '.join(args)} > {stdout_path.name}", file=sys.stderr, flush=True)
    with open(stdout_path, "wb") as out, open(stdout_path.with_suffix(".log"), "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "mllm.cli", *args], stdout=out, stderr=log, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"mllm {args[0]} failed; see {stdout_path.with_suffix('.log')}")
    return usage.ru_utime + usage.ru_stime


def metrics_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cpu_seconds(folder: Path, name: str, run) -> float:
    """The CPU seconds of a stage, measured once and kept in NAME.cpu beside its output."""
    record = folder / f"{name}.cpu"
    if record.exists():
        return float(record.read_text())
    seconds = run()
    record.write_text(f"{seconds:.1f}\n")
    return seconds


def trained_steps(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / "trainer_state.json").read_text())["step"])


def answer(folder: Path, checkpoint: str, test: Path, kind: str, threads: int) -> Path:
    """The test split answered by one checkpoint (kept for a rerun)."""
    out = folder / f"{checkpoint}.answers.jsonl"
    if not out.exists():
        # numeric tasks: the question of each record, its number read and clipped to the scale
        command = ["regress", "--targets", "task"] if kind == "regression" else ["caption"]
        partial = out.with_suffix(".partial")
        with open(test, "rb") as source, open(partial, "wb") as sink:
            mllm([*command, "-", "--model", str(folder / checkpoint)], threads=threads, stdin=source, stdout=sink)
        partial.rename(out)
    return out


def evaluate(answers: Path, other: Path | None, threads: int, resamples: int) -> dict:
    args = ["eval-mir", str(answers), "--split", "test", "--bootstrap", str(resamples)]
    if other is not None:
        args += ["--compare", str(other)]
    out = answers.with_suffix(".eval.json") if other is None else answers.with_name(
        f"{answers.stem}.vs.{other.stem}.json")
    mllm([*args, "-o", str(out), "--overwrite"], threads=threads, stdout=subprocess.DEVNULL)  # rescored on every run
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="holds instr.jsonl and the SFT checkpoint")
    parser.add_argument("--sft", required=True, help="the SFT checkpoint folder (a), inside FOLDER")
    parser.add_argument("--name", required=True, help="this variant's name: NAME-grpo, NAME-control")
    parser.add_argument("--task", required=True, help="the task scored (e.g. key, arousal)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the intervals and paired tests")
    parser.add_argument("--control-steps", type=int, default=0,
                        help="extra SFT steps of the control (0: as many as cost what the GRPO run cost)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # after --: the options of mllm grpo
    args = parser.parse_args(argv[:cut])
    folder, threads = args.folder.resolve(), args.threads
    options = argv[cut + 1:]
    instructions = folder / "instr.jsonl"
    sft = folder / args.sft
    grpo, control = f"{args.name}-grpo", f"{args.name}-control"

    # (c) SFT + GRPO
    grpo_cpu = cpu_seconds(folder, grpo, lambda: timed(
        ["grpo", str(instructions), "--checkpoint", str(sft), "-o", str(folder / grpo), "--threads", str(threads),
         *options], threads=threads, stdout_path=folder / f"{grpo}.metrics.jsonl"))
    curve = [{k: m[k] for k in CURVE if k in m} for m in metrics_lines(folder / f"{grpo}.metrics.jsonl")]

    # (b) the control: SFT trained on for the same compute
    base_steps = trained_steps(sft)
    extra = args.control_steps
    if not extra:
        probe = folder / f"{args.name}-probe"
        if not (folder / f"{args.name}-probe.metrics.jsonl").exists():
            shutil.rmtree(probe, ignore_errors=True)
            shutil.copytree(sft, probe)
            timed(["sft", str(instructions), "--resume", str(probe), "-o", str(probe), "--extend-to",
                   str(base_steps + 10), "--threads", str(threads)], threads=threads,
                  stdout_path=folder / f"{args.name}-probe.metrics.jsonl")
            shutil.rmtree(probe, ignore_errors=True)
        # Both sides' step times are measured alike (wall seconds per step, model loading left out,
        # the same threads): the GRPO run's total over the SFT probe's median step.
        per_step = statistics.median(m["s_per_step"] for m in metrics_lines(folder / f"{args.name}-probe.metrics.jsonl"))
        grpo_seconds = sum(m["s_per_step"] for m in metrics_lines(folder / f"{grpo}.metrics.jsonl"))
        extra = max(1, round(grpo_seconds / per_step))

    def run_control() -> float:
        shutil.rmtree(folder / control, ignore_errors=True)
        shutil.copytree(sft, folder / control)
        return timed(["sft", str(instructions), "--resume", str(folder / control), "-o", str(folder / control),
                      "--extend-to", str(base_steps + extra), "--threads", str(threads)], threads=threads,
                     stdout_path=folder / f"{control}.metrics.jsonl")

    control_cpu = cpu_seconds(folder, control, run_control)

    # answers on the test split, scores, paired tests
    test = folder / "test.jsonl"
    if not test.exists():
        with open(instructions) as source, open(test, "w") as sink:
            sink.writelines(line for line in source if json.loads(line).get("split") == "test")
    from mllm.core.evaluation.kinds import KIND_OF_TASK

    kind_name = KIND_OF_TASK.get(args.task.lower(), "regression")
    systems = {"a: SFT": args.sft, "b: SFT + same compute": control, "c: SFT + GRPO": grpo}
    answers = {label: answer(folder, checkpoint, test, kind_name, threads) for label, checkpoint in systems.items()}
    scores = {label: evaluate(path, None, threads, args.bootstrap)["tasks"][args.task] for label, path in answers.items()}
    paired = {
        "c vs a": evaluate(answers["c: SFT + GRPO"], answers["a: SFT"], threads, args.bootstrap)["comparison"]["tasks"][args.task],
        "c vs b": evaluate(answers["c: SFT + GRPO"], answers["b: SFT + same compute"], threads, args.bootstrap)["comparison"]["tasks"][args.task],
    }
    headline = HEADLINE.get(kind_name, tuple(scores["a: SFT"]["metrics"])[:2])
    report = {
        "folder": str(folder), "task": args.task, "split": "test", "n": scores["a: SFT"]["n"],
        "grpo_options": options, "control_extra_steps": extra, "sft_steps": base_steps,
        # what the GRPO run was trained with (its checkpoint's own record; a reused run keeps its options)
        "grpo_config": json.loads((folder / grpo / "trainer_state.json").read_text())["config"],
        "cpu_seconds": {"grpo": grpo_cpu, "control": control_cpu},
        "systems": {label: {"checkpoint": systems[label], "parse_rate": s["parse_rate"], "metrics": s["metrics"]}
                    for label, s in scores.items()},
        "paired": paired, "grpo_curve": curve, "written": time.strftime("%Y-%m-%d %H:%M"),
    }
    (folder / f"{args.name}.study.json").write_text(json.dumps(report, indent=1))

    print(f"\n{args.task} on the test split ({report['n']} items); GRPO {grpo_cpu:.0f} CPU s, control "
          f"{control_cpu:.0f} CPU s ({extra} extra SFT steps), {threads} thread(s)", file=sys.stderr)
    for label, s in scores.items():
        cells = [f"{m} {s['metrics'][m]['value']:.3f} ({s['metrics'][m]['low']:.2f}-{s['metrics'][m]['high']:.2f})"
                 for m in headline]
        print(f"  {label:24} {'  '.join(cells)}  parse {s['parse_rate']:.2f}", file=sys.stderr)
    for label, test_result in paired.items():
        for m in headline:
            t = test_result["metrics"].get(m)
            if t:
                print(f"  {label}: {m} {t['a']:.3f} - {t['b']:.3f} = {t['difference']:+.3f} "
                      f"({t['low']:+.3f} to {t['high']:+.3f}), p = {t['p_value']:.3f}, n = {test_result['n_paired']}",
                      file=sys.stderr)
    first, last = curve[:5], curve[-5:]
    mean = lambda rows, k: statistics.mean(r[k] for r in rows if k in r) if any(k in r for r in rows) else float("nan")
    print(f"  GRPO reward {mean(first, 'reward_mean'):.3f} (first 5 steps) -> {mean(last, 'reward_mean'):.3f} (last 5); "
          f"group std {mean(first, 'reward_std'):.3f} -> {mean(last, 'reward_std'):.3f}; KL {mean(last, 'kl'):.4f}; "
          f"zero-spread {mean(curve, 'zero_spread'):.2f}; clipped {mean(curve, 'clip_region'):.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
