"""`mllm score`: --reward (grpo's verifiable rewards against each record's reference) and --model
(a reward model trained by `mllm train-reward`); error records, --split, records in = records out."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
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
    assert "options of --reward" in invoke("score", source, "--model", tmp_path, "--labels", "genre=a,b", expect=2).stderr


def test_model_scores_audio_and_pairs_and_names_unreadable_audio(tmp_path):
    import numpy as np
    import soundfile

    from mllm.core.train.reward import RewardConfig, setup, train

    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    paths = []
    for i in range(6):  # a tone with more and more noise; MOS falls with the noise
        path = tmp_path / f"clip{i}.wav"
        soundfile.write(path, (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * i * rng.normal(size=t.size)).astype(np.float32), 22050)
        paths.append(str(path))
    rated = [{"id": f"r{i}", "audio": p, "musicality": 5.0 - i * 0.8, "split": "train" if i % 3 else "valid"}
             for i, p in enumerate(paths)]
    run = setup(RewardConfig(text_encoder="none", steps=10, output=str(tmp_path / "rm")), rated)
    list(train(run))
    records = [
        {"id": "one", "audio": paths[0], "split": "test"},
        {"id": "pair", "audio": paths[5], "audio_b": paths[0], "axis": "musicality", "preference": "b", "split": "test"},
        {"id": "missing", "audio": str(tmp_path / "nope.wav"), "split": "test"},
        {"id": "missing-b", "audio": paths[1], "audio_b": str(tmp_path / "nope.wav"), "split": "test"},
        {"id": "elsewhere", "audio": str(tmp_path / "nope.wav"), "split": "train"},
    ]
    source = write_records(tmp_path / "to-score.jsonl", records)
    out = rows(invoke("score", source, "--model", tmp_path / "rm", "--split", "test", "--threads", "1", expect=1).stdout)
    by_id = {r["id"]: r for r in out}
    assert [r["id"] for r in out] == [r["id"] for r in records]
    assert set(by_id["one"]["reward"]) == {"alignment", "musicality"} and "reward_b" not in by_id["one"]
    assert by_id["pair"]["reward_b"] == pytest.approx(by_id["one"]["reward"], rel=1e-5)  # one audio, one score, either side
    assert by_id["pair"]["reward"] != by_id["one"]["reward"]
    assert "'audio'" in by_id["missing"]["error"]["message"] and "nope.wav" in by_id["missing"]["error"]["message"]
    assert "'audio_b'" in by_id["missing-b"]["error"]["message"] and "reward" not in by_id["missing-b"]
    assert "field 'audio':" not in by_id["missing-b"]["error"]["message"]  # the record's own field, named once
    assert by_id["elsewhere"] == records[-1]
    assert "not a reward model" in invoke("score", source, "--model", tmp_path, expect=2).stderr


def test_reward_inputs_keep_at_most_max_cached_vectors_with_the_same_rows(tmp_path):
    import numpy as np
    import soundfile

    from mllm.core.encoders.for_model import ModelEncoder, encoder_spec
    from mllm.core.reward_model.features import RewardInputs
    from mllm.core.reward_model.text import TextEmbedder

    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"c{i}.wav"))
        soundfile.write(paths[-1], (0.2 * rng.normal(size=11025)).astype(np.float32), 22050)
    records = [{"id": f"r{i}", "audio": paths[i % 4]} for i in range(8)]
    rows = {}
    for bound in (None, 2):
        inputs = RewardInputs(ModelEncoder(encoder_spec("dsp", frame_rate=2.0)), TextEmbedder.load("none"), max_cached=bound)
        rows[bound] = [inputs.rows(records[i:i + 3])[0].audio for i in range(0, 8, 3)]
        assert len(inputs._vectors) == (4 if bound is None else 2)
    for unbounded, bounded in zip(rows[None], rows[2]):
        np.testing.assert_array_equal(unbounded, bounded)
