"""`mllm eval-reward`: score a reward model against human preferences and mean opinion scores."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from mllm.cli.common import (
    ALLOW_ERRORS_HELP,
    FORMAT_HELP,
    INPUT_HELP,
    console,
    fail,
    finish_report,
    name_value_pairs,
    overwrite_option,
    progress,
    refuse_overwrite,
    set_threads,
    stream_errors,
    threads_option,
)
from mllm.core.evaluation.reward import RewardOptions, evaluate
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordStreamError, RecordWriter
from mllm.core.reward_model.released import INPUT_FORMATS, open_reward_records


def _bins(values: list[str]) -> dict[str, tuple[float, ...]]:
    out = {}
    for name, edges in name_value_pairs(values, "--bins").items():
        try:
            out[name] = tuple(float(e) for e in edges.split(",") if e.strip())
        except ValueError:
            raise fail(f"--bins {name}: edges must be numbers, got {edges!r}") from None
    return out


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " CMI-RewardBench results.jsonl files and MOS tables (.csv, .tsv, .txt) are recognised."),
    per_item: bool = typer.Option(False, "--per-item", help="Write every record with its scores (`eval`) instead of the summary."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write the summary (JSON) or the --per-item records (JSONL, or Parquet by the extension) here instead of stdout."),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    table: bool = typer.Option(False, "--table", help="Print a table of the metrics on stderr."),
    compare_with: Optional[str] = typer.Option(None, "--compare", help="Score a second model's file on the same items and add a paired bootstrap test."),
    split: Optional[str] = typer.Option(None, "--split", help="Score only the records of this split (e.g. test); the others pass through unscored. Default: every split, each scored apart."),
    by: list[str] = typer.Option([], "--by", help="Break every task down by this field (repeatable): confidence, modality, duration (binned), any field or dotted path; an {axis: value} field is read per axis."),
    bins: list[str] = typer.Option([], "--bins", help="FIELD=E1,E2,...: bin a numeric --by field at these edges ([E1,E2) ... [En-1,En]). duration defaults to 10,30,60,120,500 (CMI-RewardBench)."),
    tie_margin: float = typer.Option(0.0, "--tie-margin", help="Pairs: the model calls a tie when |reward - reward_b| <= this margin (a tie on either side counts 0.5)."),
    preference_axis: str = typer.Option("musicality", "--preference-axis", help="The axis a holistic preference (a plain label, as Music Arena's) is scored on."),
    input_format: str = typer.Option("auto", "--input-format", help=f"How to read INPUT: {', '.join(INPUT_FORMATS)} (auto: a .csv/.tsv/.txt is a MOS table, a JSONL with CMI-RewardBench's fields a results.jsonl)."),
    predictions: Optional[str] = typer.Option(None, "--predictions", help="A MOS table of a model's scores per clip (same forms as INPUT, e.g. an AudioMOS answer.txt) that gives the `reward` of a MOS-table INPUT."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the intervals."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Score a reward model against people: preference accuracy on pairs, LCC/SRCC/Kendall/MSE on MOS.

    Pair records (`audio`, `audio_b`, `preference` a|b|both|neither, the model's `reward` and
    `reward_b` per axis) give preference accuracy, a tie on either side counted 0.5 as
    CMI-RewardBench does; MOS records (`mos` and `reward` per axis, `system`) give LCC, SRCC,
    Kendall's tau and MSE per clip and per system. Every figure has a 95 % bootstrap interval
    (per system: resampling systems). Prints one JSON summary; fields in docs/reward.md.

    Examples:

        mllm eval-reward tests/data/reward/pairs.jsonl --table

        mllm eval-reward tests/data/reward/results.jsonl --split test --by confidence --by modality --table

        mllm eval-reward tests/data/reward/mos.csv --predictions tests/data/reward/mos_predicted.csv

        mllm eval-reward tests/data/reward/pairs.jsonl --compare tests/data/reward/pairs_other.jsonl --table

        mllm eval-reward tests/data/reward/pairs.jsonl --per-item -o scored.jsonl
    """
    set_threads(threads)
    if per_item and compare_with:
        raise fail("--compare adds a comparison to the summary; --per-item writes records instead: give one of them")
    if not per_item and (output_format == "parquet" or (output or "").lower().endswith(".parquet")):
        raise fail("the summary is one JSON document; Parquet (--format, -o FILE.parquet) is for the "
                   "--per-item records")
    refuse_overwrite(output, input, compare_with, predictions, overwrite=overwrite)
    options = RewardOptions(split=split, preference_axis=preference_axis, tie_margin=tie_margin, by=tuple(by),
                            bins=_bins(bins), n_resamples=bootstrap, confidence=confidence, seed=seed)
    try:
        options.check()
    except ValueError as exc:
        raise fail(str(exc)) from None
    summary = StreamSummary("eval-reward")
    with ExitStack() as stack, stream_errors():
        try:
            records, read_as = open_reward_records(input, stack, input_format, predictions)
            other = open_reward_records(compare_with, stack, input_format, predictions)[0] if compare_with else None
        except (ValueError, RecordStreamError) as exc:
            raise fail(str(exc)) from None
        if read_as != "records":
            console.print(f"reading {input} as a {read_as} file", highlight=False, soft_wrap=True)
        writer = stack.enter_context(RecordWriter(output or "-", output_format)) if per_item else None
        with progress() as bar:
            bar.add_task("scoring", total=None)
            result = evaluate(records, options, write=writer.write if writer else None, other=other, summary=summary,
                              name=input, other_name=compare_with)
    not_scored = result["not_scored"]
    scored, other_splits = result["n_scored_by_split"], not_scored["other_splits"]
    if split is not None and not scored:
        seen = ", ".join(f"{name} {n}" for name, n in other_splits.items()) or "none"
        console.print(f"warning: no record of split {split!r} was scored (splits seen: {seen})", highlight=False, soft_wrap=True)
    elif split is not None and other_splits:
        console.print(f"split {split}: other splits passed through unscored ("
                      + ", ".join(f"{name} {n}" for name, n in other_splits.items()) + ")", highlight=False, soft_wrap=True)
    elif split is None and len(scored) > 1:
        console.print("each split scored apart: " + ", ".join(f"{name} {n}" for name, n in scored.items())
                      + " records (give --split test for the held-out figures alone)", highlight=False, soft_wrap=True)
    if not_scored["no_judgement"]:
        console.print(f"{not_scored['no_judgement']} records have neither `mos` nor `preference`: passed through unscored",
                      highlight=False, soft_wrap=True)
    for task, n in not_scored["axes_without_model_score"].items():
        console.print(f"{task}: {n} records have the human judgement but no model score on this axis (not scored)",
                      highlight=False, soft_wrap=True)
    finish_report(result, output=output, per_item=per_item, table=render_table(result) if table else None,
                  summary=summary, allow_errors=allow_errors)


