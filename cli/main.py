"""The `mllm` command: one Typer app, one module per subcommand.

A subcommand is registered here only once it works. Its module (and what it imports: torch for
sft, the parsers and metrics for eval-mir) is imported only when the subcommand runs; `mllm
--help` lists the commands by SUMMARIES and imports none of them. `mllm eval-mir` does not pay
for torch, so each stage of a pipeline starts in about the time its own imports take
(benchmarks/startup.py).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, MutableMapping

import click
import typer
import typer.core
import typer.main

from mllm.core import __version__
from mllm.core.quiet import quiet_libraries

# In the order of a study: data, analysis, instructions, embeddings, training, inference, scores.
# name -> the module of mllm.cli that defines its `command`
COMMANDS = {
    "synth": "synth",
    "extract-features": "extract_features",
    "build-instructions": "build_instructions",
    "build-pairs": "build_pairs",
    "encode": "encode",
    "sft": "sft",
    "grpo": "grpo",
    "caption": "caption",
    "regress": "regress",
    "eval-mir": "eval_mir",
    "eval-caption": "eval_caption",
    "train-reward": "train_reward",
    "score": "score",
    "rerank": "rerank",
    "eval-reward": "eval_reward",
    "env": "env",
    "demo": "demo",
}

# name -> its one-line summary, the first paragraph of its help: `mllm --help` lists these without
# importing the commands' modules (which import torch, scipy or mir_eval: ~4 s on a small CPU).
# tests/test_packaging.py checks each against the command's own help.
SUMMARIES = {
    "synth": "Render a labelled corpus: audio files plus a manifest with exact labels.",
    "extract-features": "Add `features` to each record: duration, tempo, beats, downbeats and meter, key, chords, loudness.",
    "build-instructions": "Turn records with labels and/or features into instruction records for SFT and evaluation.",
    "build-pairs": "Make preference pairs with known answers from a labelled corpus: caption alignment and musicality at known degradation levels.",
    "encode": "Encode audio into frame embeddings pooled to a frame rate (`audio_embedding` [T, D]).",
    "sft": "Fine-tune a MusicLLM: a projector from the audio embedding to the LLM, plus a LoRA adapter.",
    "grpo": "Align an sft checkpoint with GRPO: sample groups of answers, reward them, optimise.",
    "caption": "Generate a free-text answer for every record and write it as `response`.",
    "regress": "Predict numeric targets and write `prediction` {name: value, ..., \"parse_ok\"}.",
    "eval-mir": "Score answers against MIR references: key, tempo, beats, chords, labels, numbers.",
    "eval-caption": "Score generated captions against references: BLEU, METEOR, ROUGE-L, CIDEr, BERTScore.",
    "train-reward": "Train a music reward model: frozen audio and text embeddings, a small head scoring each axis, Bradley-Terry on pairs and MSE on opinion scores.",
    "score": "Add `reward` to each record: a verifiable reward against its reference, or a learned reward model's scores.",
    "rerank": "Keep the best of each id's samples by a numeric field: best-of-N reranking.",
    "eval-reward": "Score a reward model against people: preference accuracy on pairs, LCC/SRCC/Kendall/MSE on MOS.",
    "demo": "Run the whole study offline and print one table: chance, prior, DSP, probe, SFT, SFT + GRPO, shuffled audio.",
    "env": "Print what a bug report needs: versions, threads, CPU and CUDA, METEOR's Java and WordNet, the LLM cache, the hub.",
}


def reflowed(doc: str) -> str:
    """A docstring for --help: the lines of each prose paragraph joined, so that Rich wraps it at the
    terminal's width (it keeps single line breaks: 100-column docstrings came out ragged at 80);
    indented paragraphs (the examples) are kept line for line."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith(" ") or "\n " in p else " ".join(p.split("\n")) for p in paragraphs)


def load_command(name: str) -> click.Command:
    """The click command of subcommand `name`, built from its module's `command` function."""
    module = importlib.import_module(f"mllm.cli.{COMMANDS[name]}")
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name, help=reflowed(module.command.__doc__ or ""))(module.command)
    return typer.main.get_command(single)


class LazyCommands(MutableMapping):
    """The group's commands by name, each loaded on first use (click reads `group.commands` for
    running, listing and suggesting commands alike)."""

    def __init__(self) -> None:
        self.loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self.loaded[name] = load_command(name)
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self.loaded]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*COMMANDS, *self.loaded]))


class LazyGroup(typer.core.TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands()
        self._listing = False

    def get_command(self, ctx, name):
        # While the group's help is written, a command not loaded yet is listed by its summary
        # alone; one without a summary is loaded (slow, but listed right).
        if self._listing and name in SUMMARIES and name not in self.commands.loaded:
            return typer.core.TyperCommand(name, short_help=SUMMARIES[name])
        return super().get_command(ctx, name)

    def list_commands(self, ctx):
        return list(self.commands)  # the names; typer's own reads .items(), which loads them all

    def format_help(self, ctx, formatter):
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="mllm",
    cls=LazyGroup,
    help=(
        "Build, align and evaluate music large language models. Subcommands read and write "
        "JSONL/Parquet records on stdin/stdout, so studies are shell pipelines."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mllm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Build, align and evaluate music large language models."""
    quiet_libraries()  # transformers' deprecation warnings and bars are not the user's business


def main() -> None:
    app()
