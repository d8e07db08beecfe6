"""Rescoring CMI-Bench result files, checked against hand counts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.evaluation.cmi_bench import CmiBenchError, read_cmi_bench, resolve_task, task_from_file_name

DATA = Path(__file__).parent / "data" / "cmi_bench"
runner = CliRunner()


def eval_mir(*args: str) -> dict:
    result = runner.invoke(app, ["eval-mir", *args, "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_task_from_file_name():
    assert task_from_file_name("qwen2_GS_key.jsonl") == "GS_key"
    assert task_from_file_name("gama_it_EMO_arousal.jsonl") == "EMO_arousal"
    assert task_from_file_name("results/ltu_as_gtzan_downbeat.jsonl") == "gtzan_downbeat"
    assert task_from_file_name("salmonn_MTG_top50tags.jsonl") == "MTG_top50tags"
    with pytest.raises(CmiBenchError, match="give --task"):
        task_from_file_name("answers.jsonl")
    with pytest.raises(CmiBenchError, match="eval-caption"):
        resolve_task("qwen_MusicCaps.jsonl", None)
    assert resolve_task("x.jsonl", "EMO_valence") == ("valence", True)


def test_items_become_records():
    records = list(read_cmi_bench(DATA / "testmodel_GS_key.jsonl", "key"))
    assert len(records) == 8
    first = records[0]
    assert first["id"] == "0:0000000-0.wav"
    assert first["task"] == "key" and first["reference"] == "D major"
    assert first["question"].startswith("Estimate the musical key")
    genre = next(read_cmi_bench(DATA / "testmodel_GTZAN.jsonl", "genre"))
    assert genre["reference"] == "blues"  # one-element list unwrapped


def test_key_file_against_hand_count():
    # (reference, response) -> weighted score, by the MIREX table:
    # D maj / C maj 0; D maj / D maj 1; F min / C min 0.5 (fifth above); C min / Eb maj 0.3 (relative);
    # E min / E maj 0.2 (parallel); A min / no key 0; Bb maj / A# maj 1 (enharmonic); G maj / C maj 0
    # (a fifth below: 0.5 only in the MIREX 2017 variant).
    summary = eval_mir(str(DATA / "testmodel_GS_key.jsonl"))
    assert summary["cmi_bench_task"] == "key"
    task = summary["tasks"]["key"]
    assert task["n"] == 8 and task["n_parsed"] == 7 and task["parse_rate"] == pytest.approx(7 / 8)
    assert task["metrics"]["weighted_score"]["value"] == pytest.approx(3.0 / 8)
    assert task["metrics"]["accuracy"]["value"] == pytest.approx(2 / 8)
    low, high = task["metrics"]["weighted_score"]["low"], task["metrics"]["weighted_score"]["high"]
    assert 0 <= low <= 3.0 / 8 <= high <= 1
    descending = eval_mir(str(DATA / "testmodel_GS_key.jsonl"), "--descending-fifths")
    assert descending["tasks"]["key"]["metrics"]["weighted_score"]["value"] == pytest.approx(3.5 / 8)


def test_emo_file_standardizes_predictions():
    summary = eval_mir(str(DATA / "testmodel_EMO_arousal.jsonl"))
    task = summary["tasks"]["arousal"]
    assert task["n"] == 5 and task["n_parsed"] == 4 and task["n_scored"] == 4
    assert "z-score" in task["prediction_transform"]
    # By hand: answers 2, 4, 6, 8 ("4 out of 9" and "8 on the 1-9 scale" read as 4 and 8), the fifth
    # is unparsed and left out. z-scored (population std): (x - 5) / sqrt(5). References -1, -1, 1, 1.
    z = (np.array([2, 4, 6, 8]) - 5) / math.sqrt(5)
    y = np.array([-1.0, -1.0, 1.0, 1.0])
    r2 = 1 - ((y - z) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert task["metrics"]["r2"]["value"] == pytest.approx(r2)
    assert task["metrics"]["rmse"]["value"] == pytest.approx(math.sqrt(((y - z) ** 2).mean()))
    assert task["metrics"]["pearson"]["value"] == pytest.approx(np.corrcoef(y, z)[0, 1])


def test_gtzan_file_counts_no_label_and_several_labels_as_wrong():
    summary = eval_mir(str(DATA / "testmodel_GTZAN.jsonl"))
    task = summary["tasks"]["genre"]
    # blues right, jazz right, "rock or pop" names two labels, "Classical music" names none of the
    # labels seen in the references (blues, jazz, rock, pop), "Pop." right.
    assert task["metrics"]["accuracy"]["value"] == pytest.approx(3 / 5)
    assert task["n_parsed"] == 3
    assert sum(task["unparsed"].values()) == 2
    assert any(reason.startswith("several labels") for reason in task["unparsed"])
    assert task["labels"] == ["blues", "jazz", "pop", "rock"]
    # with the full GTZAN label set, "classical" is a label: still wrong, but read
    labels = "genre=blues,classical,country,disco,hiphop,jazz,metal,pop,reggae,rock"
    full = eval_mir(str(DATA / "testmodel_GTZAN.jsonl"), "--labels", labels)["tasks"]["genre"]
    assert full["metrics"]["accuracy"]["value"] == pytest.approx(3 / 5) and full["n_parsed"] == 4


def test_beat_file_is_jsonl_and_scored_with_mir_eval():
    import mir_eval

    summary = eval_mir(str(DATA / "testmodel_gtzan_beat.jsonl"))
    task = summary["tasks"]["beats"]
    reference = np.array([0.5, 1.0, 1.5, 2.0])
    expected_first = mir_eval.beat.f_measure(reference, np.array([0.5, 1.0, 1.52, 3.0]))
    assert expected_first == pytest.approx(0.75)
    # the second answer lists instrument time ranges, not beats: unparsed, scores 0
    assert task["n_parsed"] == 1
    assert task["metrics"]["f_measure"]["value"] == pytest.approx(expected_first / 2)


def test_compare_two_systems_on_the_same_items(tmp_path):
    items = orjson.loads((DATA / "testmodel_GS_key.jsonl").read_bytes())
    for item in items:
        item["response"] = item["correct_answer"]  # a perfect system
    other = tmp_path / "perfect_GS_key.jsonl"
    other.write_bytes(orjson.dumps(items))
    summary = eval_mir(str(DATA / "testmodel_GS_key.jsonl"), "--compare", str(other))
    paired = summary["comparison"]["tasks"]["key"]
    assert paired["n_paired"] == 8
    weighted = paired["metrics"]["weighted_score"]
    assert weighted["a"] == pytest.approx(3 / 8) and weighted["b"] == pytest.approx(1.0)
    assert weighted["difference"] == pytest.approx(3 / 8 - 1)
    assert weighted["high"] < 0  # the perfect system is better
    assert 0 <= weighted["p_value"] < 0.05
