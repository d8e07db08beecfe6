"""`mllm eval-mir` on mllm records: tasks, readings, error records, per-item output, exit codes."""

from __future__ import annotations

import math

import mir_eval
import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.records import RecordWriter, read_records

runner = CliRunner()


def write_jsonl(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(path)


def invoke(*args, expect=0):
    result = runner.invoke(app, ["eval-mir", *args])
    assert result.exit_code == expect, (result.exit_code, result.output)
    return result


MIXED = [
    {"id": "k1", "task": "key", "response": "The key of this song is F# minor.", "reference": "F# minor"},
    {"id": "k2", "task": "key", "response": "It sounds like A-flat major", "reference": {"key": "G# major"}},
    {"id": "k3", "task": "key", "response": "A great song!", "reference": "C major"},
    {"id": "t1", "task": "tempo", "response": "around 128 BPM", "reference": 64},
    {"id": "t2", "task": "tempo", "response": "The tempo is 121.", "reference": {"tempo_bpm": 120}},
    {"id": "t3", "task": "tempo", "response": "In 4/4 time.", "reference": 100},
    {"id": "a1", "task": "arousal", "response": "I would assign a 3.6 on the 1-9 scale", "answer": {"arousal": 4.0}},
    {"id": "a2", "task": "arousal", "response": "Score: 7/9", "answer": {"arousal": 6.0}},
    {"id": "a3", "task": "arousal", "prediction": {"arousal": 12.0, "parse_ok": True}, "answer": {"arousal": 8.0}},
    {"id": "a4", "task": "arousal", "response": "Hard to say.", "answer": {"arousal": 2.0}},
]


def test_mixed_tasks_summary(tmp_path):
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "in.jsonl", MIXED), "--bootstrap", "100").stdout)
    assert summary["n_records"] == 10 and summary["n_failed"] == 0
    key = summary["tasks"]["key"]
    assert key["n"] == 3 and key["n_parsed"] == 2  # "A great song" names no key
    assert key["metrics"]["weighted_score"]["value"] == pytest.approx(2 / 3)  # Ab major == G# major
    assert key["metrics"]["accuracy"]["clopper_pearson"][0] < 2 / 3 < key["metrics"]["accuracy"]["clopper_pearson"][1]
    tempo = summary["tasks"]["tempo"]
    assert tempo["metrics"]["acc1"]["value"] == pytest.approx(1 / 3)  # 121 vs 120
    assert tempo["metrics"]["acc2"]["value"] == pytest.approx(2 / 3)  # 128 = 2 x 64
    assert tempo["n_parsed"] == 2  # the 4 of 4/4 is not a tempo
    arousal = summary["tasks"]["arousal"]
    assert arousal["scale"] == [1.0, 9.0]
    assert arousal["n"] == 4 and arousal["n_scored"] == 3 and arousal["n_clipped"] == 1
    y_true, y_pred = np.array([4.0, 6.0, 8.0]), np.array([3.6, 7.0, 9.0])  # 12 clipped to 9
    assert arousal["metrics"]["mae"]["value"] == pytest.approx(np.abs(y_true - y_pred).mean())
    assert arousal["metrics"]["rmse"]["value"] == pytest.approx(math.sqrt(((y_true - y_pred) ** 2).mean()))


def test_per_item_output_keeps_records_and_explains_readings(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", MIXED)
    result = invoke(source, "--per-item", "--bootstrap", "0")
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in MIXED]  # order and count kept
    k1 = records[0]
    assert k1["prediction"] == {"key": "F# minor", "parse_ok": True}
    assert k1["eval"]["read_from"] == "response" and k1["eval"]["matched"]
    assert k1["eval"]["scores"] == {"weighted_score": 1.0, "accuracy": 1.0}
    k3 = records[2]
    assert k3["prediction"]["parse_ok"] is False and k3["eval"]["reason"]
    a3 = records[8]
    assert a3["prediction"] == {"arousal": 12.0, "parse_ok": True}  # the record's own prediction is kept
    assert a3["eval"]["read_from"] == "prediction" and a3["eval"]["scores"]["clipped_to"] == 9.0
    assert records[6]["response"] == MIXED[6]["response"]  # fields passed through


