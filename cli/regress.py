"""`mllm regress`: numeric targets (arousal, valence, ...) from a MusicLLM, a published audio-text
model (Qwen2-Audio), or a probe."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer

from mllm.cli.common import (
    ALLOW_ERRORS_HELP, FORMAT_HELP, INPUT_HELP, OUTPUT_HELP, RESUME_HELP, console, device_option, dtype_option, fail,
    finish, max_new_tokens_option, name_value_pairs, open_generator, open_output, progress, record_total, RESUMABLE_OVERWRITE_HELP, overwrite_option, refuse_overwrite,
    resumed_ids, sample_option, set_threads, split_option, stream_errors, temperature_option, threads_option,
    top_p_option,
)
from mllm.core.infer.resume import skip_done
from mllm.core.evaluation.tasks import TaskError, parse_scale
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import read_records, spool_stdin


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " Records need `audio_embedding` (from `mllm encode`), or `audio` for an audio-text model."),
    model: Optional[str] = typer.Option(None, "--model", help="MusicLLM checkpoint folder, or a Hugging Face audio-text model such as Qwen2-Audio (--method llm)."),
    method: str = typer.Option("llm", "--method", help="llm: ask the model and read its answer; probe: a regressor on pooled embeddings trained on the train split."),
    probe: str = typer.Option("ridge", "--probe", help="Probe kind with --method probe: ridge (RidgeCV) or mlp."),
    split: Optional[str] = split_option(),
    targets: str = typer.Option("arousal,valence", "--targets", help="Comma-separated numeric targets; 'task' = each record's own task (instruction records, --method llm)."),
    scale: list[str] = typer.Option([], "--scale", help="NAME=LOW,HIGH for a target (repeatable); default: the record's scale for its task, else 1-9 for arousal/valence/energy/brightness."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    overwrite: bool = overwrite_option(RESUMABLE_OVERWRITE_HELP),
    output_format_name: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Questions per generate call (--method llm)."),
    max_new_tokens: int = max_new_tokens_option(32),
    sample: bool = sample_option(),
    temperature: float = temperature_option(),
    top_p: float = top_p_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler and of the MLP probe."),
    device: str = device_option(),
    dtype: str = dtype_option(),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Predict numeric targets and write `prediction` {name: value, ..., "parse_ok"}.

    --method llm asks the model "How would you rate the arousal ... on a scale from 1 to 9?" for
    each target, reads the number with eval-mir's parser, clips it to the scale and keeps the raw
    answers in `response` (parse_ok false for a target, value null, when no number was read).
    --method probe fits a ridge or MLP regressor on time-pooled embeddings of the train split
    (labels.<name> or answer.<name>; records without `split` are never fitted on) and predicts
    every record: the supervised baseline. Its predictions of train records are marked
    `in_sample`, and eval-mir leaves them out. --split NAME answers that split alone and passes
    the others through. With -o FILE --resume, a stopped run continues: records already done are
    skipped, failed ones done again.

    Examples:

        mllm regress deam.enc.jsonl --model runs/emotion --split test -o deam.pred.jsonl

        mllm regress deam.enc.jsonl --model runs/emotion --split test -o deam.pred.jsonl --resume

        mllm regress deam.enc.jsonl --model runs/emotion --split test | mllm eval-mir --split test --table

        mllm regress deam.enc.jsonl --method probe --probe ridge | mllm eval-mir --split test --table

        mllm regress corpus.enc.jsonl --model runs/demo --targets energy,brightness --scale energy=1,9

        mllm regress deam.instructions.jsonl --model runs/emotion --targets task --split test | mllm eval-mir --split test
    """
    set_threads(threads)
    names = tuple(t.strip() for t in targets.split(",") if t.strip())
    if not names:
        raise fail("--targets names no target")
    try:
        scales = {name: parse_scale(text) for name, text in name_value_pairs(scale, "--scale").items()}
    except TaskError as exc:
        raise fail(f"--scale: {exc}") from None
    refuse_overwrite(output, input, overwrite=overwrite, resume=resume, resumable=True)
    done = resumed_ids(output, output_format_name, resume)
    summary = StreamSummary("regress")
    with ExitStack() as stack, stream_errors():
        if method == "probe":
            from mllm.core.infer.probe import METHODS, fit_probe, predict_records

            if "task" in names:
                raise fail("--targets task is for --method llm; a probe needs the target names")
            if probe not in METHODS:
                raise fail(f"--probe must be one of {', '.join(METHODS)}")
            source, name = (spool_stdin(stack), "<stdin>") if input == "-" else (input, None)
            try:
                fitted = fit_probe(read_records(source, name=name), names, probe, seed)
            except ValueError as exc:
                raise fail(str(exc)) from None
            console.print(f"probe ({probe}) trained on " + ", ".join(f"{n}: {c}" for n, c in fitted.train_counts.items())
                          + " train records", highlight=False)
            # the probe is fitted on every train record; only the prediction pass skips written ids
            todo = skip_done(read_records(source, name=name), done)
            if fitted.unsplit:
                console.print(f"{fitted.unsplit} records have no `split`: predicted, never fitted on", highlight=False)
            results = predict_records(todo, fitted, scales, summary, split=split)
        elif method == "llm":
            from mllm.core.infer.regression import regress_records

            if not model:
                raise fail("--method llm needs --model (a checkpoint or an audio-text model)")
            generate = open_generator(model, device, dtype, max_new_tokens, sample, temperature, top_p, seed)
            todo = skip_done(read_records(input), done)
            results = regress_records(todo, generate, targets=names, scales=scales,
                                      batch_size=batch_size, summary=summary, split=split)
        else:
            raise fail(f"--method must be llm or probe, not {method!r}")
        write = open_output(stack, output, output_format_name, resume)
        with progress() as bar:
            task = bar.add_task(f"regress ({method})", total=record_total(input, skip=sum(done.values())))
            for record in results:
                write(record)
                bar.advance(task)
    finish(summary, allow_errors)
