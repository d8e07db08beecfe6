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
    for name in ("eval-mir", "eval-caption", "synth", "extract-features", "build-instructions", "encode", "sft", "grpo",
                 "caption", "regress", "env", "demo"):
        assert name in help_text.stdout


def test_each_subcommand_help_has_an_example():
    for name in ("eval-mir", "eval-caption", "synth", "extract-features", "build-instructions", "encode", "sft", "grpo",
                 "caption", "regress", "env", "demo"):
        result = run_mllm(name, "--help")
        assert result.returncode == 0, result.stderr
        assert f"mllm {name}" in result.stdout, f"{name} --help shows no example"
