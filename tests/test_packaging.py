"""The package layout and the `mllm` command itself."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top in ("cli", "core"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add("mllm." + ".".join(parts))
    assert found == listed


def run_mllm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mllm.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_version_and_help_list_the_subcommands():
    from mllm.core import __version__

    version = run_mllm("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"mllm {__version__}"
    help_text = run_mllm("--help")
    assert help_text.returncode == 0
    for name in ("eval-mir", "eval-caption", "synth", "extract-features", "build-instructions", "build-pairs", "encode",
                 "sft", "grpo", "caption", "regress", "train-reward", "score", "rerank", "eval-reward", "env", "demo"):
        assert name in help_text.stdout


def test_each_subcommand_help_has_an_example():
    for name in ("eval-mir", "eval-caption", "synth", "extract-features", "build-instructions", "build-pairs", "encode",
                 "sft", "grpo", "caption", "regress", "train-reward", "score", "rerank", "eval-reward", "env", "demo"):
        result = run_mllm(name, "--help")
        assert result.returncode == 0, result.stderr
        assert f"mllm {name}" in result.stdout, f"{name} --help shows no example"


def test_help_lists_every_command_by_its_own_summary_without_importing_them():
    """`mllm --help` lists each command by SUMMARIES (no command module is imported for it): each
    summary must be the first paragraph of the command's own help, and every command has one."""
    from mllm.cli.main import COMMANDS, SUMMARIES, load_command

    assert set(SUMMARIES) == set(COMMANDS)
    for name in COMMANDS:
        first_paragraph = " ".join(load_command(name).help.split("\n\n")[0].split())
        assert SUMMARIES[name] == first_paragraph, name
    probe = (
        "import sys\n"
        "from mllm.cli.main import main\n"
        "sys.argv = ['mllm', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'mir_eval', 'numpy')"
        " or m.startswith('mllm.cli.') and m != 'mllm.cli.main'))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "[]", lines[-1]
    for name in COMMANDS:
        assert any(line.lstrip("│ ").startswith(name + " ") for line in lines), name


def test_help_prose_is_reflowed_and_examples_kept_line_for_line():
    from mllm.cli.main import reflowed

    doc = """First line.

    A paragraph written
    on three lines
    of the docstring.

    Examples:

        mllm eval-mir a.jsonl --split test
        mllm eval-mir b.jsonl
    """
    assert reflowed(doc).split("\n\n") == [
        "First line.", "A paragraph written on three lines of the docstring.", "Examples:",
        "    mllm eval-mir a.jsonl --split test\n    mllm eval-mir b.jsonl"]
