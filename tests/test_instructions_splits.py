"""Splits by hash of a grouping id or the dataset's own; the leakage check refuses to write."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.instructions.splits import LeakageCheck, SplitError, SplitRule, hash_split, normalise_split, parse_fractions

runner = CliRunner()


def test_hash_split_is_fixed_by_seed_and_group():
    assert hash_split("song-1", (0.8, 0.1, 0.1), seed=0) == hash_split("song-1", (0.8, 0.1, 0.1), seed=0)
    splits = [hash_split(f"song-{i}", (0.8, 0.1, 0.1), seed=0) for i in range(200)]
    other_seed = [hash_split(f"song-{i}", (0.8, 0.1, 0.1), seed=1) for i in range(200)]
    assert splits != other_seed


def test_hash_split_follows_the_fractions():
    counts = Counter(hash_split(f"track-{i}", (0.7, 0.15, 0.15), seed=3) for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.7) < 0.015
    assert abs(counts["valid"] / 20000 - 0.15) < 0.015
    assert abs(counts["test"] / 20000 - 0.15) < 0.015
    assert {hash_split(f"t{i}", (0.0, 0.0, 1.0)) for i in range(100)} == {"test"}


def test_excerpts_of_one_track_share_a_split():
    rule = SplitRule(mode="hash", fractions=(0.5, 0.25, 0.25))
    by_track: dict[str, set] = {}
    for track in range(100):
        for excerpt in range(5):
            record = {"id": f"{track}-{excerpt}", "audio": f"{track}-{excerpt}.wav", "track": f"t{track}"}
            by_track.setdefault(f"t{track}", set()).add(rule(record)[0])
    assert all(len(splits) == 1 for splits in by_track.values())
    assert {s for splits in by_track.values() for s in splits} == {"train", "valid", "test"}


def test_grouping_falls_back_to_audio_then_id_and_can_be_another_field():
    rule = SplitRule(mode="hash", group_by="artist")
    assert rule.group({"id": "a", "audio": "x.wav", "artist": "artist_1"}) == "artist_1"
    assert rule.group({"id": "a", "audio": "x.wav"}) == "x.wav"
    assert rule.group({"id": "a"}) == "a"


def test_the_datasets_own_split_is_respected():
    record = {"id": "a", "audio": "a.wav", "track": "a", "split": ["dev"]}
    assert SplitRule()(record) == ("valid", "dataset")
    assert SplitRule(mode="hash", fractions=(1.0, 0.0, 0.0))(record) == ("train", "hash")
    with pytest.raises(SplitError):
        SplitRule(mode="dataset")({"id": "b", "audio": "b.wav"})


def test_split_names_and_fractions():
    assert [normalise_split(n) for n in ("Train", "validation", "val", "dev", "validate", "test")] == [
        "train", "valid", "valid", "valid", "valid", "test"]
    with pytest.raises(SplitError):
        normalise_split("holdout")
    assert parse_fractions("8,1,1") == (0.8, 0.1, 0.1)
    for bad in ("0.8,0.2", "a,b,c", "-1,1,1", "0,0,0"):
        with pytest.raises(SplitError):
            parse_fractions(bad)


def test_leakage_check_by_path_and_by_content(tmp_path):
    first, copy = tmp_path / "a.wav", tmp_path / "b.wav"
    first.write_bytes(b"same bytes")
    copy.write_bytes(b"same bytes")
    check = LeakageCheck()
    check.add(str(first), "train", "r1")
    check.add(str(tmp_path / "." / "a.wav"), "train", "r2")
    check.add(str(copy), "test", "r3")
    assert check.ok
    check.add(str(first), "test", "r4")
    assert not check.ok and check.describe() == [f"r4 (test) uses {first}, already in r1 (train)"]
    by_content = LeakageCheck(by_content=True)
    by_content.add(str(first), "train", "r1")
    by_content.add(str(copy), "test", "r3")
    assert by_content.n_conflicts == 1


def write_records(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_cli_refuses_to_write_when_audio_is_in_two_splits(tmp_path):
    records = [
        {"id": "a", "audio": "same.wav", "split": "train", "labels": {"key": "A minor"}},
        {"id": "b", "audio": "other.wav", "split": "train", "labels": {"key": "C major"}},
        {"id": "c", "audio": "same.wav", "split": "test", "labels": {"key": "A minor"}},
    ]
    write_records(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["build-instructions", str(tmp_path / "in.jsonl"), "--tasks", "key", "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert not out.exists() and not list(tmp_path.glob(".mllm-instructions-*"))
    assert "leakage" in result.output and "c (test) uses same.wav, already in a (train)" in result.output
    result = runner.invoke(app, ["build-instructions", str(tmp_path / "in.jsonl"), "--tasks", "key"])
    assert result.exit_code == 2 and result.stdout == ""
    # the same input with the check off, or split by track, is written
    result = runner.invoke(app, ["build-instructions", str(tmp_path / "in.jsonl"), "--tasks", "key", "--leakage-check", "off", "-o", str(out)])
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 3
    result = runner.invoke(app, ["build-instructions", str(tmp_path / "in.jsonl"), "--tasks", "key", "--split-from", "hash", "--group-by", "audio", "-o", str(out),
                                 "--overwrite"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["split"] == rows[2]["split"]