def _interval(entry: dict) -> str:
    low, high = entry.get("low"), entry.get("high")
    if low is None or low != low:
        return ""
    return f"[{low:.3f}, {high:.3f}]"


def render_table(result: dict) -> Table:
    """One row per task, level (pairs / per clip, per system, a --by group) and metric: value,
    interval, n (and with --compare the other model's value, A - B and p). The split is in the
    title, or in the task's name when several splits were scored apart."""
    comparison = result.get("comparison", {}).get("tasks", {})
    splits = sorted({"no split" if t.get("split") is None else t["split"] for t in result["tasks"].values()})
    title = "eval-reward" + (f": split {splits[0]}" if len(splits) == 1 else "")
    table = Table(title=title, title_justify="left")
    confidence = int(result["bootstrap"]["confidence"] * 100)
    for column in ("task", "level", "metric", "value", f"{confidence} % interval", "n"):
        table.add_column(column, overflow="fold")
    if comparison:
        for column in ("other", "A - B", "p"):
            table.add_column(column, overflow="fold")
    for name, task in result["tasks"].items():
        levels = [("pairs" if task["kind"] == "preference" else "per clip", "metrics", task["metrics"], task["n"])]
        if "metrics_per_system" in task:
            levels.append(("per system", "metrics_per_system", task["metrics_per_system"], task["n_systems"]))
        for field, groups in task.get("by", {}).items():
            levels += [(f"{field} = {value}", None, group["metrics"], group["n"]) for value, group in groups.items()]
        for level, block, metrics, n in levels:
            paired = comparison.get(name, {}).get(block, {}) if block else {}
            for metric, entry in metrics.items():
                value = "" if entry["value"] != entry["value"] else f"{entry['value']:.4f}"
                row = [name, level, metric, value, _interval(entry), str(n)]
                if comparison:
                    test = paired.get(metric)
                    row += [f"{test['b']:.4f}", f"{test['difference']:+.4f}", f"{test['p_value']:.3g}"] if test else ["", "", ""]
                table.add_row(*map(escape, row))  # names from the data: no markup
    return table
