"""The `mllm` command: one Typer app, one module per subcommand.

A subcommand is registered here only once it works. Its module (and what it imports: torch for
sft, mir_eval and scikit-learn for eval-mir) is imported only when the subcommand runs, or for
the command list of `mllm --help`: `mllm eval-mir` does not pay for torch, so each stage of a
pipeline starts in about the time its own imports take.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import click
import typer
import typer.core
import typer.main

from mllm.core import __version__

# In the order of a study: data, analysis, instructions, embeddings, training, inference, scores.
# name -> the module of mllm.cli that defines its `command`
COMMANDS = {
    "synth": "synth",
    "extract-features": "extract_features",
    "build-instructions": "build_instructions",
    "encode": "encode",
    "sft": "sft",
    "grpo": "grpo",
    "caption": "caption",
    "regress": "regress",
    "eval-mir": "eval_mir",
    "eval-caption": "eval_caption",
    "env": "env",
    "demo": "demo",
}


def load_command(name: str) -> click.Command:
    """The click command of subcommand `name`, built from its module's `command` function."""
    module = importlib.import_module(f"mllm.cli.{COMMANDS[name]}")
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name)(module.command)
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


def main() -> None:
    app()
