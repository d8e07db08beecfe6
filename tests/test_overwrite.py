"""No command writes over earlier results silently (cli/common.py refuse_overwrite): an existing
-o FILE, a non-empty `mllm synth` folder, an existing sft/grpo run are refused with exit 2 naming
the path, unless --overwrite; --resume still continues; an input is never written over, even with
--overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from test_caption_regress import linear_corpus, write_records
from test_sft_cli import pipeline  # noqa: F401 - fixture: instruction records + a tiny LLM

runner = CliRunner()


def invoke(*args, expect=0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def said(result) -> str:
    return " ".join(result.stderr.split())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A manifest of two one-second clips, and records the evaluation commands read."""
    folder = tmp_path_factory.mktemp("overwrite")
    invoke("synth", folder / "corpus", "--n", 2, "--seconds", 1, "--sample-rate", 16000, "--no-stdout", "--threads", 1)
    (folder / "answers.jsonl").write_text(json.dumps({"id": "a", "task": "key", "response": "It is in C major.",
                                                      "reference": {"key": "C major"}}) + "\n")
    (folder / "captions.jsonl").write_text(json.dumps({"id": "a", "response": "a calm piano piece",
                                                       "reference": ["a calm piano piece", "soft piano"]}) + "\n")
    return folder


# command -> (arguments before -o, given the fixture folder)
FILE_COMMANDS = {
    "extract-features": lambda f: ["extract-features", f / "corpus" / "manifest.jsonl", "--threads", 1],
    "encode": lambda f: ["encode", f / "corpus" / "manifest.jsonl", "--encoder", "chroma+onset+loudness",
                         "--frame-rate", 2, "--threads", 1],
    "build-instructions": lambda f: ["build-instructions", f / "corpus" / "manifest.jsonl", "--tasks", "key"],
    "eval-mir": lambda f: ["eval-mir", f / "answers.jsonl", "--bootstrap", 10, "--threads", 1],
    "eval-caption": lambda f: ["eval-caption", f / "captions.jsonl", "--metrics", "bleu,rouge", "--bootstrap", 10,
                               "--threads", 1],
    "regress": lambda f: ["regress", f / "probe.jsonl", "--method", "probe", "--threads", 1],
}


@pytest.mark.parametrize("name", sorted(FILE_COMMANDS))
def test_an_existing_output_file_is_refused_unless_overwrite(corpus, tmp_path, name):
    write_records(corpus / "probe.jsonl", linear_corpus(30))
    args = FILE_COMMANDS[name](corpus)
    out = tmp_path / "out.jsonl"
    out.write_text("earlier results\n")
    refused = invoke(*args, "-o", out, expect=2)
    assert f"{out} exists: --overwrite replaces it" in said(refused) and not refused.stdout
    assert out.read_text() == "earlier results\n"  # untouched
    invoke(*args, "-o", out, "--overwrite")
    assert out.read_text() != "earlier results\n" and out.read_text().startswith("{")
    invoke(*args, "-o", tmp_path / "new.jsonl")  # a new file needs nothing
    invoke(*args, "-o", "/dev/null")  # nor a device
    source = args[1]
    before = Path(source).read_bytes()
    refused = invoke(*args, "-o", source, "--overwrite", expect=2)  # never the input, even with --overwrite
    assert "is the input" in said(refused) and Path(source).read_bytes() == before


def test_every_command_that_writes_says_so_in_its_help():
    for name in [*FILE_COMMANDS, "caption", "synth", "sft", "grpo"]:
        assert "--overwrite" in invoke(name, "--help").stdout, name


def test_resume_continues_a_file_and_a_stopped_run_is_not_started_over_silently(tmp_path):
    source = write_records(tmp_path / "in.jsonl", linear_corpus(30))
    out = tmp_path / "pred.jsonl"
    invoke("regress", source, "--method", "probe", "-o", out)
    whole = out.read_bytes()
    out.write_bytes(b"".join(whole.splitlines(keepends=True)[:10]))
    invoke("regress", source, "--method", "probe", "-o", out, "--resume")  # continues the file it wrote
    assert out.read_bytes() == whole
    refused = invoke("regress", source, "--method", "probe", "-o", out, "--resume", "--overwrite", expect=2)
    assert "give one" in said(refused)
    out.rename(tmp_path / "pred.jsonl.partial")  # what a stopped run leaves
    refused = invoke("regress", source, "--method", "probe", "-o", out, expect=2)
    assert f"{out}.partial holds a stopped run's records: --resume continues it" in said(refused)
    invoke("regress", source, "--method", "probe", "-o", out, "--overwrite")
    assert out.read_bytes() == whole and not (tmp_path / "pred.jsonl.partial").exists()


