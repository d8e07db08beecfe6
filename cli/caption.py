"""`mllm caption`: free-text answers (captions, or any question) from a MusicLLM checkpoint or a
published audio-text model (Qwen2-Audio)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, FORMAT_HELP, INPUT_HELP, OUTPUT_HELP, RESUME_HELP, device_option,
                             dtype_option, finish, max_new_tokens_option, open_generator, open_output, progress, record_total,
                             RESUMABLE_OVERWRITE_HELP, overwrite_option, refuse_overwrite, resumed_ids, sample_option, set_threads, split_option,
                             stream_errors, temperature_option, threads_option, top_p_option)
from mllm.core.infer.resume import skip_done
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import read_records


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " Records need `audio_embedding` (from `mllm encode`), or `audio` for an audio-text model; `messages` give their question."),
    model: str = typer.Option(..., "--model", help="MusicLLM checkpoint folder (from `mllm sft`), or a Hugging Face audio-text model (folder or owner/name hub id; Qwen2-Audio), which reads `audio`."),
    split: Optional[str] = split_option(),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Ask every record this instead of its own `messages` (default for records without messages: 'Describe this music.')."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    overwrite: bool = overwrite_option(RESUMABLE_OVERWRITE_HELP),
    output_format_name: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts per generate call (left-padded)."),
    max_new_tokens: int = max_new_tokens_option(128),
    sample: bool = sample_option(),
    samples: int = typer.Option(0, "--samples", min=0, help="Write N sampled responses per record (N records, each with `sample` 0..N-1, `logprob`, `logprob_mean`, `response_tokens`), drawn at --temperature/--top-p from per-record seeded streams; 0: one response (greedy, or --sample). --batch-size then counts sequences (batch-size // N records per call). MusicLLM checkpoints only."),
    temperature: float = temperature_option(),
    top_p: float = top_p_option(),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler."),
    device: str = device_option(),
    dtype: str = dtype_option(),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Generate a free-text answer for every record and write it as `response`.

    Batched generation, greedy by default or sampled; each record is asked its own question (its
    `messages` without the answer) or the --prompt text. Every input field is kept. With
    -o FILE --resume, a stopped run continues: records already done are skipped, failed ones done again.
    --model is a `mllm sft` checkpoint (reads `audio_embedding`) or a published audio-text model
    such as Qwen2-Audio (reads `audio`, cropped to `start`/`end`, through its own processor).
    --samples N writes N sampled responses per record answered (N records of its id, `sample` 0..N-1,
    each with its log-probability), the same for a seed whatever the batch or order; a failed record
    is one error record, other splits pass through once; `mllm rerank` keeps the best (docs/best-of-n.md).

    Examples:

        mllm caption clips.enc.jsonl --model runs/caption --split test -o captions.jsonl

        mllm caption clips.enc.jsonl --model runs/caption --split test -o captions.jsonl --resume

        mllm caption instructions.jsonl --model runs/key --split test | mllm eval-mir --split test --table

        mllm caption test.jsonl --model runs/key --prompt "What key is this music in?" --max-new-tokens 16

        mllm caption clips.jsonl --model Qwen/Qwen2-Audio-7B-Instruct --batch-size 4 -o qwen2audio.jsonl

        mllm caption clips.enc.jsonl --model runs/caption --split test --sample --temperature 0.7 --seed 3 | mllm eval-caption --split test

        mllm caption instructions.jsonl --model runs/key --split test --samples 8 --seed 1 | mllm score --reward task --split test | mllm rerank --by reward.total --split test
    """
    set_threads(threads)
    from mllm.core.infer.captions import STAGE, caption_records, sample_records

    refuse_overwrite(output, input, overwrite=overwrite, resume=resume, resumable=True)
    done = resumed_ids(output, output_format_name, resume)
    generate = open_generator(model, device, dtype, max_new_tokens, sample, temperature, top_p, seed, samples=samples)
    summary = StreamSummary(STAGE)
    with ExitStack() as stack, stream_errors():
        write = open_output(stack, output, output_format_name, resume)
        if samples:
            answered = sample_records(read_records(input), generate, samples=samples, seed=seed, prompt=prompt,
                                      batch_size=batch_size, summary=summary, split=split, done=done)
        else:
            answered = caption_records(skip_done(read_records(input), done), generate, prompt=prompt,
                                       batch_size=batch_size, summary=summary, split=split)
        with progress() as bar:
            # the bar counts input records; a record answered with N samples advances it 1/N per sample
            skip = sum(done.values()) // max(samples, 1)
            task = bar.add_task("caption", total=record_total(input, skip=skip))
            for record in answered:
                write(record)
                bar.advance(task, 1 / samples if samples and "sample" in record else 1)
    finish(summary, allow_errors)
