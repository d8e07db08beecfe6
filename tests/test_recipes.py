"""Every recipe of recipes/ runs in smoke mode (MLLM_RECIPE_SMOKE=1: tests/data's fixture datasets with
generated audio, a tiny random LLM or Qwen2-Audio, few steps) and leaves the figures it promises: the
files, the tasks, the test split alone scored, one scored item per test item of the fixtures (counted
here from tests/data, not from the recipe's own files).

Four runs go side by side (one thread each) in one module fixture: multi_gpu.sh's smoke mode runs
llark_mir.sh's smoke run first (into multi_gpu/single), then trains the same sft on two processes.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
DATA = REPO / "tests" / "data"
BIN = Path(sys.executable).parent
NAMES = ("llark_mir", "emotion_grpo", "cmi_bench_eval", "zero_shot_eval", "multi_gpu")
RUNS = ("multi_gpu", "emotion_grpo", "cmi_bench_eval", "zero_shot_eval")  # multi_gpu runs llark_mir first
TIMEOUT = 900


def recipe_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHON": sys.executable,
           "MLLM": str(BIN / "mllm"), "MLLM_RECIPE_SMOKE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name in ("MLLM_RECIPE_OVERWRITE", "MLLM_NPROC", "MLLM_LLM", "MLLM_MODEL", "MLLM_DEVICE", "MLLM_GENRE_MATCH"):
        env.pop(name, None)  # a developer's own settings would change what the smoke run checks
    return {**env, **extra}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{name: (out folder, completed process)} of every recipe, run at once."""
    root = tmp_path_factory.mktemp("recipes")
    started = {}
    for name in RUNS:
        log = open(root / f"{name}.log", "w+")
        process = subprocess.Popen(["bash", str(RECIPES / f"{name}.sh"), str(root / name)], env=recipe_env(),
                                   stdout=log, stderr=subprocess.STDOUT, text=True)
        started[name] = (process, log, time.monotonic())
    out = {}
    for name, (process, log, start) in started.items():
        process.wait(timeout=TIMEOUT)
        log.seek(0)
        out[name] = (root / name, subprocess.CompletedProcess(process.args, process.returncode, log.read(), ""))
        log.close()
    folder, done = out["multi_gpu"]
    out["llark_mir"] = (folder / "single", done)
    return out


def finished(runs, name) -> Path:
    folder, done = runs[name]
    assert done.returncode == 0, done.stdout[-4000:]
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---- what the fixtures hold (counted from tests/data) ----------------------------------------------

def giantsteps_key_tracks() -> int:
    return len(list((DATA / "giantsteps_key/annotations/key").glob("*.key")))


def giantsteps_tempo_tracks() -> int:  # LLark leaves out the tracks annotated 0 BPM
    return sum(float(p.read_text().split()[0]) > 0 for p in (DATA / "giantsteps_tempo/annotations_v2/tempo").glob("*.bpm"))


def gtzan_test_files() -> int:
    return sum(1 for line in (DATA / "gtzan/test_filtered.txt").read_text().splitlines() if line.strip())


def merge_test_songs() -> int:
    return len(rows(next((DATA / "merge").rglob("tvt_70_15_15_test_*.csv"))))


def musicqa_eval_items() -> int:
    return len(json.loads(next((DATA / "musicqa").rglob("EvalMusicQA.json")).read_text()))  # one QA pair each


def cmi_items(task_file: str) -> int:
    path = DATA / "cmi_bench" / task_file
    text = path.read_text()
    items = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    return len(items)


def cmi_task_items(task: str, split: str) -> int:
    path = next((DATA / "cmi_bench_tasks").rglob(f"CMI_{task}.jsonl"))
    splits = [json.loads(line).get("split") for line in path.read_text().splitlines() if line.strip()]
    return sum(split in (value if isinstance(value, list) else [value]) for value in splits)  # ["test"] or "test"


def smoke_deam_test_songs() -> int:
    sys.path.insert(0, str(RECIPES))
    from smoke import DEAM_SPLIT
    return len(DEAM_SPLIT["test.txt"])


# ---- llark_mir / multi_gpu ----------------------------------------------------------------------

def check_llark_scores(folder: Path) -> dict:
    scores = json.loads((folder / "scores.json").read_text())
    assert scores["split"] == "test"
    tasks = scores["tasks"]
    assert set(tasks) == {"key", "tempo", "genre"}
    assert tasks["key"]["n"] == giantsteps_key_tracks() == 3
    assert tasks["tempo"]["n"] == giantsteps_tempo_tracks() == 2
    assert tasks["genre"]["n"] == gtzan_test_files() == 1
    assert scores["n_scored_by_split"] == {"test": 6}
    # GTZAN's train and valid files were passed through, not scored (GiantSteps is all test).
    assert scores["not_scored"]["other_splits"] == {"train": 2, "valid": 1}
    assert {"weighted_score", "accuracy"} <= set(tasks["key"]["metrics"])
    assert {"acc1", "acc2"} <= set(tasks["tempo"]["metrics"])
    assert "accuracy" in tasks["genre"]["metrics"]
    for block in tasks.values():
        assert block["split"] == "test"
    # Every test item was answered, no other record was.
    answers = read_jsonl(folder / "answers.jsonl")
    assert all(("response" in r) == (r["split"] == "test") for r in answers)
    # Zero-shot: no record of an evaluation set in the training file; LLark's crop on every clip.
    train = read_jsonl(folder / "train.jsonl")
    assert train and {r["source"]["dataset"] for r in train} <= {"mtg-jamendo", "musiccaps"}
    assert {r["task"] for r in train} >= {"key", "tempo", "caption"}
    assert all("start" in r and "end" in r and r["end"] - r["start"] <= 25.0 for r in train + answers)
    return scores


