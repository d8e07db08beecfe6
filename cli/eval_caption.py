"""`mllm eval-caption`: score generated captions against reference captions."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from mllm.cli.common import (set_threads, threads_option, ALLOW_ERRORS_HELP, FORMAT_HELP, INPUT_HELP, console, fail, finish_report, progress,
                             overwrite_option, refuse_overwrite, stream_errors)
from mllm.core.evaluation.captions import METRIC_GROUPS, CaptionOptions, check_options, evaluate
from mllm.core.evaluation.inputs import open_result_input
from mllm.core.evaluation.cmi_bench import CmiBenchError
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter
from mllm.core.metrics.caption_resources import MissingResource


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " CMI-Bench caption result files (MusicCaps, SDD) are recognised."),
    split: Optional[str] = typer.Option(None, "--split", help="Score only the records of this split (e.g. test); the others are not scored (--per-item writes them unchanged). Default: every split, each scored apart."),
    metrics: str = typer.Option("bleu,meteor,rouge,cider", "--metrics", help=f"Comma-separated metrics among {', '.join(METRIC_GROUPS)}."),
    meteor: str = typer.Option("auto", "--meteor", help="METEOR backend: 'jar' (METEOR 1.5, needs Java), 'nltk' (needs WordNet: the meteor extra), 'auto' (jar when Java is found)."),
    per_item: bool = typer.Option(False, "--per-item", help="Write every record with its scores (field `eval`) instead of the summary."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write the summary (or the --per-item records) here instead of stdout."),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    table: bool = typer.Option(False, "--table", help="Print a table of the metrics on stderr."),
    candidate_field: str = typer.Option("response", "--candidate-field", help="Field holding the generated caption."),
    reference_field: Optional[str] = typer.Option(None, "--reference-field", help="Field holding the reference caption(s) (default: 'reference', else 'answer', else 'caption')."),
    cmi_bench: Optional[bool] = typer.Option(None, "--cmi-bench/--no-cmi-bench", help="Read INPUT as a CMI-Bench result file (default: detected)."),
    bertscore_model: Optional[str] = typer.Option(None, "--bertscore-model", help="Local folder of a Hugging Face encoder: adds BERTScore (needs the bertscore extra)."),
    bertscore_layer: Optional[int] = typer.Option(None, "--bertscore-layer", help="BERTScore: hidden layer to embed with (default: the last)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the intervals (0: none)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Score generated captions against references: BLEU, METEOR, ROUGE-L, CIDEr, BERTScore.

    BLEU-1..4, METEOR, ROUGE-L (F and recall), CIDEr; BERTScore with a local model; one or several
    references per item.

    Prints one JSON summary (corpus-level metrics with 95 % bootstrap intervals of those same
    values, n, failures). Text is lowercased and punctuation dropped before scoring
    (docs/captions.md).

    Records of different splits are never scored together: --split test scores the held-out
    split alone, and without it each split gets its own block of metrics (records without a
    `split` form the block "no split"); every figure names its split and item count.

    Examples:

        mllm eval-caption captions.jsonl --split test --table

        mllm eval-caption captions.jsonl --split test --metrics bleu,rouge,cider -o scores.json

        mllm eval-caption captions.jsonl --split test --per-item -o caption_scores.jsonl

        mllm eval-caption results/qwen2_MusicCaps.jsonl --meteor nltk

        mllm eval-caption captions.jsonl --split test --bertscore-model models/roberta-large/
    """
    set_threads(threads)
    refuse_overwrite(output, input, overwrite=overwrite)
    chosen = tuple(m.strip() for m in metrics.split(",") if m.strip())
    if bertscore_model and "bertscore" not in chosen:
        chosen += ("bertscore",)
    options = CaptionOptions(
        metrics=chosen,
        candidate_fields=(candidate_field,),
        reference_fields=(reference_field,) if reference_field else CaptionOptions.reference_fields,
        meteor=meteor,
        bertscore_model=bertscore_model,
        bertscore_layer=bertscore_layer,
        n_resamples=bootstrap,
        confidence=confidence,
        seed=seed,
        split=split,
    )
    try:
        options = check_options(options)
    except (ValueError, MissingResource) as exc:
        raise fail(str(exc)) from None
    summary = StreamSummary("eval-caption")
    with ExitStack() as stack, stream_errors():
        try:
            source = open_result_input(input, stack, cmi_bench=cmi_bench, purpose="caption")
        except CmiBenchError as exc:
            raise fail(str(exc)) from None
        if source.cmi_bench:
            task = source.cmi_bench_task or "task not named"
            console.print(f"reading {input} as a CMI-Bench caption result file ({task})", highlight=False, markup=False)
        writer = stack.enter_context(RecordWriter(output or "-", output_format)) if per_item else None
        with progress() as bar:
            step = bar.add_task("reading", total=None)
            try:
                result = evaluate(
                    source, options, write=writer.write if writer else None, summary=summary,
                    note=lambda what: bar.update(step, description=what),
                )
            except (MissingResource, RuntimeError) as exc:
                raise fail(str(exc)) from None
    for line in split_notes(result):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    finish_report(
        result, output=output, per_item=per_item, table=render_tables(result) if table else None,
        summary=summary, allow_errors=allow_errors,
    )


def split_notes(result: dict) -> list[str]:
    """Which split each figure comes from, and what was not scored, for stderr."""
    tasks = result["not_scored"].get("other_tasks") or {}
    elsewhere = ["passed through unscored, for eval-mir: " + ", ".join(f"{task} {n}" for task, n in tasks.items())] if tasks else []
    return _split_notes(result) + elsewhere


def _split_notes(result: dict) -> list[str]:
    scored = ", ".join(f"{label} {n}" for label, n in result["n_scored_by_split"].items())
    other = result["not_scored"]["other_splits"]
    if result["split"] is not None:
        if not result["n_scored"]:
            seen = ", ".join(f"{label} {n}" for label, n in other.items()) or "none"
            return [f"warning: no record of split {result['split']!r} was scored (records of other splits: {seen})"]
        left = ", ".join(f"{label} {n}" for label, n in other.items())
        return [f"split {result['split']}: {result['n_scored']} items scored" + (f"; not scored (other splits): {left}" if left else "")]
    if not result["n_records"]:
        return []
    if len(result["splits"]) > 1:
        return [f"each split scored apart: {scored} items (give --split test for the held-out figures alone)"]
    if "no split" in result["splits"]:
        return [f"the records carry no `split`: all {result['n_scored']} items scored as one corpus, reported as \"no split\""]
    (label,) = result["splits"]
    return [f"every record is of split {label}: {result['n_scored']} items scored"]


def render_tables(result: dict) -> Group:
    """One table per split: one row per metric with its corpus value, interval, mean over items."""
    return Group(*(render_table(block, result["bootstrap"]["confidence"]) for block in result["splits"].values()))


def render_table(block: dict, confidence: float) -> Table:
    """The metrics of one split: corpus value, interval (of that value), mean over items."""
    split = "no split" if block["split"] is None else f"split {block['split']}"
    title = f"eval-caption, {split}: {block['n_scored']} items scored, {block['n_failed']} failed"
    table = Table(title=title, title_justify="left")
    for column in ("metric", "value", f"{int(confidence * 100)} % interval", "mean of items"):
        table.add_column(column)
    for name, entry in block["metrics"].items():
        interval = f"[{entry['low']:.4f}, {entry['high']:.4f}]"
        table.add_row(escape(name), f"{entry['value']:.4f}", interval, f"{entry['mean_of_items']:.4f}")
    return table
