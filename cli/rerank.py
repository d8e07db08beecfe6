"""`mllm rerank`: best-of-N, the best of each id's samples by a numeric field."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, FORMAT_HELP, INPUT_HELP, OUTPUT_HELP, console, finish, overwrite_option,
                             progress, refuse_overwrite, stream_errors)
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter, read_records


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " An id's samples are consecutive records (as `mllm caption --samples N` writes them)."),
    by: str = typer.Option(..., "--by", help="The numeric field to rank by, a dotted path: reward.total, reward.musicality, logprob, logprob_mean."),
    lowest: bool = typer.Option(False, "--lowest", help="Lower is better (an error, a distance); default: higher is better."),
    keep_all: bool = typer.Option(False, "--keep-all", help="Write every sample, best first, each with its `rank`, instead of the best alone."),
    split: Optional[str] = typer.Option(None, "--split", help="Rank only the records of this split (e.g. test); the others pass through untouched."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
) -> None:
    """Keep the best of each id's samples by a numeric field: best-of-N reranking.

    The records of one id (a run of consecutive records, as `mllm caption --samples N` writes an
    id's N samples) are ranked by --by FIELD, a dotted path into the record (reward.total from
    `mllm score`, logprob from caption), highest first (--lowest: lowest first); ties go to the
    smaller `sample` index. One record per id comes out, the best, with `rank` 1 and `rerank`
    {by, best, of}; --keep-all writes all N, best first, each with its `rank`. An id whose samples
    include an error record comes out as that record; one whose sample lacks the field (or it is
    not a number) as an error record naming the record and the field (exit 1); an id met again
    after other ids is refused (its records become error records). --split NAME ranks that split
    and passes the others through untouched. Records out: one per id (all with --keep-all).

    Examples:

        mllm caption key.enc.jsonl --model runs/key --split test --samples 8 | mllm score --reward task --split test | mllm rerank --by reward.total --split test | mllm eval-mir --split test

        mllm rerank samples.jsonl --by logprob_mean --keep-all --split test -o ranked.jsonl

        mllm rerank scored.jsonl --by reward.musicality -o best.jsonl
    """
    from mllm.core.infer.rerank import STAGE, rerank_records

    refuse_overwrite(output, input, overwrite=overwrite)
    summary = StreamSummary(STAGE)
    with ExitStack() as stack, stream_errors():
        writer = stack.enter_context(RecordWriter(output or "-", output_format))
        with progress() as bar:
            task = bar.add_task(f"rerank by {by}", total=None)  # records out: not known before the end
            for record in rerank_records(read_records(input), by, lowest=lowest, keep_all=keep_all, split=split,
                                         summary=summary):
                writer.write(record)
                bar.advance(task)
    kept = "every sample, ranked" if keep_all else "the best of each id"
    console.print(f"rerank: {kept} by {by} ({'lowest' if lowest else 'highest'} first)", highlight=False)
    finish(summary, allow_errors)
