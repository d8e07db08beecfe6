"""`mllm synth`: the folder, the manifest and stdout, parallel workers, scores, exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import mir_eval
import orjson
import soundfile
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.records import read_records

runner = CliRunner()
LABELS = {"duration", "tempo_bpm", "beats", "downbeats", "meter", "time_signature", "key", "chords",
          "instruments", "genre", "caption", "energy", "brightness"}


def invoke(*args, expect=0):
    result = runner.invoke(app, ["synth", *map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def said(result) -> str:
    return " ".join(result.stderr.split())


def lines(text: str | bytes) -> list[dict]:
    return [orjson.loads(line) for line in (text.splitlines() if text else [])]


def test_writes_the_folder_and_streams_the_manifest_on_stdout(tmp_path):
    out = tmp_path / "corpus"
    result = invoke(out, "--n", 3, "--seconds", 3, "--sample-rate", 16000, "--seed", 7)
    manifest = (out / "manifest.jsonl").read_bytes()
    assert result.stdout_bytes == manifest
    records = lines(manifest)
    assert [r["id"] for r in records] == ["synth-7-00000", "synth-7-00001", "synth-7-00002"]
    for record in records:
        assert Path(record["audio"]).is_absolute() and Path(record["audio"]).parent == (out / "audio").resolve()
        info = soundfile.info(record["audio"])
        assert info.samplerate == 16000 and info.frames == 48000 and info.channels == 1
        assert record["start"] == 0.0 and record["end"] == record["labels"]["duration"] == 3.0
        assert record["dataset"] == "mllm-synth" and record["track"] == record["id"]
        assert set(record["labels"]) == LABELS
        assert record["scales"] == {"energy": [1, 9], "brightness": [1, 9]}
        assert record["synth"]["seed"] == 7 and record["synth"]["source"] == "generated"
        mir_eval.key.validate_key(record["labels"]["key"])
        assert record["labels"]["key"] in record["labels"]["caption"]
    assert "synth: 3 records in, 3 out" in said(result)


def test_no_stdout_and_a_parquet_manifest(tmp_path):
    result = invoke(tmp_path / "c", "--n", 2, "--seconds", 2, "--no-stdout", "-o", tmp_path / "m.parquet")
    assert result.stdout == ""
    assert not (tmp_path / "c" / "manifest.jsonl").exists()
    from_parquet = list(read_records(tmp_path / "m.parquet"))
    from_jsonl = lines(invoke(tmp_path / "d", "--n", 2, "--seconds", 2).stdout)
    assert [r["labels"] for r in from_parquet] == [r["labels"] for r in from_jsonl]


def test_two_workers_give_the_same_corpus_as_one(tmp_path):
    one = lines(invoke(tmp_path / "one", "--n", 4, "--seconds", 2, "--midi").stdout)
    two = lines(invoke(tmp_path / "two", "--n", 4, "--seconds", 2, "--midi", "--workers", 2).stdout)
    assert [r["id"] for r in two] == [r["id"] for r in one]
    for a, b in zip(one, two):
        assert a["labels"] == b["labels"]
        assert Path(a["audio"]).read_bytes() == Path(b["audio"]).read_bytes()
        assert Path(b["synth"]["midi"]).is_file()


def test_scores_from_music21(tmp_path):
    records = lines(invoke(tmp_path / "c", "--n", 2, "--seconds", 4, "--source", "scores", "--seed", 1).stdout)
    for record in records:
        assert record["track"].startswith("music21:bach/bwv") and record["synth"]["source"] == record["track"]
        assert "chords" not in record["labels"] and record["labels"]["genre"] == "classical"
        assert record["synth"]["key_source"] == "declared" and "Bach chorale" in record["labels"]["caption"]
        assert soundfile.info(record["audio"]).duration == 4.0


def test_bad_options_stop_with_a_message(tmp_path):
    cases = [
        (["--styles", "rock,metal"], "--styles: unknown metal"),
        (["--meters", "5/4"], "--meters: unknown 5/4"),
        (["--tempo-range", "fast"], "--tempo-range takes LOW,HIGH"),
        (["--tempo-range", "150,90"], "tempo range must be LOW,HIGH"),
        (["--seconds", "0"], "--seconds must be a finite number > 0"),
        (["--subtype", "MP3"], "--subtype must be one of"),
        (["--source", "midi"], "source must be one of"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--soundfont", str(tmp_path / "none.sf2")], "--soundfont: no such file"),
    ]
    for args, message in cases:
        result = invoke(tmp_path / "c", "--n", 1, *args, expect=2)
        assert message in said(result), (args, said(result))
    (tmp_path / "file").write_text("x")
    assert "OUT must be a folder" in said(invoke(tmp_path / "file", expect=2))


def test_failed_clips_are_error_records_and_exit_1(tmp_path):
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"not a soundfont")
    result = invoke(tmp_path / "c", "--n", 2, "--seconds", 1, "--soundfont", broken, expect=1)
    records = lines(result.stdout)
    assert len(records) == 2 and all(r["error"]["stage"] == "synth" for r in records)
    assert "2 failed" in said(result) and "cannot load soundfont" in said(result)
    invoke(tmp_path / "c", "--n", 1, "--seconds", 1, "--soundfont", broken, "--allow-errors", "--no-stdout", "--overwrite")


def test_help_has_examples():
    help_text = runner.invoke(app, ["synth", "--help"]).stdout
    assert "mllm synth corpus/" in help_text and "--workers" in help_text
