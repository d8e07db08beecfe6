"""`mllm extract-features`: MIR analysis of each record's audio (LLark's metadata augmentation)."""

from __future__ import annotations

from typing import Optional

import typer

from mllm.cli.common import (
    set_threads, threads_option,
    ALLOW_ERRORS_HELP,
    FORMAT_HELP,
    INPUT_HELP,
    OUTPUT_HELP,
    fail,
    finish,
    progress,
    record_total,
    overwrite_option, refuse_overwrite,
    stream_errors,
)
from mllm.core.features.backend import DEFAULT_BACKEND, BackendUnavailable, backend_names, get_backend
from mllm.core.features.extract import DEFAULT_SAMPLE_RATE, STAGE, extract_features
from mllm.core.io.shards import parse_shard
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter, read_records


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " Each record needs `audio` (a path); `start`/`end` crop it."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    backend: str = typer.Option(DEFAULT_BACKEND, "--backend", help=f"Analysis backend: {', '.join(backend_names())} (essentia and madmom need their extras; madmom: LLark's models, slower)."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help=f"Decode rate in Hz (audio is decoded to mono at this rate). Default: the backend's own, {DEFAULT_SAMPLE_RATE} for librosa, 44100 for essentia and madmom."),
    workers: int = typer.Option(1, "--workers", help="Worker processes (one core each); output keeps the input order."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: analyse only records i, i+n, i+2n, ... (0-based), e.g. $SLURM_ARRAY_TASK_ID/8 or $RANK/$WORLD_SIZE."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Add `features` to each record: duration, tempo, beats, downbeats and meter, key, chords, loudness.

    Field names as in docs/records.md; how each is computed: docs/features.md.

    A record whose audio is missing or unreadable gets an `error` field; the others go on.

    Examples:

        mllm extract-features clips.jsonl -o clips.features.jsonl

        mllm extract-features clips.jsonl --workers 2 --backend essentia -o features.parquet

        mllm extract-features big.jsonl --shard $SLURM_ARRAY_TASK_ID/16 -o part-$SLURM_ARRAY_TASK_ID.jsonl
    """
    set_threads(threads, workers=workers)
    refuse_overwrite(output, input, overwrite=overwrite)
    if workers < 1:
        raise fail(f"--workers must be >= 1, got {workers}")
    if sample_rate is not None and not 1000 <= sample_rate <= 192000:
        raise fail(f"--sample-rate must be between 1000 and 192000 Hz, got {sample_rate}")
    try:
        shard_spec = parse_shard(shard) if shard is not None else None
        get_backend(backend)
    except (BackendUnavailable, ValueError) as exc:
        raise fail(str(exc)) from None
    summary = StreamSummary(STAGE)
    with stream_errors(), RecordWriter(output or "-", output_format) as writer, progress() as bar:
        task = bar.add_task("analysing", total=record_total(input, shard=shard_spec))
        records = read_records(input)
        for record in extract_features(
            records, backend=backend, sample_rate=sample_rate, workers=workers, shard=shard_spec, summary=summary
        ):
            writer.write(record)
            bar.advance(task)
    finish(summary, allow_errors)
