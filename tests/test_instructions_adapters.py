"""Every dataset adapter on a small fixture under tests/data/<dataset>/ that mimics the published layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.instructions.adapters import ADAPTERS, AdapterError, read_dataset

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def read(name: str, folder: str, **options):
    records, report = read_dataset(name, DATA / folder, options)
    records = list(records)
    return {r["id"]: r for r in records}, report


def test_every_adapter_is_registered():
    assert sorted(ADAPTERS) == ["cmi-bench", "deam", "giantsteps-key", "giantsteps-tempo", "gtzan", "merge",
                                "mtg-jamendo", "musiccaps", "musicqa"]


def test_deam_reads_both_annotation_files_on_the_1_9_scale():
    records, report = read("deam", "deam")
    assert sorted(records) == ["deam:2", "deam:2001", "deam:3", "deam:4"]  # song 5 has no audio file
    assert report.missing_audio == 1 and report.rows == 5
    song = records["deam:2"]
    assert song["labels"] == {"arousal": 3.0, "valence": 3.1}
    assert song["scales"] == {"arousal": [1.0, 9.0], "valence": [1.0, 9.0]}
    assert song["track"] == "2" and "split" not in song and song["metadata"] == {"arousal_std": 0.63, "valence_std": 0.94}
    assert Path(song["audio"]).name == "2.mp3" and Path(song["audio"]).parent.name == "MEMD_audio"
    assert records["deam:2001"]["labels"] == {"arousal": 7.4, "valence": 6.2}


def test_deam_split_lists(tmp_path):
    (tmp_path / "train.txt").write_text("2\n3\n")
    (tmp_path / "val.txt").write_text("4\n")
    (tmp_path / "test.txt").write_text("2001\n")
    records, _ = read("deam", "deam", split_dir=str(tmp_path))
    assert {k: r.get("split") for k, r in records.items()} == {"deam:2": "train", "deam:3": "train", "deam:4": "valid", "deam:2001": "test"}
    with pytest.raises(AdapterError, match="split_dir"):
        read("deam", "deam", split_dir=str(tmp_path / "nowhere"))


def test_deam_bad_row_is_an_error_record(tmp_path):
    root = tmp_path / "deam"
    shutil.copytree(DATA / "deam", root)
    table = next(root.rglob("static_annotations_averaged_songs_1_2000.csv"))
    table.write_text(table.read_text() + "6,high,1,low,1\n")
    (next(root.rglob("MEMD_audio")) / "6.mp3").write_bytes(b"")
    records, _ = read_dataset("deam", root)
    error = next(r for r in records if r["id"] == "deam:6")["error"]
    assert error["stage"] == "build-instructions" and "line 6" in error["message"]


def test_merge_quadrants_classes_values_and_its_split():
    records, _ = read("merge", "merge")
    assert sorted(records) == ["merge:A001", "merge:A002", "merge:A003", "merge:A004"]
    a002 = records["merge:A002"]
    assert a002["labels"] == {"quadrant": "Q2", "arousal_class": "high", "valence_class": "negative",
                              "arousal": 0.7365, "valence": 0.2125}
    assert a002["scales"] == {"arousal": [0.0, 1.0], "valence": [0.0, 1.0]}
    assert Path(a002["audio"]).parts[-2:] == ("Q2", "A002.mp3")
    assert a002["metadata"]["Artist"] == "Artist B"
    assert {k: r["split"] for k, r in records.items()} == {"merge:A001": "train", "merge:A002": "train", "merge:A003": "valid", "merge:A004": "test"}
    assert [records[f"merge:A00{i}"]["labels"]["arousal_class"] + "/" + records[f"merge:A00{i}"]["labels"]["valence_class"]
            for i in range(1, 5)] == ["high/positive", "high/negative", "low/negative", "low/positive"]
    other, _ = read("merge", "merge", split="tvt_40_30_30", av_scale="0,2")
    assert other["merge:A002"]["split"] == "valid" and other["merge:A002"]["scales"]["arousal"] == [0.0, 2.0]
    unsplit, _ = read("merge", "merge", split="none")
    assert all("split" not in r for r in unsplit.values())


def test_giantsteps_key():
    records, _ = read("giantsteps-key", "giantsteps_key")
    assert {k: r["labels"] for k, r in records.items()} == {
        "giantsteps-key:10089": {"key": "F minor", "genre": "techno"},
        "giantsteps-key:1030011": {"key": "Eb major"},
        "giantsteps-key:1044393": {"key": "Eb minor"},  # written "ebminor" in the file
    }
    assert Path(records["giantsteps-key:10089"]["audio"]).name == "10089.LOFI.mp3"
    assert records["giantsteps-key:10089"]["track"] == "10089"


def test_giantsteps_key_unreadable_key_is_an_error(tmp_path):
    root = tmp_path / "gs"
    shutil.copytree(DATA / "giantsteps_key", root)
    (root / "annotations/key/10089.LOFI.key").write_text("H dorian-ish\n")
    records = {r["id"]: r for r in read_dataset("giantsteps-key", root)[0]}
    assert "not a key" in records["giantsteps-key:10089"]["error"]["message"]


def test_giantsteps_tempo_v2_by_default_and_zero_bpm_left_out():
    records, report = read("giantsteps-tempo", "giantsteps_tempo")
    assert {k: r["labels"] for k, r in records.items()} == {
        "giantsteps-tempo:1011806": {"tempo_bpm": 126.0},
        "giantsteps-tempo:1050527": {"tempo_bpm": 174.0, "genre": "drum-and-bass"},
    }
    assert report.excluded == {"annotated 0 BPM (left out, as LLark does)": 1}
    v1, _ = read("giantsteps-tempo", "giantsteps_tempo", annotations="v1")
    assert v1["giantsteps-tempo:1050527"]["labels"]["tempo_bpm"] == 87.0


def test_gtzan_fault_filtered_split():
    records, report = read("gtzan", "gtzan")
    assert {k: (r["labels"]["genre"], r["split"]) for k, r in records.items()} == {
        "gtzan:blues.00000": ("blues", "train"), "gtzan:blues.00001": ("blues", "valid"),
        "gtzan:rock.00000": ("rock", "train"), "gtzan:rock.00001": ("rock", "test"),
    }
    assert report.excluded == {"not in the fault-filtered split lists": 1}
    everything, _ = read("gtzan", "gtzan", split_lists="none")
    assert len(everything) == 5 and everything["gtzan:hiphop.00000"]["labels"] == {"genre": "hiphop"}
    assert all("split" not in r for r in everything.values())


def test_mtg_jamendo_tags_by_category_and_split_0():
    records, _ = read("mtg-jamendo", "mtg_jamendo")
    assert {k: r["split"] for k, r in records.items()} == {
        "mtg-jamendo:track_0000214": "train", "mtg-jamendo:track_0000215": "train",
        "mtg-jamendo:track_0000216": "valid", "mtg-jamendo:track_0000217": "test",
    }
    assert records["mtg-jamendo:track_0000215"]["labels"] == {
        "duration": 167.0, "genres": ["metal"], "instruments": ["electricguitar", "drums"], "moods": ["energetic"]}
    assert records["mtg-jamendo:track_0000215"]["artist"] == "artist_000014"
    assert Path(records["mtg-jamendo:track_0000217"]["audio"]).name == "217.low.mp3"  # the low-quality copy
    whole, _ = read("mtg-jamendo", "mtg_jamendo", split="none")
    assert len(whole) == 4 and all("split" not in r for r in whole.values())


def test_musiccaps_captions_aspects_and_eval_split():
    records, report = read("musiccaps", "musiccaps")
    assert sorted(records) == ["musiccaps:-0Gj8-vB1q4", "musiccaps:-0SdAVK79lg"]  # the third clip has no audio
    assert report.missing_audio == 1
    first = records["musiccaps:-0Gj8-vB1q4"]
    assert first["split"] == "test" and first["labels"]["caption"].startswith("The low quality recording")
    assert first["labels"]["tags"][:2] == ["low quality", "sustained strings melody"]
    assert first["metadata"]["start_s"] == "30" and "start" not in first
    second = records["musiccaps:-0SdAVK79lg"]
    assert second["split"] == "train" and Path(second["audio"]).name == "[-0SdAVK79lg]-[30-40].wav"
    assert "no voice" in second["labels"]["tags"]


def test_musicqa_pairs_and_split_by_file():
    records, _ = read("musicqa", "musicqa")
    assert sorted(records) == ["musicqa:EvalMusicQA:0", "musicqa:EvalMusicQA:1", "musicqa:EvalMusicQA:2", "musicqa:FinetuneMusicQA:0"]
    assert records["musicqa:EvalMusicQA:2"]["labels"]["qa"] == [
        {"question": "What instrument can you hear in the background?", "answer": "The accordion."}]
    assert records["musicqa:EvalMusicQA:0"]["split"] == "test" and records["musicqa:EvalMusicQA:0"]["track"] == "012542"
    finetune = records["musicqa:FinetuneMusicQA:0"]
    assert finetune["split"] == "train" and len(finetune["labels"]["qa"]) == 2


def test_cmi_bench_task_files():
    records, report = read("cmi-bench", "cmi_bench_tasks")
    assert sorted(records) == ["cmi-bench:EMO_arousal:0", "cmi-bench:GS_key:0", "cmi-bench:GS_key:1",
                               "cmi-bench:GS_key:2", "cmi-bench:MTG_genre:0", "cmi-bench:gtzan_beat:0"]
    key = records["cmi-bench:GS_key:0"]
    assert key["labels"] == {"key": "Eb minor"} and key["split"] == "train" and key["track"] == "0005061"
    assert (key["start"], key["end"]) == (0.0, 30.0) and key["questions"]["key"].startswith("You are given an audio clip")
    assert records["cmi-bench:gtzan_beat:0"]["labels"] == {"beats": [0.38, 0.82, 1.26, 1.7, 2.15]}
    assert records["cmi-bench:MTG_genre:0"]["labels"] == {"genres": ["ambient", "electronic"]}
    assert records["cmi-bench:MTG_genre:0"]["split"] == "valid"
    assert records["cmi-bench:EMO_arousal:0"]["labels"] == {"arousal_z": -0.2568980419200396}
    assert any("Nsynth_pitch" in note for note in report.notes)


def test_unknown_dataset_option_and_missing_layout(tmp_path):
    with pytest.raises(AdapterError, match="unknown dataset"):
        read_dataset("fma", tmp_path)
    with pytest.raises(AdapterError, match="no option colour"):
        read_dataset("gtzan", DATA / "gtzan", {"colour": "red"})
    with pytest.raises(AdapterError, match="static_annotations"):
        list(read_dataset("deam", tmp_path)[0])


@pytest.mark.parametrize("dataset,folder,tasks,expected", [
    ("deam", "deam", "arousal,valence", {"arousal": 4, "valence": 4}),
    ("merge", "merge", "quadrant,arousal_class,valence_class,regression", {"quadrant": 4, "arousal_class": 4, "valence_class": 4, "arousal": 4, "valence": 4}),
    ("giantsteps-key", "giantsteps_key", "key", {"key": 3}),
    ("giantsteps-tempo", "giantsteps_tempo", "tempo,genre", {"tempo": 2, "genre": 1}),
    ("gtzan", "gtzan", "genre", {"genre": 4}),
    ("mtg-jamendo", "mtg_jamendo", "genres,instruments,moods", {"genres": 3, "instruments": 2, "moods": 3}),
    ("musiccaps", "musiccaps", "caption,tags", {"caption": 2, "tags": 2}),
    ("musicqa", "musicqa", "qa", {"qa": 5}),
    ("cmi-bench", "cmi_bench_tasks", "key,beats,genres,regression", {"key": 3, "beats": 1, "genres": 1}),
])
def test_cli_builds_instructions_from_every_fixture(tmp_path, dataset, folder, tasks, expected):
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["build-instructions", "--dataset", dataset, "--root", str(DATA / folder), "--tasks", tasks, "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["task"]] = counts.get(row["task"], 0) + 1
        assert row["source"]["dataset"] == dataset and row["messages"][0]["content"].startswith("<audio>\n")
    assert counts == expected