def test_read_from_response_ignores_predictions(tmp_path):
    records = [
        {"id": "x", "task": "tempo", "response": "120 BPM", "prediction": {"tempo": 60}, "reference": 120},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    auto = orjson.loads(invoke(source, "--bootstrap", "0").stdout)
    forced = orjson.loads(invoke(source, "--bootstrap", "0", "--read-from", "response").stdout)
    assert auto["tasks"]["tempo"]["metrics"]["acc1"]["value"] == 0.0
    assert forced["tasks"]["tempo"]["metrics"]["acc1"]["value"] == 1.0


def test_bad_records_become_error_records_and_set_the_exit_code(tmp_path):
    records = [
        {"id": "good", "task": "key", "response": "C major", "reference": "C major"},
        {"id": "no-task", "response": "C major", "reference": "C major"},
        {"id": "bad-ref", "task": "key", "response": "C major", "reference": "not a key at all"},
        {"id": "unknown", "task": "danceability", "response": "0.5", "reference": 0.4},
        {"id": "upstream", "task": "key", "error": {"stage": "caption", "type": "X", "message": "m"}},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    result = invoke(source, "--per-item", "--bootstrap", "0", expect=1)
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 5
    errors = {r["id"]: r["error"] for r in out if "error" in r}
    assert set(errors) == {"no-task", "bad-ref", "unknown", "upstream"}
    assert "'task'" in errors["no-task"]["message"]
    assert "'reference'" in errors["bad-ref"]["message"]
    assert "--task-type danceability=" in errors["unknown"]["message"]
    assert errors["upstream"]["stage"] == "caption"  # passed through untouched
    assert all(e["stage"] == "eval-mir" for k, e in errors.items() if k != "upstream")
    assert "4 failed" in result.stderr
    invoke(source, "--per-item", "--bootstrap", "0", "--allow-errors", expect=0)
    # the unknown task is fine once its kind is given
    summary = orjson.loads(
        invoke(source, "--bootstrap", "0", "--task-type", "danceability=regression", "--scale", "0,1", expect=1).stdout
    )
    assert summary["tasks"]["danceability"]["n_scored"] == 1


def test_chords_duration_weighted(tmp_path):
    records = [
        {"id": "c1", "task": "chords", "reference": [[0, 2, "C:maj"], [2, 4, "A:min"]],
         "response": "0.0-3.0: C major, 3.0-4.0: A minor"},
        {"id": "c2", "task": "chords", "reference": [[0, 4, "G:maj"]], "response": "I hear no chords."},
    ]
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "in.jsonl", records), "--bootstrap", "0").stdout)
    task = summary["tasks"]["chords"]
    # c1: C:maj right 0-2, wrong 2-3 (C vs A:min), right 3-4 -> 3 of 4 s; c2: unread -> "N" -> 0 of 4 s
    assert task["metrics"]["majmin"]["value"] == pytest.approx(3 / 8)
    ref_i, ref_l = np.array([[0, 2], [2, 4]]), ["C:maj", "A:min"]
    est_i, est_l = np.array([[0, 3], [3, 4]]), ["C:maj", "A:min"]
    assert mir_eval.chord.evaluate(ref_i, ref_l, est_i, est_l)["majmin"] == pytest.approx(0.75)


def test_tagging_with_synonyms(tmp_path):
    records = [
        {"id": "1", "task": "instruments", "response": "I hear a drum kit and piano.", "reference": ["drums", "piano"]},
        {"id": "2", "task": "instruments", "response": "Only singing.", "reference": ["vocals"]},
        {"id": "3", "task": "instruments", "response": "Piano, no drums.", "reference": ["piano", "vocals"]},
    ]
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "in.jsonl", records), "--bootstrap", "50").stdout)
    task = summary["tasks"]["instruments"]
    # predicted sets: {drums, piano}, {vocals}, {piano}; references as given
    # micro: tp = 2 + 1 + 1 = 4, fp = 0, fn = 1 -> precision 1, recall 0.8
    assert task["metrics"]["precision_micro"]["value"] == pytest.approx(1.0)
    assert task["metrics"]["recall_micro"]["value"] == pytest.approx(0.8)
    assert task["labels"] == ["drums", "piano", "vocals"]