def test_llark_mir_scores_giantsteps_and_gtzan_test_items(runs):
    folder = finished(runs, "llark_mir")
    scores = check_llark_scores(folder)
    # LLark's genre protocol: the nearest label by embedding, so every non-empty answer is read.
    assert scores["tasks"]["genre"]["parse_rate"] == 1.0
    metrics = read_jsonl(folder / "runs/sft.metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, 13))
    state = json.loads((folder / "runs/sft/trainer_state.json").read_text())
    assert state["world_size"] == 1 and state["step"] == 12
    commands = (folder / "commands.sh").read_text()
    assert "mllm sft" in commands and "--split test" in commands and "eval-mir" in commands


def test_multi_gpu_trains_the_same_run_on_two_processes(runs):
    folder = finished(runs, "multi_gpu")
    single = folder / "single"
    state = json.loads((folder / "runs/sft/trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 12
    commands = (folder / "commands.sh").read_text()
    assert "torch.distributed.run --standalone --nproc-per-node 2" in commands
    assert f"--config {single}/runs/sft/options.yaml --batch-size 2" in commands
    # 2 processes x batch 2 step as llark_mir's one process x batch 4 on the same records (smoke mode
    # trains in fp32 without dropout, so the two runs agree to rounding; at lr 1e-2 the rounding
    # differences grow to a few 1e-3 by step 12).
    ddp = read_jsonl(folder / "runs/sft.metrics.jsonl")
    one = read_jsonl(single / "runs/sft.metrics.jsonl")
    assert [m["step"] for m in ddp] == [m["step"] for m in one] == list(range(1, 13))
    assert [m["loss"] for m in ddp[:4]] == pytest.approx([m["loss"] for m in one[:4]], rel=1e-4)
    assert [m["loss"] for m in ddp] == pytest.approx([m["loss"] for m in one], rel=2e-2)
    assert one[0]["loss"] != one[-1]["loss"]
    scores = json.loads((folder / "scores.json").read_text())
    assert scores["split"] == "test"
    assert {task: block["n"] for task, block in scores["tasks"].items()} == {
        "key": giantsteps_key_tracks(), "tempo": giantsteps_tempo_tracks(), "genre": gtzan_test_files()}
    # The paired comparison with the single-process run's answers, item by item.
    comparison = scores["comparison"]
    assert comparison["other"] == str(single / "answers.jsonl")
    assert {task: block["n_paired"] for task, block in comparison["tasks"].items()} == {
        "key": giantsteps_key_tracks(), "tempo": giantsteps_tempo_tracks(), "genre": gtzan_test_files()}
    assert {"difference", "p_value"} <= set(comparison["tasks"]["key"]["metrics"]["weighted_score"])


# ---- emotion_grpo -------------------------------------------------------------------------------

def test_emotion_grpo_scores_arousal_valence_and_musicqa_on_the_test_split(runs):
    folder = finished(runs, "emotion_grpo")
    songs = smoke_deam_test_songs()
    for system in ("probe", "sft", "grpo"):
        scores = json.loads((folder / f"scores/{system}.emotion.json").read_text())
        assert scores["split"] == "test" and scores["n_scored_by_split"] == {"test": 2 * songs}
        assert set(scores["tasks"]) == {"arousal", "valence"}
        for block in scores["tasks"].values():
            assert block["n"] == songs and block["split"] == "test"
            assert {"r2", "rmse", "pearson", "ccc"} <= set(block["metrics"])
    # The ridge probe answers every test song with a number: its figures are computed.
    probe = json.loads((folder / "scores/probe.emotion.json").read_text())
    for block in probe["tasks"].values():
        assert block["n_scored"] == songs
        assert all(isinstance(block["metrics"][m]["value"], float) for m in ("r2", "rmse", "pearson", "ccc"))
    comparison = json.loads((folder / "scores/grpo_vs_sft.emotion.json").read_text())
    assert comparison["split"] == "test" and comparison["comparison"]
    grpo = read_jsonl(folder / "runs/grpo.metrics.jsonl")
    assert [m["step"] for m in grpo] == [1, 2]
    assert (folder / "runs/grpo/config.json").is_file()
    for system in ("sft", "grpo"):
        qa = json.loads((folder / f"scores/{system}.musicqa.json").read_text())
        block = qa["splits"]["test"]
        assert block["n_scored"] == musicqa_eval_items() == 3
        assert {"bleu_1", "bleu_4", "meteor", "rouge_l_f"} <= set(block["metrics"])
        assert set(qa["splits"]) == {"test"}


# ---- cmi_bench_eval -----------------------------------------------------------------------------

def test_cmi_bench_eval_rescores_result_files_and_scores_a_model(runs):
    folder = finished(runs, "cmi_bench_eval")
    board = json.loads((folder / "leaderboard.json").read_text())
    by_file = {Path(f["input"]).name: f for f in board["files"]}
    expected = {"testmodel_GS_key.jsonl": "key", "testmodel_GTZAN.jsonl": "genre",
                "testmodel_EMO_arousal.jsonl": "arousal", "testmodel_gtzan_beat.jsonl": "beats"}
    assert set(by_file) == set(expected)
    for file, task in expected.items():
        entry = by_file[file]
        assert entry["model"] == "testmodel" and list(entry["tasks"]) == [task]
        assert entry["tasks"][task]["n"] == cmi_items(file)
    assert [Path(f["input"]).name for f in board["skipped_files"]] == ["testmodel_MusicCaps.jsonl"]
    captions = json.loads((folder / "captions/testmodel_MusicCaps.json").read_text())
    assert captions["n_scored"] == cmi_items("testmodel_MusicCaps.jsonl")
    assert {"bleu_4", "meteor", "rouge_l_f", "cider"} <= set(captions["metrics"])

    scores = json.loads((folder / "model_scores.json").read_text())
    assert scores["split"] == "test"
    assert {task: block["n"] for task, block in scores["tasks"].items()} == {
        "key": cmi_task_items("GS_key", "test"), "beats": cmi_task_items("gtzan_beat", "test")}
    tasks = read_jsonl(folder / "tasks.jsonl")
    assert not any(r["task"] == "caption" for r in tasks)  # the fixture has no CMI caption task


# ---- zero_shot_eval -----------------------------------------------------------------------------

def test_zero_shot_eval_counts_answers_outside_the_label_set_wrong(runs):
    folder = finished(runs, "zero_shot_eval")
    scores = json.loads((folder / "scores.json").read_text())
    assert scores["split"] == "test" and set(scores["tasks"]) == {"genre", "quadrant"}
    assert scores["tasks"]["genre"]["n"] == gtzan_test_files()
    assert scores["tasks"]["quadrant"]["n"] == merge_test_songs()
    for block in scores["tasks"].values():
        # An answer that names no label of the set is read as nothing and scored wrong.
        unread = block["n"] - block["n_parsed"]
        assert sum(block["unparsed"].values()) == unread
        assert block["metrics"]["accuracy"]["value"] <= block["n_parsed"] / block["n"]
    answers = read_jsonl(folder / "answers/genre.jsonl")
    assert all(("response" in r) == (r["split"] == "test") for r in answers)
    captions = json.loads((folder / "captions.json").read_text())
    assert set(captions["splits"]) == {"test"} and captions["splits"]["test"]["n_scored"] == 1
    assert set(captions["splits"]["test"]["metrics"]) == {f"rouge_{n}_{m}" for n in ("1", "l") for m in ("precision", "recall", "f")}


# ---- conventions --------------------------------------------------------------------------------

def test_a_rerun_into_a_finished_folder_is_refused_unless_asked(runs):
    folder = finished(runs, "zero_shot_eval")
    before = (folder / "commands.sh").read_text()
    done = subprocess.run(["bash", str(RECIPES / "zero_shot_eval.sh"), str(folder)], env=recipe_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not empty" in done.stderr and "MLLM_RECIPE_OVERWRITE=1" in done.stderr
    assert (folder / "commands.sh").read_text() == before


def test_usage_errors_exit_2(tmp_path):
    real = {k: v for k, v in recipe_env().items() if k != "MLLM_RECIPE_SMOKE"}
    for name in NAMES:
        done = subprocess.run(["bash", str(RECIPES / f"{name}.sh"), str(tmp_path / "out")], env=real,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "usage" in done.stderr
    done = subprocess.run(["bash", str(RECIPES / "llark_mir.sh"), str(tmp_path / "missing"), str(tmp_path / "out")],
                          env=real, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a folder" in done.stderr
    assert not (tmp_path / "out").exists()


def test_every_recipe_has_its_header():
    for name in NAMES:
        text = (RECIPES / f"{name}.sh").read_text()
        header = text.split("\nsource ", 1)[0] if "\nsource " in text else text
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "Reproduces:" in header and "Usage:" in header
        assert os.access(RECIPES / f"{name}.sh", os.X_OK)
    for name in ("llark_mir", "emotion_grpo", "cmi_bench_eval", "zero_shot_eval"):
        header = (RECIPES / f"{name}.sh").read_text().split("\nsource ", 1)[0]
        assert "DATA_DIR" in header and "Figures to expect" in header
