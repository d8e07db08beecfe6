"""`mllm grpo`: align an `mllm sft` checkpoint with GRPO on verifiable rewards."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import orjson
import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, cannot_run, without_error_records, EXIT_INTERRUPTED, EXIT_TRAINING_DIVERGED, INPUT_HELP, chosen_options,
                             config_option, console, fail, overwrite_option, print_config, print_config_option,
                             progress, refuse_overwrite, run_options, set_threads, stream_errors, threads_option)
from mllm.cli.sft import _encoded, ctrl_c_stops, rank_zero_say
from mllm.core.io.records import read_records


def command(
    ctx: typer.Context,
    input: str = typer.Argument("-", help=INPUT_HELP + " Instruction records with `messages`, `split`, the reference (`answer` or `reference`) and `audio_embedding` (from `mllm encode`) or `audio` (encoded with the checkpoint's encoder); or text-only records."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="The `mllm sft` checkpoint to align: the policy starts from it and it is the reference of the KL term."),
    llm: Optional[str] = typer.Option(None, "--llm", help="Instead of --checkpoint: a base LLM (hub id, folder, .gguf, smollm2) to align on text-only records (no audio_embedding, no <audio> in the question)."),
    config_file: Optional[str] = config_option(),
    show_config: bool = print_config_option(),
    output: str = typer.Option("checkpoint-grpo", "-o", "--output", help="Checkpoint folder of the aligned policy (written atomically; loads in regress/caption like any checkpoint; with --resume: the resumed folder unless given). An existing one is refused unless --overwrite."),
    overwrite: bool = overwrite_option("Replace the checkpoint folder -o of an earlier run; without it an existing one is refused (exit 2). A folder that is not a checkpoint, and the --checkpoint aligned, are never replaced."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the grpo run saved in this folder: same records (content checked), same options (one given with another value is refused, --checkpoint and --llm included), except -o, --save-every, --steps (to train further) and --device."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP + " grpo trains on the other records; without it, error records stop it before training (exit 1)."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Records with `audio` but no `audio_embedding` are encoded with the checkpoint's encoder; cache the embeddings in this folder (shared with `mllm encode --cache`)."),
    reward: str = typer.Option("task:1.0,format:0.2", "--reward", help="Weighted reward components: task (the task's per-item score, as eval-mir computes it), format (the answer reads)."),
    regression_shape: str = typer.Option("linear", "--regression-shape", help="Numeric tasks: linear (1 - |error| / scale width) or gaussian (sigma = 10 % of the scale)."),
    group_size: int = typer.Option(4, "--group-size", help="Completions sampled per prompt (G >= 2)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Prompts per step."),
    steps: int = typer.Option(50, "--steps", help="Optimizer steps (batches of samples; x --iterations updates)."),
    lr: float = typer.Option(1e-5, "--lr", help="AdamW learning rate of the new adapter."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="Gradient clipping norm (0 = none)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (the log-probs use the same)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling (1 = the full distribution)."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="Longest completion; one that does not end by then is truncated."),
    loss_type: str = typer.Option("dapo", "--loss-type", help="grpo (per-completion mean), dr_grpo (constant normaliser), dapo (token-level over the batch)."),
    epsilon: float = typer.Option(0.2, "--epsilon", help="Lower clip of the policy ratio (1 - epsilon)."),
    epsilon_high: Optional[float] = typer.Option(None, "--epsilon-high", help="Upper clip (1 + epsilon-high; default: --epsilon). DAPO's clip-higher: 0.28."),
    beta: float = typer.Option(0.0, "--beta", help="Weight of the k3 KL to the SFT policy (0: no reference pass)."),
    iterations: int = typer.Option(1, "--iterations", help="Updates per batch of samples (old log-probs kept)."),
    scale_rewards: str = typer.Option("group", "--scale-rewards", help="Advantages divided by the std of the group, of the batch, or none."),
    mask_truncated: bool = typer.Option(False, "--mask-truncated", help="Completions cut at --max-new-tokens carry no loss."),
    overlong_buffer: int = typer.Option(0, "--overlong-buffer", help="DAPO's soft overlong penalty over the last N tokens before --max-new-tokens (0 = off)."),
    overlong_factor: float = typer.Option(1.0, "--overlong-factor", help="The penalty at --max-new-tokens."),
    min_spread: float = typer.Option(0.0, "--min-spread", help="Dynamic sampling: drop groups whose reward spread (max - min) is <= this, and sample more prompts (0 = off)."),
    max_resample: int = typer.Option(2, "--max-resample", help="Dynamic sampling: extra sampling rounds to refill a step's batch."),
    lora_rank: int = typer.Option(8, "--lora-rank", help="Rank of the new adapter."),
    lora_alpha: int = typer.Option(16, "--lora-alpha", help="Alpha of the new adapter."),
    lora_targets: str = typer.Option("q_proj,k_proj,v_proj,o_proj", "--lora-targets", help="Modules that get the new adapter."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bfloat16 autocast for sampling and the log-prob passes (default: as sft: on where bf16 measures faster)."),
    save_every: int = typer.Option(0, "--save-every", help="Checkpoint every N steps (0 = at the end and on Ctrl-C)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the prompt order and the sampling."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Align an sft checkpoint with GRPO: sample groups of answers, reward them, optimise.

    The SFT adapter is merged into the LLM and a fresh LoRA adapter is trained on top, so the
    reference of the KL term is the SFT policy itself (the new adapter switched off). Rewards are
    verifiable: the task's own per-item score as eval-mir computes it (key: MIREX weighted score;
    tempo: 1 / 0.5 / 0; numbers: closeness on the declared scale; labels: exact or F1), plus
    `format` (the answer reads). Trains on the records of split `train`. Metrics stream as JSONL
    on stdout (reward mean/std and per component, parse rate, filtered and zero-spread groups,
    KL, clip fractions, entropy, completion length, truncated fraction, completions/s); Ctrl-C
    saves the checkpoint and exits with 130; --resume continues it with the samples and losses of
    an uninterrupted run. Under torchrun N processes with --batch-size B take the steps of one
    process with N*B prompts (rank 0 writes the metrics and the checkpoint). --config FILE (YAML
    or TOML) gives options by name, the command line overriding them; the checkpoint keeps the
    run's options as options.yaml, which --config reads back. An existing -o folder is refused
    unless --overwrite (--resume continues its own folder).

    Examples:

        mllm grpo instructions.enc.jsonl --checkpoint runs/key -o runs/key-grpo --steps 100 > runs/key-grpo.metrics.jsonl

        mllm grpo instructions.enc.jsonl --checkpoint runs/arousal -o runs/arousal-grpo --regression-shape gaussian --beta 0.04

        mllm grpo instructions.enc.jsonl --checkpoint runs/key -o runs/key-dapo --epsilon-high 0.28 --min-spread 0.05 --mask-truncated

        mllm grpo instructions.enc.jsonl --resume runs/key-grpo --steps 200     # after Ctrl-C, or to train further

        mllm grpo --checkpoint runs/key -o runs/key-grpo --steps 100 --print-config > grpo.yaml   # the options, as a file

        mllm grpo instructions.enc.jsonl --config grpo.yaml --beta 0.02 -o runs/key-beta   # options from the file, two overridden

        torchrun --nproc-per-node 2 -m mllm.cli grpo instructions.enc.jsonl --checkpoint runs/key -o runs/key-grpo
    """
    if show_config:
        print_config(ctx)
    set_threads(threads)
    from mllm.core.train.grpo import GRPOConfig, setup
    from mllm.core.train.precision import bf16_supported

    given = chosen_options(ctx)  # on the command line or in the --config file (as sft reads them)
    if checkpoint is None and resume is None and llm is None:
        raise fail("--checkpoint: give the `mllm sft` checkpoint to align (or --llm for text-only records, or --resume a grpo run)")
    if checkpoint is not None and llm is not None:
        raise fail("--checkpoint and --llm: give one")
    # With --resume, a --checkpoint or --llm given (a config file names them) must be the run's own: compared as any option.
    continuing = resume is not None and ("output" not in given or Path(output).resolve() == Path(resume).resolve())
    refuse_overwrite(resume if continuing else output, input, checkpoint, llm, cache, overwrite=overwrite,
                     kind="checkpoint", resume=continuing)

    from mllm.core.train import distributed

    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = distributed.torchrun_device(device)
    if distributed.torchrun_world_size() > 1 and input == "-":
        raise fail("under torchrun every rank reads the records: give a file, not stdin")
    config = GRPOConfig(checkpoint=checkpoint or "", llm=llm or "", reward=reward, regression_shape=regression_shape, group_size=group_size,
                        batch_size=batch_size, steps=steps, lr=lr, max_grad_norm=max_grad_norm, temperature=temperature,
                        top_p=top_p, max_new_tokens=max_new_tokens, loss_type=loss_type, epsilon=epsilon,
                        epsilon_high=epsilon_high, beta=beta, iterations=iterations, scale_rewards=scale_rewards,
                        mask_truncated=mask_truncated, overlong_buffer=overlong_buffer, overlong_factor=overlong_factor,
                        min_spread=min_spread, max_resample=max_resample, lora_rank=lora_rank, lora_alpha=lora_alpha,
                        lora_targets=[t.strip() for t in lora_targets.split(",") if t.strip()],
                        bf16=bf16_supported(device) if bf16 is None else bf16, output=output,
                        save_every=save_every, seed=seed, device=device)
    with cannot_run():
        config.check()
    with stream_errors():
        records = list(read_records(input))
    to_encode = any("audio" in r and "audio_embedding" not in r and "error" not in r for r in records)
    spec = None
    if to_encode:  # audio records: encoded with the checkpoint's encoder, as caption and regress do
        with cannot_run():
            if llm is not None:
                raise ValueError("records with `audio` need --checkpoint: a base LLM has no trained projector for audio")
            from mllm.core.model import read_checkpoint_config

            spec = read_checkpoint_config(resume or checkpoint)["encoder"]
    encoded = _encoded(records, spec, cache, False, device) if spec is not None else records
    usable = without_error_records(records, encoded, allow_errors, "grpo")
    missing = [r.get("id") for r in usable if "messages" not in r
               or ("audio_embedding" not in r and "<audio>" in json.dumps(r["messages"]))]
    if missing:
        raise fail(f"{len(missing)} records lack `messages`, or ask about <audio> without an `audio_embedding` (first: "
                   f"{missing[0]!r}); run `mllm build-instructions` and `mllm encode` first")
    try:
        with cannot_run():
            run = setup(config, usable, resume=resume, given=given)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted before training started[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    run.options = run_options(ctx, run.config)  # saved with the checkpoint as options.yaml
    try:
        _train(run)
    finally:
        distributed.stop()


def _train(run) -> None:
    """The loop with its Ctrl-C handling; metrics and messages from rank 0 only."""
    from mllm.core.train.grpo import train

    main = run.share.main
    say = rank_zero_say(run)
    config = run.config  # a resumed run's options are its checkpoint's
    processes = f", {run.share.world} processes" if run.share.world > 1 else ""
    say(f"grpo: {len(run.examples)} prompts, {config.steps} steps of {config.batch_size} x {config.group_size} "
        f"completions{processes}, loss {config.loss_type}, reward {config.reward}, -> {config.output}", highlight=False)
    stdout = sys.stdout.buffer
    try:
        with ctrl_c_stops(run, say), progress(disable=not main) as bar:
            task = bar.add_task("grpo", total=run.config.steps, completed=run.step)
            for metrics in train(run):
                if not main:
                    continue
                stdout.write(orjson.dumps(metrics, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))
                stdout.flush()
                bar.update(task, completed=metrics["step"],
                           description=f"grpo reward {metrics['reward_mean']:.3f} parse {metrics['parse_rate']:.0%}")
    except KeyboardInterrupt:
        say("[yellow]aborted mid-step: not saved[/]", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    except FloatingPointError as exc:
        say(f"[bold red]error:[/] {exc}; try a lower --lr (it was {config.lr:g})", highlight=False)
        raise typer.Exit(EXIT_TRAINING_DIVERGED) from None
    if run.stop_requested:
        say(f"saved {config.output} at step {run.step}; continue with --resume {config.output}", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    say(f"[green]saved {config.output} at step {run.step}[/]", highlight=False)
