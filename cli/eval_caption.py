"""`mllm eval-caption`: score generated captions against reference captions."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer
from rich.table import Table

from mllm.cli.common import (set_threads, threads_option, ALLOW_ERRORS_HELP, FORMAT_HELP, INPUT_HELP, console, fail, finish_report, progress,
                             refuse_output_over_input, stream_errors)
from mllm.core.evaluation.captions import METRIC_GROUPS, CaptionOptions, check_options, evaluate, open_input
from mllm.core.evaluation.cmi_bench import CmiBenchError
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter
from mllm.core.metrics.captions import MissingResource


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " CMI-Bench caption result files (MusicCaps, SDD) are recognised."),
    metrics: str = typer.Option("bleu,meteor,rouge,cider", "--metrics", help=f"Comma-separated metrics among {', '.join(METRIC_GROUPS)}."),
    meteor: str = typer.Option("auto", "--meteor", help="METEOR backend: 'jar' (METEOR 1.5, needs Java), 'nltk' (needs WordNet: the meteor extra), 'auto' (jar when Java is found)."),
    per_item: bool = typer.Option(False, "--per-item", help="Write every record with its scores (field `eval`) instead of the summary."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write the summary (or the --per-item records) here instead of stdout."),
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

    Prints one JSON summary (corpus-level metrics with 95 % bootstrap intervals, n, failures).
    Text is lowercased and punctuation dropped before scoring (docs/captions.md).

    Examples:

        mllm eval-caption captions.jsonl --table

        mllm eval-caption captions.jsonl --metrics bleu,rouge,cider -o scores.json

        mllm eval-caption captions.jsonl --per-item -o caption_scores.jsonl

        mllm eval-caption results/qwen2_MusicCaps.jsonl --meteor nltk

        mllm eval-caption captions.jsonl --bertscore-model models/roberta-large/
    """
    set_threads(threads)
    refuse_output_over_input(output, input)
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
    )
    try:
        options = check_options(options)
    except (ValueError, MissingResource) as exc:
        raise fail(str(exc)) from None
    summary = StreamSummary("eval-caption")
    with ExitStack() as stack, stream_errors():
        try:
            source = open_input(input, stack, cmi_bench=cmi_bench)
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
    finish_report(
        result, output=output, per_item=per_item, table=render_table(result) if table else None,
        summary=summary, allow_errors=allow_errors,
    )


def render_table(result: dict) -> Table:
    """One row per metric: corpus value, interval, mean over items."""
    level = int(result["bootstrap"]["confidence"] * 100)
    table = Table(title=f"eval-caption: {result['n_scored']} items scored, {result['n_failed']} failed", title_justify="left")
    for column in ("metric", "value", f"{level} % interval", "mean of items"):
        table.add_column(column)
    for name, entry in result["metrics"].items():
        interval = f"[{entry['low']:.4f}, {entry['high']:.4f}]"
        if entry["interval_of"] != "value":
            interval += " (of the mean)"
        table.add_row(name, f"{entry['value']:.4f}", interval, f"{entry['mean_of_items']:.4f}")
    return table
