"""`mllm build-instructions` end to end, and its records scored by `mllm eval-mir` with no renaming."""

from __future__ import annotations

import json

import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.records import read_records

runner = CliRunner()

RECORDS = [
    {"id": f"clip-{n}", "audio": f"clip-{n}.wav", "dataset": "mllm-synth", "track": f"piece-{n}",
     "labels": {"key": key, "tempo_bpm": tempo, "meter": meter, "genre": genre, "instruments": instruments,
                "beats": [0.5 * i + 0.1 * n for i in range(8)], "downbeats": [0.1 * n, 2.0 + 0.1 * n],
                "chords": [[0.0, 2.0, chord], [2.0, 4.0, "G:maj"]], "energy": 2.0 + n},
     "scales": {"energy": [1, 9]}}
    for n, (key, tempo, meter, genre, instruments, chord) in enumerate([
        ("A minor", 120.0, 4, "rock", ["piano", "drums"], "A:min"),
        ("Eb major", 93.5, 3, "jazz", ["saxophone"], "Eb:maj7"),
        ("F# minor", 174.25, 4, "metal", ["electric guitar", "drums", "voice"], "F#:min"),
    ])
]
MIR_TASKS = "key,tempo,meter,beats,downbeats,chords,genre,instruments,energy"


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_answers_score_perfectly_in_eval_mir(tmp_path):
    source = write(tmp_path / "in.jsonl", RECORDS)
    built = tmp_path / "instructions.jsonl"
    result = runner.invoke(app, ["build-instructions", source, "--tasks", MIR_TASKS, "--per-task", "2", "-o", str(built)])
    assert result.exit_code == 0, result.output
    answered = []
    for record in read_records(built):
        record["response"] = record["messages"][1]["content"]  # a model that repeats the training answer
        answered.append(record)
    assert len(answered) == 3 * 9 * 2
    scored = tmp_path / "answered.jsonl"
    write(scored, answered)
    result = runner.invoke(app, ["eval-mir", str(scored), "--bootstrap", "20", "-o", str(tmp_path / "summary.json")])
    assert result.exit_code == 0, result.output
    tasks = json.loads((tmp_path / "summary.json").read_text())["tasks"]
    assert sorted(tasks) == sorted(MIR_TASKS.split(","))
    for name, task in tasks.items():
        assert task["parse_rate"] == 1.0, name
    assert tasks["key"]["metrics"]["accuracy"]["value"] == 1.0
    assert tasks["tempo"]["metrics"]["acc1"]["value"] == 1.0
    assert tasks["meter"]["metrics"]["accuracy"]["value"] == 1.0
    assert tasks["genre"]["metrics"]["accuracy"]["value"] == 1.0
    assert tasks["instruments"]["metrics"]["f1_micro"]["value"] == 1.0
    assert tasks["beats"]["metrics"]["f_measure"]["value"] == 1.0
    assert tasks["chords"]["metrics"]["mirex"]["value"] == 1.0
    assert tasks["energy"]["metrics"]["mae"]["value"] == 0.0


def test_stdin_parquet_output_and_summary(tmp_path):
    lines = "".join(json.dumps(r) + "\n" for r in RECORDS)
    out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["build-instructions", "-", "--tasks", "key,caption", "-o", str(out)], input=lines)
    assert result.exit_code == 0, result.output
    rows = list(read_records(out))
    assert [r["task"] for r in rows] == ["key", "caption"] * 3
    assert rows[0]["messages"][0]["content"].startswith("<audio>\n") and rows[0]["answer"] == {"key": "A minor"}
    assert "key: 3 instruction records" in result.output and "3 records in, 6 out" in result.output
    result = runner.invoke(app, ["build-instructions", "-", "--tasks", "key"], input=lines)
    assert [json.loads(line)["answer"]["key"] for line in result.stdout.splitlines()] == ["A minor", "Eb major", "F# minor"]


def test_failed_records_set_the_exit_code(tmp_path):
    source = write(tmp_path / "in.jsonl", [RECORDS[0], {"id": "bad", "audio": "x.wav", "labels": {"key": "Q minor"}}])
    result = runner.invoke(app, ["build-instructions", source, "--tasks", "key", "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "bad" in result.output
    result = runner.invoke(app, ["build-instructions", source, "--tasks", "key", "-o", str(tmp_path / "o.jsonl"), "--allow-errors",
                                 "--overwrite"])
    assert result.exit_code == 0
    rows = list(read_records(tmp_path / "o.jsonl"))
    assert [r["id"] for r in rows] == ["clip-0#key-0", "bad"] and "error" in rows[1]


def test_records_on_stdin_by_default(tmp_path):
    data = b"".join(orjson.dumps(r) + b"\n" for r in RECORDS)
    result = runner.invoke(app, ["build-instructions", "--tasks", "key"], input=data)
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line)["task"] for line in result.stdout.splitlines()] == ["key"] * len([r for r in RECORDS if "key" in r.get("labels", {})])


@pytest.mark.parametrize("args,message", [
    (["in.jsonl", "--dataset", "deam", "--root", "."], "not both"),
    (["--dataset", "deam"], "--root"),
    (["--dataset", "fma", "--root", "."], "unknown dataset"),
    (["in.jsonl", "--split-fractions", "0.5,0.5"], "split fractions"),
    (["in.jsonl", "--from", "both"], "--from"),
    (["in.jsonl", "--split-from", "maybe"], "--split-from"),
    (["in.jsonl", "--scale", "energy=9,1"], "LOW < HIGH"),
    (["missing.jsonl"], "missing.jsonl"),
    (["--dataset", "deam", "--root", "."], "static_annotations"),
    (["--dataset", "gtzan", "--root", ".", "--dataset-option", "split_lists"], "NAME=VALUE"),
])
def test_bad_options_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "in.jsonl", RECORDS[:1])
    result = runner.invoke(app, ["build-instructions", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_help_has_examples():
    result = runner.invoke(app, ["build-instructions", "--help"])
    assert result.exit_code == 0
    assert "mllm build-instructions --dataset deam" in result.output
    assert "build-instructions" in runner.invoke(app, ["--help"]).output
