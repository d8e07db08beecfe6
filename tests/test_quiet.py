"""core.quiet: transformers' deprecation warnings and loading bars stay off a piped stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tiny_llm import build_tiny_llm

# Load a saved model (transformers draws "Loading weights" on stderr) and use a deprecated
# property (a FutureWarning from transformers.modeling_utils), with or without quiet_libraries.
PROBE = """
import sys
if sys.argv[2] == "quiet":
    from mllm.core.quiet import quiet_libraries
    quiet_libraries()
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
model.is_gradient_checkpointing
print("loaded")
"""


def run_probe(folder: Path, mode: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS", "PYTHONWARNINGS")}
    return subprocess.run([sys.executable, "-c", PROBE, str(folder), mode], capture_output=True, text=True,
                          env={**environment, **env})


def test_loading_a_model_piped_prints_no_bar_and_no_deprecation_warning(tmp_path):
    llm = build_tiny_llm(tmp_path / "llm")
    loud = run_probe(llm, "loud")
    assert loud.returncode == 0 and loud.stdout.strip() == "loaded", loud.stderr[-2000:]
    # the control: without it, both reach stderr (else this test could not fail)
    assert "Loading weights" in loud.stderr and "FutureWarning" in loud.stderr, loud.stderr[-2000:]
    quiet = run_probe(llm, "quiet")
    assert quiet.returncode == 0 and quiet.stdout.strip() == "loaded"
    assert quiet.stderr.strip() == "", quiet.stderr[-2000:]


def test_the_users_own_settings_win(tmp_path):
    llm = build_tiny_llm(tmp_path / "llm")
    shown = run_probe(llm, "quiet", PYTHONWARNINGS="default", HF_HUB_DISABLE_PROGRESS_BARS="0")
    assert "FutureWarning" in shown.stderr and "Loading weights" in shown.stderr, shown.stderr[-2000:]


def test_every_mllm_command_is_quiet_from_the_start():
    # the group's callback runs before any subcommand: a piped command's process holds the
    # defaults in its environment (seen by the libraries it imports later)
    probe = ("import os\nfrom typer.testing import CliRunner\nfrom mllm.cli.main import app\n"
             "CliRunner().invoke(app, ['eval-mir', '-'], input='')\n"
             "print(os.environ.get('TRANSFORMERS_VERBOSITY'), os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'))")
    environment = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environment)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "error 1"
