"""`mllm demo --fast`: the whole study runs end to end, every row and task of the table is there
and in range, the baselines and the shuffled audio are what they claim, pipeline.sh is what ran,
a rerun reuses the finished stages, and other options are refused without --overwrite."""

from __future__ import annotations

import json
import re
import shlex
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mllm.core.demo import APPLIES, KEYS, ROWS, TASKS, write_baselines

PROPORTIONS = {"accuracy", "weighted_score", "acc1", "acc2", "rouge_l_f"}


def mllm(*args, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "mllm.cli", *map(str, args)], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, (result.returncode, result.stderr[-4000:])
    return result


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "run"
    result = mllm("demo", "--fast", folder, "--threads", 1)
    return folder, result


def test_every_row_and_task_is_scored_in_range(demo):
    folder, result = demo
    assert result.stdout == ""  # stdout carries data only; the demo's table is on stderr
    for label in ("chance", "prior", "DSP analysis", "ridge probe", "SFT + GRPO", "SFT, shuffled audio"):
        assert label in result.stderr
    results = json.loads((folder / "results.json").read_text())
    assert results["split"] == "test" and set(results["tasks"]) == set(TASKS)
    for task, block in results["tasks"].items():
        test_items = sum(r["split"] == "test" for r in records(folder / f"instructions/{task}.jsonl"))
        assert test_items >= 2
        assert set(block["rows"]) == set(ROWS)
        for row, figures in block["rows"].items():
            if task not in APPLIES.get(row, TASKS):
                assert figures is None, (task, row)
                continue
            assert figures is not None, (task, row)
            assert figures["n"] == test_items, (task, row)  # every test item, parsed or not
            assert 0 <= figures["parse_rate"] <= 1
            for name in block["shown"]:
                figure = figures["metrics"][name]
                value = figure["value"]
                if value is None:  # regression over < 2 parsed answers: no R2
                    assert task == "energy" and figures.get("n_parsed", 0) < 3, (task, row, name)
                    continue
                if name in PROPORTIONS:
                    assert 0 <= value <= 1, (task, row, name, value)
                elif name == "mae":
                    assert 0 <= value <= 8
                elif name == "r2":
                    assert value <= 1
                elif name == "cider":
                    assert value >= 0
                if figure["low"] is not None:
                    assert figure["low"] - 1e-9 <= value <= figure["high"] + 1e-9, (task, row, name, figure)
                if name in ("accuracy", "acc1", "acc2"):  # a proportion always has an interval
                    assert figure["low"] is not None and figure["interval"] in ("bootstrap", "clopper-pearson")
            if row in ("chance", "prior", "probe") and task != "key":  # structured answers: all read
                assert figures["parse_rate"] == 1


def test_baseline_and_control_rows_are_what_they_claim(demo):
    folder, _ = demo
    key = records(folder / "instructions/key.jsonl")
    train_keys = Counter(r["answer"]["key"] for r in key if r["split"] == "train")
    prior = [r for r in records(folder / "answers/prior.mir.jsonl") if r["task"] == "key"]
    assert {r["prediction"]["key"] for r in prior} == {train_keys.most_common(1)[0][0]}
    chance = [r["prediction"]["key"] for r in records(folder / "answers/chance.mir.jsonl") if r["task"] == "key"]
    assert set(chance) <= set(KEYS)
    tempo_train = [r["answer"]["tempo_bpm"] for r in records(folder / "instructions/tempo.jsonl") if r["split"] == "train"]
    for record in records(folder / "answers/prior.mir.jsonl"):
        if record["task"] == "tempo":
            assert record["prediction"]["tempo_bpm"] == pytest.approx(statistics.fmean(tempo_train), abs=0.01)
    for record in records(folder / "answers/dsp.mir.jsonl"):
        assert record["task"] in ("key", "tempo")
        name = "key" if record["task"] == "key" else "tempo_bpm"
        assert record["prediction"][name] == record["features"][name]
    # the probe predicts tempo and energy of the test split, fitted on the train split only
    probe = [r for r in records(folder / "answers/probe.mir.jsonl") if r["split"] == "test"]
    assert probe and all(r["prediction"]["parse_ok"]["energy"] and not r.get("in_sample") for r in probe)

    # shuffled audio: a permutation of the test clips' embeddings, no clip keeping its own
    for task in TASKS:
        original = {r["id"]: r for r in records(folder / f"instructions/{task}.jsonl") if r["split"] == "test"}
        shuffled = records(folder / f"shuffled/{task}.jsonl")
        assert sorted(r["id"] for r in shuffled) == sorted(original)
        by_track = {r["track"]: r["audio_embedding"] for r in original.values()}
        for record in shuffled:
            assert record["audio_from"] != record["track"]
            assert record["audio_embedding"] == by_track[record["audio_from"]]
            assert record["messages"] == original[record["id"]]["messages"]
        assert sorted(r["audio_from"] for r in shuffled) == sorted(r["track"] for r in shuffled)

    # the model rows answered the same test items
    for row in ("sft", "grpo", "shuffled"):
        answered = [r for r in records(folder / f"answers/{row}.mir.jsonl") if r["split"] == "test"]
        assert answered and all(isinstance(r["response"], str) for r in answered)


