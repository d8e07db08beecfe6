"""`mllm train-reward`: train a music reward model (Bradley-Terry on pairs, MSE on opinion scores)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import orjson
import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, cannot_run, without_error_records, EXIT_INTERRUPTED, EXIT_TRAINING_DIVERGED, INPUT_HELP, chosen_options,
                             config_option, console, overwrite_option, print_config, print_config_option,
                             progress, refuse_overwrite, run_options, set_threads, stream_errors, threads_option)
from mllm.cli.sft import ctrl_c_stops
from mllm.core.io.records import read_records


def command(
    ctx: typer.Context,
    inputs: list[str] = typer.Argument(None, help=INPUT_HELP + " Several files are read one after the other (pairs.jsonl mos.jsonl). Pair records (`audio`, `audio_b`, `axis`, `preference`) and/or MOS records (`audio`, a number per axis), with `split` train / valid; `prompt` (or `caption`) and `reference_audio` when they have them."),
    config_file: Optional[str] = config_option(),
    show_config: bool = print_config_option(),
    output: str = typer.Option("reward-model", "-o", "--output", help="Folder of the reward model (written atomically; `mllm score --model` reads it). An existing one is refused unless --overwrite."),
    overwrite: bool = overwrite_option("Replace the reward model folder -o of an earlier run; without it an existing one is refused (exit 2)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the run saved in this folder: same records (content checked), same options, except -o, --val-every, --save-every, --keep-best, --early-stop and --device."),
    extend_to: Optional[int] = typer.Option(None, "--extend-to", help="With --resume: train the saved run further, to this many steps in all."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP + " The others are trained on; without it, error records stop training (exit 1)."),
    encoder: str = typer.Option("dsp", "--encoder", help="The frozen audio encoder, as `mllm encode --encoder` (DSP features need no weights; a Hugging Face model by id or folder); its frames are pooled to mean and std."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Hidden layer(s) of a Hugging Face encoder (as `mllm encode --layer`)."),
    frame_rate: float = typer.Option(10.0, "--frame-rate", help="Frames per second before pooling."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Cache the audio embeddings in this folder (shared with `mllm encode --cache`): a second run on the same audio skips the encoding."),
    text_encoder: str = typer.Option("smollm2", "--text-encoder", help="The prompt's frozen text embedding: an LLM (smollm2, a folder, a hub id in the cache: mean of its last hidden states), minilm or a sentence-transformers folder, or none (no prompt tower)."),
    axes: str = typer.Option("alignment,musicality", "--axes", help="The scores the model gives, one per axis, comma-separated."),
    hidden: int = typer.Option(64, "--hidden", help="Width of the head."),
    dropout: float = typer.Option(0.1, "--dropout", help="Dropout in the head."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default: --epochs passes over the training examples)."),
    epochs: float = typer.Option(30.0, "--epochs", help="Passes over the training examples when --steps is not given."),
    batch_size: int = typer.Option(32, "--batch-size", help="Examples (pairs or MOS values) per step."),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate (warmup, then cosine)."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay."),
    warmup: int = typer.Option(0, "--warmup", help="Steps of linear warmup."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="Gradient clipping norm (0 = none)."),
    mos_weight: float = typer.Option(1.0, "--mos-weight", help="Weight of the MOS term beside the Bradley-Terry term."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Bradley-Terry targets 1 - eps/2 and eps/2 (CMI-RewardBench: 0.2 on pseudo-labelled pairs)."),
    val_every: int = typer.Option(0, "--val-every", help="Validate every N steps (0 = at the end only)."),
    save_every: int = typer.Option(0, "--save-every", help="Save every N steps (0 = at the end and on Ctrl-C)."),
    keep_best: bool = typer.Option(False, "--keep-best", help="Also save the best validation to <output>-best."),
    early_stop: int = typer.Option(0, "--early-stop", help="Stop after N validations without a new best (0 = never)."),
    select_by: str = typer.Option("val_loss", "--select-by", help="What --keep-best and --early-stop compare: val_loss (lower) or val_accuracy (higher)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the head's initial weights, dropout and the example order."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto (the head is small: cpu is fine)."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Train a music reward model: frozen audio and text embeddings, a small head scoring each axis, Bradley-Terry on pairs and MSE on opinion scores.

    The audio of every record (and of `audio_b` in pairs, `reference_audio` when given) is encoded
    once by the frozen --encoder and pooled over time; the prompt (`prompt`, else `caption`) is
    embedded once by the frozen --text-encoder. The head scores each axis (alignment,
    musicality). Pairs train with the Bradley-Terry loss -log sigmoid(s_preferred - s_other) on
    their `axis`; ties (both, neither) are left out and counted; MOS records train with MSE
    through a learned affine map. Trains on split `train`, validates on `valid` (val_loss,
    pairwise val_accuracy per axis, val_srcc per axis of the MOS values); metrics stream as JSONL
    on stdout. The folder holds model.safetensors and config.json (no pickle) and the trainer
    state, so --resume continues a stopped run exactly; Ctrl-C saves and exits 130. An existing
    -o folder is refused unless --overwrite. See docs/reward.md.

    Examples:

        mllm train-reward pairs/pairs.jsonl pairs/mos.jsonl -o runs/rm --val-every 50 > runs/rm.metrics.jsonl

        mllm train-reward pairs/pairs.jsonl -o runs/rm-minilm --text-encoder minilm --keep-best --val-every 20

        mllm train-reward pairs/pairs.jsonl pairs/mos.jsonl --resume runs/rm --extend-to 800
    """
    if show_config:
        print_config(ctx)
    set_threads(threads)
    from mllm.core.train.reward import RewardConfig, TrainingDiverged, best_folder, setup, train

    given = chosen_options(ctx)
    paths = inputs or ["-"]
    continuing = resume is not None and ("output" not in given or Path(output).resolve() == Path(resume).resolve())
    refuse_overwrite(resume if continuing else output, *paths, cache, overwrite=overwrite, kind="checkpoint", resume=continuing)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = RewardConfig(encoder=encoder, layer=layer, frame_rate=frame_rate, text_encoder=text_encoder,
                          axes=[a.strip() for a in axes.split(",") if a.strip()], hidden=hidden, dropout=dropout,
                          steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                          warmup=warmup, max_grad_norm=max_grad_norm, mos_weight=mos_weight,
                          label_smoothing=label_smoothing, val_every=val_every, save_every=save_every,
                          keep_best=keep_best, early_stop=early_stop, select_by=select_by, output=output, seed=seed,
                          device=device)
    with cannot_run():
        config.check()
    with stream_errors():
        records = [record for path in paths for record in read_records(path)]
    usable = without_error_records(records, records, allow_errors, "train-reward")
    try:
        with cannot_run():
            run = setup(config, usable, resume=resume, given=given, extend_to=extend_to, cache=cache)
    except KeyboardInterrupt:  # encoding the audio and loading the text tower can take a while
        console.print("[yellow]interrupted before training: nothing saved[/]", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    run.options = run_options(ctx, run.config)
    config = run.config
    ties = f", {run.skipped['ties']} tied train pairs left out" if run.skipped.get("ties") else ""
    console.print(f"train-reward: {len(run.train_examples)} train examples ({run.train_examples.pairs} pairs) / "
                  f"{len(run.valid_examples)} valid{ties}, {run.total_steps} steps, axes {', '.join(config.axes)}, "
                  f"-> {config.output}", highlight=False, soft_wrap=True)
    stdout = sys.stdout.buffer
    try:
        with ctrl_c_stops(run, console.print), progress() as bar:
            task = bar.add_task("train-reward", total=run.total_steps, completed=run.state.step)
            for metrics in train(run):
                stdout.write(orjson.dumps(metrics, option=orjson.OPT_APPEND_NEWLINE))
                stdout.flush()
                description = f"loss {metrics['loss']:.3f}"
                if metrics.get("val_accuracy") is not None:
                    description += f" val acc {metrics['val_accuracy']:.3f}"
                bar.update(task, completed=metrics["step"], description=description)
    except KeyboardInterrupt:
        console.print(f"[yellow]aborted mid-step: not saved; {config.output} holds the last checkpoint, if any[/]",
                      highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    except TrainingDiverged as exc:
        console.print(f"[bold red]error:[/] {exc}; try a lower --lr (it was {config.lr:g})", highlight=False)
        raise typer.Exit(EXIT_TRAINING_DIVERGED) from None
    if run.stop_requested:
        console.print(f"saved {config.output} at step {run.state.step}; continue with --resume {config.output}",
                      highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    last = run.last_metrics
    if last.get("val_accuracy") is not None:
        per_axis = ", ".join(f"{k.split('.', 1)[1]} {v:.3f}" for k, v in last.items() if k.startswith("val_accuracy."))
        console.print(f"valid: pairwise accuracy {last['val_accuracy']:.3f} ({per_axis})", highlight=False)
    if run.state.early_stopped:
        console.print(f"early stop: no better {config.select_by} in {config.early_stop} validations", highlight=False)
    if config.keep_best and run.state.best_step is not None:
        console.print(f"best {config.select_by} {run.state.best_value:.4f} at step {run.state.best_step}: "
                      f"{best_folder(config)}", highlight=False)
    console.print(f"[green]saved {config.output} at step {run.state.step}[/]", highlight=False)
