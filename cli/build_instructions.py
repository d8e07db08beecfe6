"""`mllm build-instructions`: records with labels/features -> instruction records (messages, answer, task, split)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer

from mllm.cli.common import (
    ALLOW_ERRORS_HELP, FORMAT_HELP, OUTPUT_HELP, console, fail, finish, name_value_pairs, progress, record_total,
    overwrite_option, refuse_overwrite, stream_errors,
)
from mllm.core.evaluation.tasks import TaskError, parse_scale
from mllm.core.instructions.adapters import ADAPTERS, AdapterError, read_dataset
from mllm.core.instructions.build import BuildOptions, InstructionBuilder, build_stream, write_instructions
from mllm.core.instructions.generator import FAMILIES as PROMPT_FAMILIES, GeneratorConfig, QaGenerator
from mllm.core.instructions.splits import SPLIT_MODES, SplitError, SplitRule, parse_fractions
from mllm.core.instructions.tasks import FAMILIES
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import read_records


def _scales(values: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, text in name_value_pairs(values, "--scale").items():
        try:
            out[name] = parse_scale(text)
        except TaskError as exc:
            raise fail(f"--scale {name}: {exc}") from None
    return out


def command(
    input: Optional[str] = typer.Argument(None, help="Input records (JSONL/Parquet, '-' for stdin: the default without --dataset), e.g. from `mllm synth` or `extract-features`. Not with --dataset."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help=f"Read a public dataset's own layout instead of INPUT: {', '.join(ADAPTERS)}."),
    root: Optional[str] = typer.Option(None, "--root", help="The dataset's folder (with --dataset)."),
    dataset_options: list[str] = typer.Option([], "--dataset-option", help="KEY=VALUE for the adapter (e.g. split_dir=..., audio_dir=...); docs/instructions.md lists them."),
    allow_missing_audio: bool = typer.Option(False, "--allow-missing-audio", help="With --dataset: keep rows whose audio file is not there (default: leave them out, counted)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    tasks: Optional[str] = typer.Option(None, "--tasks", help=f"Comma list of tasks (default: all): {', '.join(FAMILIES)}, or a numeric field's name (arousal, energy, ...)."),
    per_task: int = typer.Option(1, "--per-task", "--phrasings", min=1, help="Instruction records per (excerpt, task), each with another question phrasing."),
    seed: int = typer.Option(0, "--seed", help="Seed of the phrasing choices (and of the generator's requests)."),
    split_fractions: str = typer.Option("0.8,0.1,0.1", "--split-fractions", help="TRAIN,VALID,TEST fractions of the hashed split."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the hashed split (kept apart from --seed so phrasings can vary while splits stay)."),
    split_from: str = typer.Option("auto", "--split-from", help="auto: the dataset's own split when a record has one, else hashed; dataset: require it; hash: always hashed."),
    group_by: str = typer.Option("track", "--group-by", help="Field whose value keeps records together in a hashed split (falls back to audio, then id)."),
    label_source: str = typer.Option("labels", "--from", help="Which values win when both exist: labels (ground truth) or features (analysis); the other fills gaps."),
    scale: list[str] = typer.Option([], "--scale", help="NAME=LOW,HIGH: declare the scale of a numeric field (records' own `scales` and arousal/valence 1-9 otherwise)."),
    template_questions: bool = typer.Option(False, "--template-questions", help="Phrase every question from mllm's templates, even where a record carries its dataset's own question (CMI-Bench)."),
    leakage_check: str = typer.Option("path", "--leakage-check", help="Refuse to write when one audio is in two splits, judged by: path, content (SHA-256 of the file), or off."),
    generator: Optional[str] = typer.Option(None, "--generator", help="OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1) to generate QA pairs from each record's metadata, LLark-style."),
    generator_model: str = typer.Option("gpt-4o-mini", "--generator-model", help="Model name sent to the endpoint."),
    generator_prompt: str = typer.Option("understanding", "--generator-prompt", help=f"Prompt family: {', '.join(PROMPT_FAMILIES)}."),
    generator_key_env: str = typer.Option("OPENAI_API_KEY", "--generator-key-env", help="Environment variable holding the endpoint's API key (none sent if unset)."),
    generator_timeout: float = typer.Option(120.0, "--generator-timeout", help="Seconds to wait for one reply."),
    generator_retries: int = typer.Option(2, "--generator-retries", min=0, help="Retries after a timeout, a connection error, 429 or 5xx."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
) -> None:
    """Turn records with labels and/or features into instruction records for SFT and evaluation.

    One record per (excerpt, task): `messages` (user turn "<audio>\\n<question>", assistant turn
    the answer), `answer` (structured, as eval-mir reads it), `task`, `split`, `source`.

    Examples:

        mllm build-instructions --dataset deam --root data/DEAM --tasks arousal,valence -o deam.jsonl

        mllm build-instructions features.jsonl --tasks key,tempo,mir_qa --per-task 2 --seed 1

        mllm build-instructions --dataset gtzan --root data/gtzan --generator http://127.0.0.1:8000/v1
    """
    if dataset is not None and input is not None:
        raise fail("give either INPUT (records) or --dataset NAME --root DIR, not both")
    if dataset is None and input is None:
        input = "-"  # records on stdin, as every other command reads them
    refuse_overwrite(output, input, overwrite=overwrite)
    if dataset and not root:
        raise fail("--dataset needs --root DIR (the dataset's folder)")
    if split_from not in SPLIT_MODES:
        raise fail(f"--split-from must be one of {', '.join(SPLIT_MODES)}, got {split_from!r}")
    if label_source not in ("labels", "features"):
        raise fail(f"--from must be labels or features, got {label_source!r}")
    if leakage_check not in ("path", "content", "off"):
        raise fail(f"--leakage-check must be path, content or off, got {leakage_check!r}")
    if generator_prompt not in PROMPT_FAMILIES:
        raise fail(f"--generator-prompt must be one of {', '.join(PROMPT_FAMILIES)}, got {generator_prompt!r}")
    try:
        fractions = parse_fractions(split_fractions)
    except SplitError as exc:
        raise fail(f"--split-fractions: {exc}") from None
    task_list = tuple(t.strip() for t in tasks.split(",") if t.strip()) if tasks else None
    if tasks is not None and not task_list:
        raise fail("--tasks is empty")
    qa_generator = None
    if generator:
        try:
            config = GeneratorConfig(url=generator, model=generator_model, family=generator_prompt,
                                     api_key_env=generator_key_env, timeout=generator_timeout, retries=generator_retries)
        except ValueError as exc:
            raise fail(str(exc)) from None
        qa_generator = QaGenerator(config)
    options = BuildOptions(
        tasks=task_list, per_task=per_task, seed=seed, prefer=label_source,
        split_rule=SplitRule(split_from, fractions, split_seed, group_by), scales=_scales(scale),
        dataset_questions=not template_questions, leakage=leakage_check, generator=qa_generator,
    )
    builder = InstructionBuilder(options)
    summary = StreamSummary("build-instructions")
    report = None
    with ExitStack(), stream_errors():
        try:
            if dataset:
                records, report = read_dataset(dataset, root, name_value_pairs(dataset_options, "--dataset-option"), keep_missing_audio=allow_missing_audio)
            else:
                records = read_records(input)
            with progress() as bar:
                task = bar.add_task("building instructions", total=None if dataset else record_total(input))

                def counted(stream):
                    for record in stream:
                        bar.advance(task)
                        yield record

                written = write_instructions(build_stream(counted(records), builder, summary), output or "-", output_format, builder)
        except AdapterError as exc:
            raise fail(str(exc)) from None
    for line in (report.describe() if report else []) + builder.report_lines():
        console.print(line, highlight=False, markup=False)
    if not written:
        console.print(
            f"[bold red]error:[/] leakage: {builder.leakage.n_conflicts} records put audio that another split "
            "already holds; nothing was written:", highlight=False,
        )
        for line in builder.leakage.describe():
            console.print(f"  {line}", highlight=False, markup=False)
        raise typer.Exit(2)
    finish(summary, allow_errors)
