"""The README runs: every command of its ```sh blocks, in order, in one fresh folder.

A newcomer types the README's commands one after another; this test does the same, so an example
that refers to a file no command made, an option that does not exist or a pipeline that fails is a
failing test. What cannot run here as written is changed by the SUBSTITUTIONS below, each with its
reason (hub ids -> tiny local models of the same architecture, hundreds of steps -> a few, `cuda`
-> the CPU); the public datasets the README reads from `data/` are the fixtures in tests/data.
Commands that CI itself runs (install, the test suite) and the demo (tests/test_demo.py runs it)
are listed in NOT_RUN_HERE with the reason; a command in neither list is run.

(```bash blocks count as ```sh.) The ```python blocks run too, and each `expression  # value` line must give that value.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DATA = Path(__file__).resolve().parent / "data"

# (pattern, replacement, why): applied to every command, in this order.
SUBSTITUTIONS = [
    (r"--steps \d+", "--steps 2", "hundreds of training steps -> two"),
    (r"--extend-to \d+", "--extend-to 3", "trained on to a step past the first run's two"),
    (r"--val-every \d+", "--val-every 1", "a validation at every step of the two"),
    (r"(mllm synth \S+) --n \d+ --seconds \d+", r"\1 --n 16 --seconds 3", "a corpus of 16 short clips"),
    (r"(mllm synth \S+) --n \d+\b(?! --seconds)", r"\1 --n 16 --seconds 3", "a corpus of 16 short clips"),
    (r"--batch-size 4 --group-size 8", "--batch-size 2 --group-size 2 --max-new-tokens 8", "GRPO groups of two short answers"),
    (r"--batch-size 32", "--batch-size 4", "a GPU batch -> a CPU batch"),
    (r"--device cuda", "--device cpu", "no GPU here"),
    (r"--nproc-per-node 8", "--nproc-per-node 2", "two processes (gloo) on two cores"),
    (r"^(mllm sft .* -o runs/key-(?:seed1|audio))", r"\1 --llm models/llm",
     "the side examples train the tiny LLM (the main path, runs/key, trains the default SmolLM2-135M)"),
    (r"^(torchrun .* sft \S+)", r"\1 --llm models/llm", "the DDP example on the tiny LLM (two processes)"),
    (r"openai/whisper-base", "models/whisper", "a tiny Whisper from a config (no hub offline)"),
    (r"m-a-p/MERT-v1-95M", "models/mert", "a tiny HuBERT with its own code, as MERT's (trust_remote_code)"),
    (r"Qwen/Qwen2-Audio-7B-Instruct", "models/qwen2-audio", "a tiny Qwen2-Audio from a config"),
    (r"HuggingFaceTB/SmolLM2-1\.7B-Instruct", "models/llm", "a tiny random LLM from a config"),
]

# Commands this test does not run, with the reason; each must still be in the README as written.
NOT_RUN_HERE = {
    "make install": "CI's first step (.ci/run), in a fresh virtualenv",
    ". .venv/bin/activate": "the test runs the virtualenv's mllm by path",
    "make test": "this test suite itself",
    "mllm demo --fast demo-fast": "tests/test_demo.py runs the fast demo and checks its table",
    "mllm demo demo": "the full demo takes about 15 minutes on 2 cores (benchmarks/RESULTS.md)",
    "recipes/llark_mir.sh data/ runs/llark": "needs the published datasets; tests/test_recipes.py runs every recipe",
    "MLLM_RECIPE_SMOKE=1 recipes/llark_mir.sh /tmp/llark": "tests/test_recipes.py runs every recipe in smoke mode",
}


def blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(language, the heading above it, its lines) of each fenced block, in order."""
    out, heading = [], ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        match = re.match(r"^```(\w*)\s*$", line)
        if match:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            out.append((match.group(1), heading, lines[i + 1:end]))
            i = end
        i += 1
    return out


def commands(lines: list[str]) -> list[str]:
    """The shell commands of a block: continuation lines joined, blank lines dropped."""
    out, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            out.append(command)
    return out


def substituted(command: str) -> str:
    for pattern, replacement, _why in SUBSTITUTIONS:
        command = re.sub(pattern, replacement, command)
    return command


def readme_commands() -> list[tuple[str, str]]:
    return [(heading, command) for language, heading, lines in blocks(README.read_text())
            if language in ("sh", "bash") for command in commands(lines)]


def without_comment(command: str) -> str:
    return re.sub(r"\s+#.*$", "", command).strip()


def test_every_evaluation_example_scores_the_held_out_split():
    evaluations = [without_comment(c) for _, c in readme_commands() if re.search(r"mllm eval-(mir|caption|reward)\b", c)]
    assert len(evaluations) >= 6
    for command in evaluations:
        # our own answers: --split test; CMI-Bench's released files hold its test items only
        assert "--split test" in command or "data/cmi-bench" in command, command


def test_the_commands_not_run_here_are_in_the_readme():
    written = {without_comment(c) for _, c in readme_commands()}
    assert set(NOT_RUN_HERE) <= written, set(NOT_RUN_HERE) - written


def build_models(folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from encoder_models import remote_code_hubert, whisper
    from tiny_llm import build_tiny_llm
    from tiny_qwen2_audio import build_tiny_qwen2_audio

    whisper(folder / "whisper")
    remote_code_hubert(folder / "mert")
    build_tiny_qwen2_audio(folder / "qwen2-audio")
    build_tiny_llm(folder / "llm")


def test_the_readme_runs_in_order(tmp_path):
    work = tmp_path / "study"
    (work / "data").mkdir(parents=True)
    for name, fixture in (("DEAM", "deam"), ("gtzan", "gtzan"), ("cmi-bench", "cmi_bench"), ("cmi-rewardbench", "reward")):
        (work / "data" / name).symlink_to(DATA / fixture)
    build_models(work / "models")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MLLM_THREADS": "1"}
    seconds = []
    for heading, command in readme_commands():
        if without_comment(command) in NOT_RUN_HERE:
            continue
        run = substituted(command)
        start = time.perf_counter()
        result = subprocess.run(["bash", "-c", f"set -euo pipefail; {run}"], cwd=work, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, (
            f"README, {heading}: {command}\nran: {run}\nexit {result.returncode}\n{result.stderr[-3000:]}")
        seconds.append((time.perf_counter() - start, run))
    print("\n".join(f"{s:6.1f} s  {run}" for s, run in sorted(seconds, reverse=True)[:12]))  # (with -s)
    assert len(seconds) >= 30
    # what the study made is what the README says it makes
    assert (work / "corpus" / "manifest.jsonl").exists() and (work / "runs" / "key" / "options.yaml").exists()
    assert (work / "leaderboard.json").exists() and (work / "answers.jsonl").stat().st_size > 0


def test_the_python_examples_give_the_values_in_their_comments():
    checked = 0
    for language, heading, lines in blocks(README.read_text()):
        if language != "python":
            continue
        namespace: dict = {}
        for line in lines:
            code, _, comment = line.partition("  # ")
            if comment and code.strip():
                value = eval(code.strip(), namespace)  # noqa: S307 - the README's own example
                assert value == ast.literal_eval(comment.strip()), (heading, line)
                checked += 1
            elif line.strip():
                exec(line, namespace)  # noqa: S102
    assert checked >= 2


@pytest.mark.parametrize("pattern, replacement, why", SUBSTITUTIONS)
def test_every_substitution_is_used(pattern, replacement, why):
    # a substitution nothing in the README matches any more is stale: remove it
    assert any(re.search(pattern, command) for _, command in readme_commands()), (pattern, why)
