"""Every example in every subcommand's --help parses as that command's command line: options that
exist, values of the right type and choice, the commands piped into exist. (Running them is the job
of tests/test_readme.py, whose README runs each subcommand on files it made; the help examples name
the user's files, e.g. deam.enc.jsonl, which no fixture is.) Without this an option renamed in code
leaves a --help example that fails when copied."""

from __future__ import annotations

import re
import shlex

import pytest

from mllm.cli.main import COMMANDS, load_command

REDIRECTIONS = (">", ">>", "<", "2>")


def example_lines(help_text: str) -> list[str]:
    """The indented lines of a help text that run mllm (the examples), comments cut."""
    return [line.split("  #")[0].strip() for line in help_text.split("\n") if line.startswith(" ") and "mllm " in line]


def mllm_invocations(line: str) -> list[list[str]]:
    """The argument lists of the `mllm ...` stages of a shell line (`|`, `&&`, `||`, `;`), redirections
    dropped."""
    stages = []
    for stage in re.split(r"\|\||&&|\||;", line):
        words, skip_next = [], False
        for word in shlex.split(stage, comments=True):
            if skip_next:
                skip_next = False
            elif word in REDIRECTIONS:
                skip_next = True  # `> file`: the file is the shell's, not an argument
            elif not word.startswith(REDIRECTIONS) and word != "2>&1":
                words.append(word)
        if words and words[0] == "mllm":
            stages.append(words[1:])
    return stages


def test_the_reader_splits_pipelines_and_drops_redirections():
    line = "cat a.jsonl | mllm eval-mir --per-item -o scored.jsonl > out.json 2>&1 | mllm eval-caption -  # note"
    assert mllm_invocations(example_lines("    " + line)[0]) == [["eval-mir", "--per-item", "-o", "scored.jsonl"], ["eval-caption", "-"]]
    assert mllm_invocations("mllm synth c/ --no-stdout && mllm env; mllm demo || true") == [["synth", "c/", "--no-stdout"], ["env"], ["demo"]]


def parse_error(args: list[str]) -> str | None:
    """Why `mllm ARGS` does not parse, or None when it does."""
    if not args or args[0] not in COMMANDS:
        return f"unknown command {args[:1]}"
    try:
        load_command(args[0]).make_context(args[0], args[1:])
    except Exception as error:  # typer vendors click: its Exit/UsageError are not click's
        if type(error).__name__ == "Exit" and "--config" in args:
            return None  # --config reads the file the example names (key.yaml) as it parses
        return f"{type(error).__name__}: {error}"
    return None


def test_a_wrong_option_or_value_is_caught():
    assert parse_error(["eval-mir", "answers.jsonl", "--split", "test"]) is None
    assert "no-such-option" in parse_error(["eval-mir", "answers.jsonl", "--no-such-option"])
    assert parse_error(["synth", "corpus/", "--n", "many"]) is not None
    assert parse_error(["eval-mirr", "answers.jsonl"]) is not None


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_help_example_parses(name):
    examples = example_lines(load_command(name).help or "")
    assert examples, f"{name} --help has no example"
    for line in examples:
        for args in mllm_invocations(line):
            assert parse_error(args) is None, f"{name} --help: {line!r}: {parse_error(args)}"
