"""`mllm env`: the versions, threads, devices and resources a bug report needs."""

from __future__ import annotations

import json

import typer

from mllm.core.diagnostics import environment, format_report


def command(
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object instead of lines."),
    network: bool = typer.Option(True, "--network/--no-network", help="Check whether the Hugging Face endpoint ($HF_ENDPOINT) answers (one HEAD request, 5 s timeout)."),
) -> None:
    """Print what a bug report needs: versions, threads, CPU and CUDA, METEOR's Java and WordNet, the LLM cache, the hub.

    Versions of python, torch, transformers, peft, mir_eval, librosa, essentia, madmom and the
    other libraries (read from the installed metadata); the cores and thread variables; the CPU's
    AVX-512/AMX flags and whether bf16 autocast is on by default; the CUDA devices; Java and the
    METEOR jar; where WordNet would come from; the embedded SmolLM2 and its conversion in mllm's
    cache; the hub endpoint, offline mode and whether it answers. Nothing is downloaded or written.

    Examples:

        mllm env

        mllm env --json --no-network > env.json
    """
    report = environment(check_hub=network)
    typer.echo(json.dumps(report, indent=1) if as_json else format_report(report))