def test_tagging_with_scores_gives_ranking_metrics(tmp_path):
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = ["drums", "piano", "vocals"]
    truth = np.array([[1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0]])
    score = np.array([[0.9, 0.6, 0.2], [0.1, 0.3, 0.8], [0.4, 0.7, 0.45], [0.3, 0.2, 0.1]])
    records = [
        {"id": str(i), "task": "tags", "reference": [l for l, t in zip(labels, row) if t],
         "prediction": {"tags": dict(zip(labels, map(float, scores)))}}
        for i, (row, scores) in enumerate(zip(truth, score))
    ]
    task = orjson.loads(invoke(write_jsonl(tmp_path / "in.jsonl", records), "--bootstrap", "20").stdout)["tasks"]["tags"]
    assert task["ranking"] == "from the predicted scores"
    assert task["metrics"]["roc_auc"]["value"] == pytest.approx(roc_auc_score(truth, score, average="macro"))
    assert task["metrics"]["pr_auc"]["value"] == pytest.approx(average_precision_score(truth, score, average="macro"))
    # labels at >= 0.5: {drums, piano}, {vocals}, {piano}, {} -> tp 4, fp 0, fn 2
    assert task["metrics"]["precision_micro"]["value"] == pytest.approx(1.0)
    assert task["metrics"]["recall_micro"]["value"] == pytest.approx(4 / 6)
    higher = orjson.loads(invoke(write_jsonl(tmp_path / "in.jsonl", records), "--bootstrap", "0", "--tag-threshold", "0.85").stdout)
    assert higher["tasks"]["tags"]["metrics"]["recall_micro"]["value"] == pytest.approx(1 / 6)  # only drums of item 0


def test_tagging_label_outside_the_references_is_a_false_positive(tmp_path):
    records = [
        {"id": "1", "task": "instruments", "response": "piano and guitar", "reference": ["piano"]},
        {"id": "2", "task": "instruments", "response": "drums", "reference": ["drums"]},
    ]
    path = write_jsonl(tmp_path / "in.jsonl", records)
    task = orjson.loads(invoke(path, "--bootstrap", "0", "--labels", "instruments=piano,drums,guitar").stdout)["tasks"]["instruments"]
    assert task["labels"] == ["drums", "guitar", "piano"]
    assert task["metrics"]["precision_micro"]["value"] == pytest.approx(2 / 3)  # guitar is a false positive


def test_caption_and_qa_records_pass_through_unscored(tmp_path):
    records = [
        MIXED[0],
        {"id": "c1", "task": "caption", "response": "A calm piano piece.", "answer": {"caption": "Soft piano."}},
        {"id": "m1", "task": "meter", "response": "Meter: 3", "reference": 3},
    ]
    path = write_jsonl(tmp_path / "in.jsonl", records)
    result = invoke(path, "--per-item", "--bootstrap", "0", "--labels", "meter=2,3,4")
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in out] == ["k1", "c1", "m1"] and out[1] == records[1]  # untouched, no error
    summary = orjson.loads(invoke(path, "--bootstrap", "0", "--labels", "meter=2,3,4").stdout)
    assert summary["skipped"] == {"caption": {"n": 1, "score_with": "mllm eval-caption"}}
    assert summary["n_failed"] == 0 and summary["tasks"]["meter"]["metrics"]["accuracy"]["value"] == 1.0  # reference 3 read as "3"


def test_parquet_in_and_out(tmp_path):
    source = tmp_path / "in.parquet"
    with RecordWriter(source) as writer:
        for record in MIXED:
            writer.write(record)
    out = tmp_path / "scored.parquet"
    invoke(str(source), "--per-item", "-o", str(out), "--bootstrap", "0")
    records = list(read_records(out))
    assert len(records) == len(MIXED) and records[0]["eval"]["scores"]["accuracy"] == 1.0


def test_stdin_input(tmp_path):
    data = b"".join(orjson.dumps(r) + b"\n" for r in MIXED)
    result = runner.invoke(app, ["eval-mir", "-", "--bootstrap", "0"], input=data)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["n_records"] == len(MIXED)


def test_stdin_errors_name_stdin_and_the_line(tmp_path):
    data = orjson.dumps(MIXED[0]) + b"\n" + b"{not json\n" + orjson.dumps(MIXED[1]) + b"\n"
    result = runner.invoke(app, ["eval-mir", "-", "--per-item", "--bootstrap", "0"], input=data)
    assert result.exit_code == 1  # one record failed
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and [r.get("error") is None for r in records] == [True, False, True]
    message = records[1]["error"]["message"]
    assert message.startswith("<stdin>:2: not valid JSON")  # the line, not the temporary copy


def test_unreadable_input_exits_2(tmp_path):
    result = runner.invoke(app, ["eval-mir", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "cannot open" in result.stderr
    assert result.stdout == ""


def test_table_goes_to_stderr(tmp_path):
    result = invoke(write_jsonl(tmp_path / "in.jsonl", MIXED[:3]), "--table", "--bootstrap", "0")
    assert "weighted_score" in result.stderr
    orjson.loads(result.stdout)  # stdout is only the JSON summary
