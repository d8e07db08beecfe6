"""`mllm demo`: the whole study, offline, into one folder (core/demo.py runs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mllm.cli.common import EXIT_INTERRUPTED, console, fail


def command(
    folder: Path = typer.Argument(Path("demo"), help="Folder of every file the demo writes (made if absent)."),
    fast: bool = typer.Option(False, "--fast", help="A tiny random LLM built in FOLDER/llm, 30 clips of 4 s, few "
                                                    "steps: checks the whole pipeline in about a minute (its "
                                                    "figures mean nothing)."),
    llm: Optional[str] = typer.Option(None, "--llm", help="The LLM of `mllm sft` (default: smollm2, the embedded "
                                                          "SmolLM2-135M-Instruct; with --fast: the tiny one)."),
    encoder: str = typer.Option("dsp", "--encoder", help="The encoder of `mllm encode`: a DSP name, a hub id or a "
                                                         "local model folder."),
    frame_rate: float = typer.Option(1.0, "--frame-rate", help="Frames per second of the embeddings (audio tokens "
                                                               "per second of audio)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto: passed to encode, sft, "
                                                                "grpo and caption (default: theirs, auto)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads of every stage (passed as --threads; "
                                                                  "default: each stage's own rule)."),
    clips: Optional[int] = typer.Option(None, "--clips", help="Clips to render (default 200; --fast 30)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="Seconds per clip (default 8; --fast 4)."),
    sft_steps: Optional[int] = typer.Option(None, "--sft-steps", help="Steps of `mllm sft` (default 150; --fast "
                                                                      "120)."),
    grpo_steps: Optional[int] = typer.Option(None, "--grpo-steps", help="Steps of `mllm grpo` (default 8; --fast "
                                                                        "2)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the corpus, the phrasings, training, the baselines and the "
                                               "shuffle."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples of every interval."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Run into a folder that holds another demo (other "
                                                              "options) or other files: every stage reruns, its "
                                                              "outputs removed first."),
) -> None:
    """Run the whole study offline and print one table: chance, prior, DSP, probe, SFT, SFT + GRPO, shuffled audio.

    synth -> extract-features -> encode (DSP) -> build-instructions (key, tempo, energy, caption)
    -> sft (SmolLM2-135M-Instruct + LoRA) -> grpo (energy) -> regress --method probe, caption on
    the held-out split (SFT, SFT + GRPO, and SFT given shuffled audio) -> eval-mir and
    eval-caption. Every stage is the real `mllm` command, run in FOLDER; FOLDER/pipeline.sh holds
    them as they ran. The table (stderr) gives per task every row with its 95 % bootstrap interval
    and the number of test items; FOLDER/results.json holds every figure, FOLDER/results.png the
    energy predictions, the key confusion matrix and the training curves. A rerun with the same
    options reuses the finished stages (a stopped demo continues); other options need --overwrite.

    Examples:

        mllm demo --fast /tmp/demo-fast

        mllm demo runs/demo --threads 2

        mllm demo runs/gpu --llm HuggingFaceTB/SmolLM2-1.7B-Instruct --encoder openai/whisper-base --device cuda --clips 2000
    """
    from mllm.core.demo import DemoError, DemoOptions, run_demo

    for name, value in (("--clips", clips), ("--sft-steps", sft_steps), ("--grpo-steps", grpo_steps),
                        ("--threads", threads)):
        if value is not None and value < 1:
            raise fail(f"{name} must be >= 1, got {value}")
    if clips is not None and clips < 10:
        raise fail(f"--clips must be >= 10 (the test split needs clips of its own), got {clips}")
    if seconds is not None and not 1 <= seconds <= 60:
        raise fail(f"--seconds must be in [1, 60], got {seconds}")
    options = DemoOptions(folder=folder, fast=fast, llm=llm, encoder=encoder, frame_rate=frame_rate, device=device,
                          threads=threads, clips=clips, seconds=seconds, sft_steps=sft_steps, grpo_steps=grpo_steps,
                          seed=seed, bootstrap=bootstrap, overwrite=overwrite)
    try:
        run_demo(options, console)
    except DemoError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        console.print("interrupted: the finished stages are kept; the same command continues from there")
        raise typer.Exit(EXIT_INTERRUPTED) from None
