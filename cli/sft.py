"""`mllm sft`: supervised fine-tuning of a MusicLLM (projector + LoRA) on instruction records."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import orjson
import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, cannot_run, without_error_records, EXIT_INTERRUPTED, EXIT_TRAINING_DIVERGED,
                             INPUT_HELP, chosen_options, config_option, console, fail, overwrite_option, print_config,
                             print_config_option, progress, refuse_overwrite, run_options, set_threads, stream_errors,
                             threads_option)
from mllm.core.io.errors import has_error
from mllm.core.io.records import read_records
from mllm.core.model import DEFAULT_SYSTEM_PROMPT
from mllm.core.train import distributed
from mllm.core.options import MAX_FRAME_RATE
from mllm.core.train.sft import (SFTConfig, TrainingDiverged, best_folder, bf16_supported, encoder_for_run, option,
                                 resolve_config, setup, train)

ENCODING_OPTIONS = ("layer", "frame_rate", "cache", "trust_remote_code")  # only with --encoder


def command(
    ctx: typer.Context,
    input: str = typer.Argument("-", help=INPUT_HELP + " Instruction records with `messages`, `split` and `audio_embedding` (from `mllm encode`), or `audio` with --encoder."),
    config_file: Optional[str] = config_option(),
    show_config: bool = print_config_option(),
    output: str = typer.Option("checkpoint", "-o", "--output", help="Checkpoint folder (rewritten atomically at every save; with --resume: the resumed folder unless given). An existing one is refused unless --overwrite."),
    overwrite: bool = overwrite_option("Replace the checkpoint folder -o (and <output>-best) of an earlier run; without it an existing one is refused (exit 2). A folder that is not a checkpoint is never replaced."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the run saved in this checkpoint folder: same records (content checked), same options (one given with another value is refused), except -o, --val-every, --save-every, --keep-best, --early-stop, --grad-checkpointing, --device."),
    extend_to: Optional[int] = typer.Option(None, "--extend-to", help="With --resume: train the saved run on to this many steps in all (more than it planned); the cosine is recomputed for the new total."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP + " sft trains on the other records; without it, error records stop it before training (exit 1)."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Encode records that have `audio` but no `audio_embedding` on the fly, as `mllm encode --encoder` would (a DSP name, hub id or model folder)."),
    layer: Optional[str] = typer.Option(None, "--layer", help="With --encoder: the hidden layer (as `mllm encode --layer`)."),
    frame_rate: float = typer.Option(10.0, "--frame-rate", help=f"With --encoder: frames per second of the embedding (as `mllm encode --frame-rate`; 0 to {MAX_FRAME_RATE:g}, 0 = one frame per clip)."),
    cache: Optional[str] = typer.Option(None, "--cache", help="With --encoder: folder of cached embeddings shared with `mllm encode --cache`."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="With --encoder: let a model folder run its own code (MERT)."),
    llm: str = typer.Option("smollm2", "--llm", help="The LLM: 'smollm2' (embedded SmolLM2-135M-Instruct), a .gguf, a local folder or a hub id."),
    projector: str = typer.Option("mlp", "--projector", help="linear, mlp or strided."),
    stride: int = typer.Option(4, "--stride", min=1, help="Frames merged into one audio token (strided projector)."),
    lora_rank: int = typer.Option(8, "--lora-rank", min=1, help="LoRA rank."),
    lora_alpha: int = typer.Option(16, "--lora-alpha", help="LoRA alpha (scale = alpha / rank; > 0)."),
    lora_targets: str = typer.Option("q_proj,k_proj,v_proj,o_proj", "--lora-targets", help="Comma-separated module names that get an adapter."),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", help="Dropout on the LoRA input (0 <= p < 1)."),
    projector_only: bool = typer.Option(False, "--projector-only", help="Train only the projector, no adapter (LLaVA's stage 1)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimizer steps (default: --epochs passes over the train split)."),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the train split when --steps is not given."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Records per micro-batch."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Micro-batches per optimizer step."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate (AdamW; finite, > 0)."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="AdamW weight decay (>= 0)."),
    warmup: int = typer.Option(0, "--warmup", min=0, help="Steps of linear warmup before the cosine decay."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="Gradient clipping norm (finite, >= 0; 0 = none)."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bfloat16 autocast (default: on for a GPU with bf16, and for a CPU where a bf16 matmul measures >= 1.3x fp32, e.g. AMX; `mllm env` shows it)."),
    grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing", help="Recompute activations in the backward pass (less memory, slower)."),
    val_every: int = typer.Option(0, "--val-every", min=0, help="Validation loss on the `valid` split every N steps (0 = at the end only)."),
    save_every: int = typer.Option(0, "--save-every", min=0, help="Checkpoint every N steps (0 = at the end and on Ctrl-C only)."),
    keep_best: bool = typer.Option(False, "--keep-best", help="Also save the checkpoint with the lowest validation loss, to <output>-best."),
    early_stop: int = typer.Option(0, "--early-stop", min=0, help="Stop after N validations in a row without a lower validation loss (needs --val-every; 0 = never)."),
    select_by: str = typer.Option("val_loss", "--select-by", help="What --keep-best and --early-stop compare: val_loss (lower is better) or val_score (the task's own score of greedy answers to the valid records, as eval-mir scores them; higher is better)."),
    transpose: bool = typer.Option(False, "--transpose", help="Key records: every draw is moved by a random interval (0-11 semitones), its chroma features and its key together (DSP encoders with chroma)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights, the data order and dropout."),
    system_prompt: str = typer.Option(DEFAULT_SYSTEM_PROMPT, "--system-prompt", help="System turn added to records without one ('' = none: the template's default)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto (CUDA when available; the rank's GPU under torchrun)."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Fine-tune a MusicLLM: a projector from the audio embedding to the LLM, plus a LoRA adapter.

    Loss on the answer tokens only, AdamW, warmup + cosine, gradient accumulation and clipping,
    bf16 autocast. Metrics stream as JSONL on stdout (step, epoch, loss, lr, tokens_per_s, and
    val_loss when computed). The checkpoint folder holds the adapter, the projector, a config
    naming the encoder and LLM, and the trainer state; Ctrl-C saves it and exits with code 130.
    A step with a non-finite loss or gradient norm stops the run before it is applied (exit 3;
    the last checkpoint written stays). Error records in the input stop it before training
    (exit 1) unless --allow-errors. Options out of range, unreadable checkpoints: exit 2.
    Under torchrun the same command trains with DDP: N processes with --batch-size B step like one
    process with batch N*B; rank 0 writes the metrics and the checkpoint.
    --config FILE (YAML or TOML) gives options by name, the command line overriding them; the
    checkpoint keeps the run's options as options.yaml, which --config reads back. An existing -o
    folder is refused unless --overwrite (--resume continues its own folder).

    Examples:

        mllm sft instructions.enc.jsonl -o runs/key --steps 300 --batch-size 8 --val-every 50 > runs/key.metrics.jsonl

        mllm sft -o runs/key --steps 300 --batch-size 8 --val-every 50 --print-config > key.yaml   # the options, as a file

        mllm sft instructions.enc.jsonl --config key.yaml --lr 1e-4 -o runs/key-lr   # options from the file, two overridden

        mllm sft instructions.enc.jsonl -o runs/stage1 --projector-only --lr 1e-3 --epochs 2

        mllm sft instructions.jsonl --encoder dsp --frame-rate 1 --cache cache/ -o runs/key   # encodes the audio first

        mllm sft instructions.enc.jsonl -o runs/key --steps 1000 --val-every 25 --keep-best --early-stop 4

        mllm sft instructions.enc.jsonl -o runs/key --steps 500 --transpose --val-every 50 --keep-best --select-by val_score

        mllm sft instructions.enc.jsonl --resume runs/key              # after Ctrl-C: same records, same options

        mllm sft instructions.enc.jsonl --resume runs/key --extend-to 600   # a finished 300-step run, 300 more

        mllm sft instructions.enc.jsonl --llm models/SmolLM2-360M-Instruct --lora-rank 16 --lora-alpha 32 --grad-accum 4

        torchrun --nproc-per-node 2 -m mllm.cli sft instructions.enc.jsonl -o runs/key --batch-size 4
    """
    if show_config:
        print_config(ctx)
    set_threads(threads)
    given = chosen_options(ctx)  # on the command line or in the --config file: compared with a resumed run's
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = distributed.torchrun_device(device)
    if distributed.torchrun_world_size() > 1 and input == "-":
        raise fail("under torchrun every rank reads the records: give a file, not stdin")
    set_encoding = chosen_options(ctx, file_defaults=False) & set(ENCODING_OPTIONS)  # a printed config holds them all
    if encoder is None and set_encoding:
        raise fail(f"{', '.join(option(name) for name in ENCODING_OPTIONS if name in set_encoding)}: only with --encoder")
    config = SFTConfig(llm=llm, projector=projector, stride=stride, lora_rank=lora_rank, lora_alpha=lora_alpha,
                       lora_dropout=lora_dropout, lora_targets=[t.strip() for t in lora_targets.split(",") if t.strip()],
                       projector_only=projector_only, steps=steps, epochs=epochs, batch_size=batch_size,
                       grad_accum=grad_accum, lr=lr, weight_decay=weight_decay, warmup=warmup,
                       max_grad_norm=max_grad_norm, bf16=bf16_supported(device) if bf16 is None else bf16,
                       grad_checkpointing=grad_checkpointing, val_every=val_every, save_every=save_every,
                       keep_best=keep_best, early_stop=early_stop, transpose=transpose, select_by=select_by, output=output, seed=seed, system_prompt=system_prompt or None, device=device)
    with cannot_run():  # options and the checkpoint to resume, before any record is read
        resolved = resolve_config(config, resume, given, extend_to)
        spec = encoder_for_run(encoder, layer, frame_rate, given, resume) if encoder is not None else None
    continuing = resume is not None and Path(resolved.output).resolve() == Path(resume).resolve()
    for folder in (resolved.output, *([best_folder(resolved)] if resolved.keep_best else [])):
        refuse_overwrite(folder, input, llm, cache, overwrite=overwrite, kind="checkpoint", resume=continuing)
    with stream_errors():
        records = list(read_records(input))
    encoded = _encoded(records, spec, cache, trust_remote_code, device) if spec is not None else records
    usable = without_error_records(records, encoded, allow_errors, "sft")
    missing = [r.get("id") for r in usable if "audio_embedding" not in r or "messages" not in r]
    if missing:
        raise fail(f"{len(missing)} records lack `audio_embedding` or `messages` (first: {missing[0]!r}); run `mllm encode` and `mllm build-instructions` first")
    if not usable:
        raise fail("no records to train on")
    unsplit = sum(r.get("split") is None for r in usable)
    if unsplit:
        console.print(f"[yellow]warning[/]: {unsplit} records have no `split` and are not trained on "
                      "(training uses split 'train', validation 'valid')", highlight=False)
    try:
        with cannot_run():
            run = setup(config, usable, resume=resume, given=given, extend_to=extend_to)
    except KeyboardInterrupt:  # before step 0 there is nothing to save
        console.print("[yellow]interrupted before training started[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    run.options = run_options(ctx, run.config)  # saved with the checkpoint as options.yaml
    try:
        _train(run)
    finally:
        distributed.stop()


def _encoded(records, spec, cache, trust_remote_code, device) -> list[dict]:
    """Records with `audio_embedding`: the ones lacking it encoded with `spec` (encoder_for_run),
    checked against it otherwise; a record that cannot be encoded becomes an error record."""
    from mllm.core.encoders import EmbeddingCache
    from mllm.core.encoders.for_model import ModelEncoder

    encoding = ModelEncoder(spec, device=device, cache=EmbeddingCache(cache) if cache else None,
                            trust_remote_code=trust_remote_code)
    if any("audio_embedding" not in r and not has_error(r) for r in records):
        try:
            encoding.encoding()  # load it now: an encoder that cannot load stops the command (exit 2)
        except ValueError as exc:
            raise fail(str(exc)) from None
    out = []
    with progress(disable=os.environ.get("RANK", "0") != "0") as bar:  # under torchrun: rank 0's bar only
        task = bar.add_task("encode", total=len(records))
        for record in encoding.embeddings(records):
            out.append(record)
            bar.advance(task)
    return out


def rank_zero_say(run):
    """console.print on rank 0, nothing on the other ranks (one copy of every message)."""
    return console.print if run.share.main else (lambda *args, **kwargs: None)


@contextmanager
def ctrl_c_stops(run, say):
    """While training: the first Ctrl-C sets `run.stop_requested` (the loop finishes its step and
    saves), a second one raises KeyboardInterrupt at once; the previous handler comes back after."""

    def request_stop(signum, frame):
        run.stop_requested = True
        say("[yellow]interrupted: saving a checkpoint after this step (Ctrl-C again to abort)[/]")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _train(run) -> None:
    """The loop with its Ctrl-C handling; metrics and messages from rank 0 only."""
    main = run.share.main
    say = rank_zero_say(run)
    config = run.config
    processes = f", {run.share.world} processes (DDP)" if run.share.world > 1 else ""
    say(f"sft: {len(run.train_examples)} train / {len(run.valid_examples)} valid records, "
        f"{run.total_steps} steps, bf16 {'on' if config.bf16 else 'off'}, "
        f"{'projector only' if config.projector_only else f'LoRA r={config.lora_rank}'}{processes}, -> {config.output}",
        highlight=False)
    stdout = sys.stdout.buffer
    try:
        with ctrl_c_stops(run, say), progress(disable=not main) as bar:
            task = bar.add_task("sft", total=run.total_steps, completed=run.state.step)
            for metrics in train(run):
                if not main:
                    continue
                stdout.write(orjson.dumps(metrics, option=orjson.OPT_APPEND_NEWLINE))
                stdout.flush()
                description = f"sft loss {metrics['loss']:.3f}"
                if metrics.get("val_loss") is not None:
                    description += f" val {metrics['val_loss']:.3f}"
                bar.update(task, completed=metrics["step"], description=description)
    except KeyboardInterrupt:  # second Ctrl-C: a half-done step cannot be saved exactly, so nothing is
        say(f"[yellow]aborted mid-step: not saved; {config.output} holds the last checkpoint, if any[/]", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    except TrainingDiverged as exc:
        say(f"[bold red]error:[/] {exc}", highlight=False)
        kept = (f"{config.output} holds the checkpoint of step {run.saved_step}" if run.saved_step is not None
                else "no checkpoint was written (--save-every N keeps one every N steps)")
        say(f"  {kept}; try a lower --lr (it was {config.lr:g}), gradient clipping (--max-grad-norm, it was "
            f"{config.max_grad_norm:g}) or a longer --warmup (it was {config.warmup})", highlight=False)
        raise typer.Exit(EXIT_TRAINING_DIVERGED) from None
    if run.stop_requested:
        say(f"saved {config.output} at step {run.state.step}; continue with --resume {config.output}", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    state = run.state
    if state.early_stopped:
        say(f"early stop: no lower validation loss in {config.early_stop} validations", highlight=False)
    if config.keep_best and state.best_step is not None:
        best = (f"val_score {state.best_val_score:.4f}" if config.select_by == "val_score" and state.best_val_score is not None
                else f"val_loss {state.best_val_loss:.4f}")
        say(f"best {best} at step {state.best_step}: {best_folder(config)}", highlight=False)
    say(f"[green]saved {config.output} at step {state.step}[/]", highlight=False)
