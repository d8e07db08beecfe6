"""`mllm score`: add `reward` to records, by a verifiable reward (grpo's) or a learned reward model."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Optional

import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, FORMAT_HELP, INPUT_HELP, OUTPUT_HELP, console, fail, finish,
                             name_value_pairs, overwrite_option, progress, record_total, refuse_overwrite, set_threads,
                             split_option, stream_errors, threads_option)
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter, read_records, spool_stdin


def command(
    input: str = typer.Argument("-", help=INPUT_HELP + " --reward: records with a `task`, a reference (`reference` or `answer`) and an answer (`response` or `prediction`); --model: records with `audio_embedding` (or `audio`), pairs with `audio_b` too."),
    reward: Optional[str] = typer.Option(None, "--reward", help="Score by grpo's verifiable reward against each record's reference: weighted components, e.g. task or task:1.0,format:0.2 (task: the task's per-item score as eval-mir computes it; format: the answer reads)."),
    model: Optional[str] = typer.Option(None, "--model", help="Score by a reward model trained with `mllm train-reward` (its checkpoint folder)."),
    split: Optional[str] = split_option(),
    labels: list[str] = typer.Option([], "--labels", help="--reward: TASK=a,b,c, the label set of a classification/tagging task (default: the labels seen in the references)."),
    task_types: list[str] = typer.Option([], "--task-type", help="--reward: TASK=KIND for a task eval-mir does not know (kinds as eval-mir's)."),
    regression_shape: str = typer.Option("linear", "--regression-shape", help="--reward, numeric tasks: linear (1 - |error| / scale width) or gaussian (sigma = 10 % of the scale), as grpo."),
    cache: Optional[str] = typer.Option(None, "--cache", help="--model: cache the audio embeddings in this folder (shared with `mllm encode --cache`)."),
    device: str = typer.Option("cpu", "--device", help="--model: cpu, cuda, cuda:N or auto."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    overwrite: bool = overwrite_option(),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Add `reward` to each record: a verifiable reward against its reference, or a learned reward model's scores.

    --reward SPEC scores each record's answer (its `prediction`, else its `response`) against its
    reference (`reference`, else `answer`) with the rewards `mllm grpo` trains on, and writes
    `reward` = {component: value, ..., "total": the weighted sum}: `task` is the task's per-item
    score as eval-mir computes it (key: MIREX weighted score; tempo: 1 / 0.5 / 0; numbers:
    closeness on the scale; labels: exact or F1), `format` is 1 when the answer reads. An answer
    that does not read scores 0 (not an error); a record without a task, a reference or an answer
    is written as an error record naming the field (exit 1).

    --model RM scores each record with a reward model trained by `mllm train-reward`: `reward` =
    {axis: score} (alignment, musicality) for its `audio` (or `audio_embedding`) and its prompt
    (`prompt`, else `caption`); a pair record (with `audio_b`) also gets `reward_b`, so `mllm
    eval-reward` can score the preference. The audio is encoded and the prompt embedded by the
    frozen models the checkpoint names. Scores are comparable within one axis of one model only.

    --split NAME scores that split alone and passes the others through untouched. Records in =
    records out, in order.

    Examples:

        mllm caption instructions.enc.jsonl --model runs/key --split test | mllm score --reward task --split test

        mllm regress deam.enc.jsonl --model runs/emotion --split test | mllm score --reward task:1.0,format:0.2 --split test -o scored.jsonl

        mllm score answers.jsonl --reward task --regression-shape gaussian --split test | mllm rerank --by reward.total --split test

        mllm score pairs/pairs.jsonl --model runs/rm --split test | mllm eval-reward --split test

        mllm score pairs/mos.jsonl --model runs/rm --split test -o mos.scored.jsonl
    """
    set_threads(threads)
    if (reward is None) == (model is None):
        raise fail("give one of --reward SPEC (a verifiable reward) or --model RM (a trained reward model)")
    if model is not None and (labels or task_types or regression_shape != "linear"):
        raise fail("--labels, --task-type and --regression-shape are options of --reward, not of --model")
    if reward is not None and cache is not None:
        raise fail("--cache is an option of --model (audio embeddings), not of --reward")
    refuse_overwrite(output, input, model, overwrite=overwrite)
    summary = StreamSummary("score")
    with ExitStack() as stack, stream_errors():
        if reward is not None:
            results = _by_reward(stack, input, reward, labels, task_types, regression_shape, split, summary)
            what = f"reward {reward}"
        else:
            from mllm.core.reward_model.model_scores import ModelScorer, score_records

            if device == "auto":
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                scorer = ModelScorer.load(model, device=device, cache=cache)
            except (OSError, ValueError) as exc:
                raise fail(str(exc)) from None
            if split is not None:
                console.print(f"scoring split {split}; records of other splits pass through untouched", highlight=False)
            results = score_records(read_records(input), scorer, split=split, summary=summary)
            what = f"model {model}"
        writer = stack.enter_context(RecordWriter(output or "-", output_format))
        with progress() as bar:
            task = bar.add_task(f"scoring ({what})", total=record_total(input))
            for record in results:
                writer.write(record)
                bar.advance(task)
    finish(summary, allow_errors)


def _by_reward(stack: ExitStack, input: str, spec: str, labels: list[str], task_types: list[str],
               regression_shape: str, split: str | None, summary: StreamSummary):
    """The scored stream of --reward SPEC: a first pass collects the label sets of classification
    and tagging tasks (as eval-mir and grpo do), the second scores."""
    from mllm.core.evaluation.mir import collect_label_sets
    from mllm.core.evaluation.options import EvalOptions
    from mllm.core.reward_model.task_scores import TOTAL, score_records
    from mllm.core.train.rewards import Reward, RewardSettings

    label_sets = {name: tuple(v.strip() for v in value.split(",") if v.strip())
                  for name, value in name_value_pairs(labels, "--labels").items()}
    options = EvalOptions(task_types=name_value_pairs(task_types, "--task-type"), labels=label_sets, split=split)
    try:
        settings = RewardSettings(regression_shape=regression_shape)
        scorer = Reward.parse(spec, options=options, settings=settings)
    except ValueError as exc:
        raise fail(str(exc).replace("--reward:", "--reward", 1)) from None
    if TOTAL in scorer.weights:
        raise fail(f"--reward: {TOTAL!r} is the weighted sum, not a component")
    source, name = (spool_stdin(stack), "<stdin>") if input == "-" else (input, None)
    scorer.label_sets = collect_label_sets(read_records(source, name=name), options)
    if split is not None:
        console.print(f"scoring split {split}; records of other splits pass through untouched", highlight=False)
    return score_records(read_records(source, name=name), scorer, split=split, summary=summary)
