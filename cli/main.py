"""The `mllm` command: one Typer app, one module per subcommand.

A subcommand is registered here only once it works.
"""

from __future__ import annotations

import typer

from mllm.cli import (
    build_instructions,
    caption,
    encode,
    eval_caption,
    eval_mir,
    extract_features,
    regress,
    sft,
    synth,
)
from mllm.core import __version__

app = typer.Typer(
    name="mllm",
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


# In the order of a study: data, analysis, instructions, embeddings, training, inference, scores.
app.command("synth")(synth.command)
app.command("extract-features")(extract_features.command)
app.command("build-instructions")(build_instructions.command)
app.command("encode")(encode.command)
app.command("sft")(sft.command)
app.command("caption")(caption.command)
app.command("regress")(regress.command)
app.command("eval-mir")(eval_mir.command)
app.command("eval-caption")(eval_caption.command)


def main() -> None:
    app()
