"""`mllm score`: --reward (grpo's verifiable rewards against each record's reference) and --model
(a reward model trained by `mllm train-reward`); error records, --split, records in = records out."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.jsonl import dumps

runner = CliRunner()


def invoke(*args, expect=0, input=None):
    result = runner.invoke(app, [*map(str, args)], input=input)
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def rows(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(dumps(r) for r in records))
    return path


ANSWERED = [
    {"id": "key-right", "task": "key", "answer": {"key": "A minor"}, "response": "The key is A minor.", "split": "test"},
    {"id": "key-relative", "task": "key", "answer": {"key": "A minor"}, "response": "C major", "split": "test"},
    {"id": "key-unread", "task": "key", "answer": {"key": "A minor"}, "response": "no idea", "split": "test"},
    {"id": "tempo-half", "task": "tempo", "reference": 120, "response": "about 60 BPM", "split": "test"},
    {"id": "energy", "task": "energy", "answer": {"energy": 5.0}, "scales": {"energy": [1, 9]},
     "prediction": {"energy": 6.0, "parse_ok": True}, "split": "test"},
    {"id": "genre-right", "task": "genre", "answer": "rock", "response": "rock", "split": "test"},
    {"id": "genre-wrong", "task": "genre", "answer": "jazz", "response": "It is rock.", "split": "test"},
    {"id": "no-reference", "task": "key", "response": "A minor", "split": "test"},
    {"id": "no-answer", "task": "key", "answer": {"key": "A minor"}, "split": "test"},
    {"id": "no-task", "answer": {"key": "A minor"}, "response": "A minor", "split": "test"},
    {"id": "bad-reference", "task": "key", "answer": {"key": "Q flat lydian"}, "response": "A minor", "split": "test"},
    {"id": "train-one", "task": "key", "answer": {"key": "A minor"}, "response": "A minor", "split": "train"},
]


def test_reward_task_scores_each_record_against_its_reference(tmp_path):
    source = write_records(tmp_path / "answers.jsonl", ANSWERED)
    out = rows(invoke("score", source, "--reward", "task:1.0,format:0.2", "--split", "test", expect=1).stdout)
    assert [r["id"] for r in out] == [r["id"] for r in ANSWERED]  # records in = records out, in order
    by_id = {r["id"]: r for r in out}
    assert by_id["key-right"]["reward"] == {"task": 1.0, "format": 1.0, "total": 1.2}
    assert by_id["key-relative"]["reward"]["task"] == 0.3  # MIREX weighted score of the relative key
    assert by_id["key-unread"]["reward"] == {"task": 0.0, "format": 0.0, "total": 0.0}  # unread: a score of 0
    assert by_id["tempo-half"]["reward"]["task"] == 0.5  # off by a factor of 2: Acc2 only
    assert by_id["energy"]["reward"]["task"] == 1 - 1 / 8  # closeness on the 1-9 scale, from `prediction`
    assert by_id["genre-right"]["reward"]["task"] == 1.0 and by_id["genre-wrong"]["reward"]["task"] == 0.0
    for name, field in (("no-reference", "reference"), ("no-answer", "response"), ("no-task", "task"),
                        ("bad-reference", "Q flat")):
        assert by_id[name]["error"]["stage"] == "score" and field in by_id[name]["error"]["message"], by_id[name]
        assert "reward" not in by_id[name]
    assert by_id["train-one"] == ANSWERED[-1]  # another split: passed through untouched


def test_reward_reads_stdin_writes_a_file_and_passes_earlier_errors(tmp_path):
    earlier = {"id": "failed", "task": "key", "error": {"stage": "caption", "type": "X", "message": "m"}}
    text = b"".join(dumps(r) for r in [ANSWERED[0], earlier, ANSWERED[5]]).decode()
    target = tmp_path / "scored.jsonl"
    result = invoke("score", "-", "--reward", "task", "-o", target, "--allow-errors", input=text)
    assert result.stdout == ""
    out = rows(target.read_text())
    assert [r["id"] for r in out] == ["key-right", "failed", "genre-right"]
    assert out[0]["reward"] == {"task": 1.0, "total": 1.0} and out[1] == earlier
    invoke("score", "-", "--reward", "task", "-o", target, expect=2, input=text)  # no --overwrite: refused


def test_options_are_checked(tmp_path):
    source = write_records(tmp_path / "answers.jsonl", ANSWERED[:1])
    assert "give one of" in invoke("score", source, expect=2).stderr
    assert "unknown component" in invoke("score", source, "--reward", "taste", expect=2).stderr
    assert "regression-shape" in invoke("score", source, "--reward", "task", "--regression-shape", "cubic", expect=2).stderr