def test_pipeline_sh_holds_the_commands_that_ran(demo):
    folder, _ = demo
    script = (folder / "pipeline.sh").read_text()
    assert subprocess.run(["bash", "-n", folder / "pipeline.sh"]).returncode == 0
    ran = json.loads((folder / "stages.json").read_text())["stages"]
    lines = [line for line in script.splitlines() if line and not line.startswith("#")]
    stage_lines = lines[lines.index("mkdir -p instructions runs answers shuffled scores logs") + 1:]
    assert stage_lines == [stage["line"] for stage in ran]
    assert [stage["name"] for stage in ran][:4] == ["synth", "extract-features", "encode", "build-instructions"]
    for name in ("tiny-llm", "sft", "grpo", "probe", "eval-mir", "eval-caption", "report"):
        assert name in [stage["name"] for stage in ran]
    assert all(stage["seconds"] > 0 for stage in ran)

    # what the lines say is what the files hold
    synth = shlex.split(next(line for line in stage_lines if line.startswith("mllm synth")))
    clips = int(synth[synth.index("--n") + 1])
    assert len(records(folder / "corpus/manifest.jsonl")) == clips == len(records(folder / "clips.jsonl"))
    sft = next(line for line in stage_lines if "mllm sft" in line)
    steps = int(re.search(r"--steps (\d+)", sft).group(1))
    state = json.loads((folder / "runs/sft/trainer_state.json").read_text())
    assert state["step"] == steps and len(records(folder / "runs/sft.metrics.jsonl")) == steps
    grpo = next(line for line in stage_lines if "mllm grpo" in line)
    assert len(records(folder / "runs/grpo.metrics.jsonl")) == int(re.search(r"--steps (\d+)", grpo).group(1))


def test_png_holds_the_plots(demo):
    folder, _ = demo
    from matplotlib.image import imread

    image = imread(folder / "results.png")
    assert image.shape[0] >= 800 and image.shape[1] >= 1000  # 2 x 2 panels at 100 dpi
    assert image[..., :3].std() > 0.05  # not blank


def test_rerun_reuses_finished_stages_and_other_options_are_refused(demo, tmp_path):
    folder, _ = demo
    before = (folder / "runs/sft/trainer_state.json").stat().st_mtime_ns
    again = mllm("demo", "--fast", folder, "--threads", 1)
    stages = json.loads((folder / "stages.json").read_text())["stages"]
    assert again.stderr.count("reused") == len(stages)
    assert (folder / "runs/sft/trainer_state.json").stat().st_mtime_ns == before

    other = mllm("demo", "--fast", folder, "--threads", 1, "--sft-steps", 7, check=False)
    assert other.returncode == 2 and "--overwrite" in other.stderr and "sft" in other.stderr

    (tmp_path / "mine.txt").write_text("not a demo")
    refused = mllm("demo", "--fast", tmp_path, check=False)
    assert refused.returncode == 2 and "holds no demo" in refused.stderr
    assert (tmp_path / "mine.txt").read_text() == "not a demo"


def test_baselines_need_train_and_test_records(tmp_path):
    (tmp_path / "instructions").mkdir()
    for task in TASKS:
        (tmp_path / f"instructions/{task}.jsonl").write_text("")
    from mllm.core.demo import DemoError

    with pytest.raises(DemoError, match="train and test"):
        write_baselines(str(tmp_path / "instructions"), str(tmp_path / "answers"))


def test_a_demo_stopped_before_its_first_stage_continues(tmp_path):
    from mllm.core.demo import DemoError, DemoOptions, check_folder, plan

    stages = plan(DemoOptions(folder=tmp_path, fast=True))
    (tmp_path / "demo.json").write_text("{}")  # what a demo writes before its first stage
    (tmp_path / "logs").mkdir()
    assert check_folder(tmp_path, stages, overwrite=False) == []
    (tmp_path / "demo.json").unlink()
    with pytest.raises(DemoError, match="holds no demo"):
        check_folder(tmp_path, stages, overwrite=False)
    assert check_folder(tmp_path, stages, overwrite=True) == []