def test_synth_refuses_a_folder_that_is_not_empty(tmp_path):
    common = ("--n", 1, "--seconds", 1, "--sample-rate", 16000, "--no-stdout", "--threads", 1)
    (tmp_path / "empty").mkdir()
    invoke("synth", tmp_path / "empty", *common)  # an empty folder is fine
    manifest = (tmp_path / "empty" / "manifest.jsonl").read_bytes()
    refused = invoke("synth", tmp_path / "empty", *common, "--seed", 4, expect=2)
    assert f"{tmp_path / 'empty'} is not empty" in said(refused) and "--overwrite" in said(refused)
    assert (tmp_path / "empty" / "manifest.jsonl").read_bytes() == manifest
    invoke("synth", tmp_path / "empty", *common, "--seed", 4, "--overwrite")
    assert (tmp_path / "empty" / "manifest.jsonl").read_bytes() != manifest
    kept = tmp_path / "kept.jsonl"
    kept.write_text("mine\n")
    refused = invoke("synth", tmp_path / "fresh", *common, "-o", kept, expect=2)
    assert f"{kept} exists" in said(refused) and kept.read_text() == "mine\n"


def test_sft_and_grpo_refuse_an_existing_run_and_never_replace_their_inputs(pipeline, tmp_path):  # noqa: F811
    records, llm = pipeline
    train = ("--llm", llm, "--steps", 1, "--batch-size", 4, "--no-bf16", "--threads", 1)
    run = tmp_path / "run"
    invoke("sft", records, "-o", run, *train)
    state = (run / "trainer_state.json").read_bytes()
    refused = invoke("sft", records, "-o", run, *train, "--seed", 1, expect=2)
    assert f"{run} exists (an earlier run?): --overwrite replaces it" in said(refused)
    assert (run / "trainer_state.json").read_bytes() == state
    invoke("sft", records, "-o", run, *train, "--seed", 1, "--overwrite")
    assert (run / "trainer_state.json").read_bytes() != state
    invoke("sft", records, "--resume", run, "--extend-to", 2)  # a resumed run continues its own folder
    assert json.loads((run / "trainer_state.json").read_text())["step"] == 2

    answers = tmp_path / "answers.jsonl"
    answers.write_text("earlier answers\n")
    ask = ("caption", records, "--model", run, "--split", "test", "--max-new-tokens", 2, "--threads", 1, "-o", answers)
    refused = invoke(*ask, expect=2)
    assert f"{answers} exists: --overwrite replaces it" in said(refused) and answers.read_text() == "earlier answers\n"
    invoke(*ask, "--overwrite")
    assert len(answers.read_text().splitlines()) == len(records.read_text().splitlines())

    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    refused = invoke("sft", records, "-o", other, *train, "--overwrite", expect=2)
    assert "is not an mllm checkpoint" in said(refused) and (other / "thesis.tex").read_text() == "years of work"
    refused = invoke("sft", records, "-o", records, *train, "--overwrite", expect=2)
    assert "is the input" in said(refused) and orjson.loads(records.read_bytes().splitlines()[0])["id"]
    (tmp_path / "best-run-best").mkdir()
    (tmp_path / "best-run-best" / "x").write_text("x")
    refused = invoke("sft", records, "-o", tmp_path / "best-run", *train, "--keep-best", "--val-every", 1, expect=2)
    assert f"{tmp_path / 'best-run-best'} exists" in said(refused)

    grpo = ("--steps", 1, "--group-size", 2, "--batch-size", 2, "--max-new-tokens", 4, "--no-bf16", "--threads", 1)
    refused = invoke("grpo", records, "--checkpoint", run, "-o", run, *grpo, "--overwrite", expect=2)
    assert "is (or holds) the input" in said(refused) and (run / "trainer_state.json").is_file()
    invoke("grpo", records, "--checkpoint", run, "-o", tmp_path / "g", *grpo)
    refused = invoke("grpo", records, "--checkpoint", run, "-o", tmp_path / "g", *grpo, expect=2)
    assert f"{tmp_path / 'g'} exists" in said(refused)
    invoke("grpo", records, "--resume", tmp_path / "g", "--steps", 2)  # continues its own folder
