"""`mllm encode`: audio records -> `audio_embedding` tensors pooled to a frame rate."""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Optional

import typer
from rich.markup import escape

from mllm.cli.common import (set_threads, threads_option, ALLOW_ERRORS_HELP, FORMAT_HELP, INPUT_HELP, OUTPUT_HELP, console, fail, finish, progress, record_total,
                             overwrite_option, refuse_overwrite, stream_errors)
from mllm.core.encoders import EmbeddingCache, EncodeOptions, EncoderError, encode_records, load_encoder
from mllm.core.encoders.dsp import DSP_ENCODERS, DSP_FEATURES
from mllm.core.encoders.encode import STAGE, STORE_DTYPES
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter, read_records
from mllm.core.io.shards import parse_shard, rank_output_path, torchrun_share

DSP_NAMES = ", ".join([*DSP_ENCODERS, *DSP_FEATURES])


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " Records need `audio` (a path); `start`/`end` crop it."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP + " Required under torchrun (one file per rank)."),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    encoder_name: str = typer.Option("dsp", "--encoder", help=f"A DSP encoder ({DSP_NAMES}, or features joined by '+'), a Hugging Face hub id, or a local model folder."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Hidden state: -1 (last, the default), N (0 = input embedding), 'a,b,c' (their mean), 'all' (mean of every state), 'projection' (CLAP's joint embedding). Not for DSP encoders."),
    frame_rate: float = typer.Option(10.0, "--frame-rate", help="Frames per second of the stored embedding (mean pooling; LLark uses 10). 0 = one frame per clip."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N, or auto (CUDA when available; the rank's GPU under torchrun)."),
    dtype: str = typer.Option("float32", "--dtype", help="Compute precision of Hugging Face models: float32, bfloat16 (CPU or GPU), float16 (GPU only)."),
    store_dtype: str = typer.Option("float16", "--store-dtype", help=f"dtype of the stored embedding: {' or '.join(STORE_DTYPES)}."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Folder of cached embeddings, keyed by audio content, crop, encoder weights, layer and frame rate."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Let a model folder run its own Python code (MERT needs it). Off unless given."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: encode only records i, i+n, i+2n, ... (0-based), for n parallel jobs."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Encode audio into frame embeddings pooled to a frame rate (`audio_embedding` [T, D]).

    DSP encoders (librosa, no weights) or any Hugging Face audio model: Whisper's encoder, CLAP's
    audio tower, AST, wav2vec2/HuBERT/WavLM, MERT (with --trust-remote-code). Long audio goes in
    windows. Adds `audio_embedding`, `encoder`, `layer` and `frame_rate` to every record.

    Examples:

        mllm encode clips.jsonl -o clips.enc.jsonl

        mllm encode clips.jsonl --encoder chroma+onset+loudness --frame-rate 1

        mllm encode clips.jsonl --encoder openai/whisper-base --layer -1 --cache cache/ -o whisper.parquet

        mllm encode clips.jsonl --encoder m-a-p/MERT-v1-95M --trust-remote-code --layer all --device cuda --dtype bfloat16

        torchrun --nproc-per-node 4 -m mllm.cli encode clips.jsonl --encoder models/hubert/ -o out/emb.jsonl
    """
    set_threads(threads)
    try:
        share = torchrun_share(parse_shard(shard) if shard else (0, 1))
        options = EncodeOptions(frame_rate=frame_rate, batch_size=batch_size, store_dtype=store_dtype, shard=share).check()
    except ValueError as exc:
        raise fail(str(exc)) from None
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not output:
        raise fail("under torchrun every rank writes its own file: give -o PATH (rank r writes PATH with .rank<r>-of-<n> before the extension)")
    destination = rank_output_path(output, rank, world) if output else "-"
    refuse_overwrite(destination, input, overwrite=overwrite)
    try:
        encoder = load_encoder(encoder_name, layer=layer, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        embedding_cache = EmbeddingCache(cache) if cache else None
    except (EncoderError, OSError) as exc:
        raise fail(str(exc)) from None
    summary = StreamSummary(STAGE if world == 1 else f"{STAGE} (rank {rank} of {world})")
    if share != (0, 1):
        console.print(f"encoding every {share[1]}th record from position {share[0]}", highlight=False)
    with ExitStack() as stack, stream_errors():
        writer = stack.enter_context(RecordWriter(destination, output_format))
        with progress() as bar:
            task = bar.add_task(f"encoding ({encoder_name})", total=record_total(input, shard=share))
            for record in encode_records(read_records(input), encoder, options, cache=embedding_cache, summary=summary):
                writer.write(record)
                bar.advance(task)
    if embedding_cache is not None:
        rejected = (f" ({embedding_cache.rejected} entries were not what the records ask for and were recomputed: "
                    f"{escape(embedding_cache.last_rejection)})" if embedding_cache.rejected else "")
        console.print(f"cache {cache}: {embedding_cache.hits} hits, {embedding_cache.misses} misses{rejected}",
                      highlight=False, soft_wrap=True)
        if embedding_cache.write_errors:
            console.print(
                f"[yellow]warning:[/] {embedding_cache.write_errors} embeddings could not be cached: {escape(embedding_cache.last_write_error)}",
                highlight=False, soft_wrap=True,
            )
    finish(summary, allow_errors)
