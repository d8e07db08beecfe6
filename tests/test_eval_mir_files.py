"""`mllm eval-mir FILE... | FOLDER`: CMI-Bench's released layout (`<model>_<TASK>.jsonl`) scored
into one leaderboard, task names in any case, and the warnings a benchmark's files deserve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.evaluation.cmi_bench import resolve_task, split_file_name, task_from_file_name

DATA = Path(__file__).parent / "data" / "cmi_bench"
runner = CliRunner()


def eval_mir(*args, expect=0):
    result = runner.invoke(app, ["eval-mir", *map(str, args), "--bootstrap", "50"])
    assert result.exit_code == expect, (result.exit_code, result.output)
    return result


def results_folder(tmp_path: Path) -> Path:
    """Two models' files as CMI-Bench names them (one in another case), plus a captioning file."""
    folder = tmp_path / "results"
    folder.mkdir()
    for name in ("GS_key", "GTZAN", "EMO_arousal", "MusicCaps"):
        shutil.copy(DATA / f"testmodel_{name}.jsonl", folder / f"qwen2_{name}.jsonl")
    items = orjson.loads((DATA / "testmodel_GS_key.jsonl").read_bytes())
    for item in items:
        item["response"] = f"The key is {item['correct_answer']}."  # always right
    (folder / "salmonn_gs_KEY.jsonl").write_bytes(orjson.dumps(items[:6]))  # fewer items than qwen2's
    return folder


def test_file_names_in_any_case():
    assert task_from_file_name("qwen2_gs_key.jsonl") == "GS_key"
    assert split_file_name("Salmonn-7B_MTG_TOP50TAGS.JSON") == ("Salmonn-7B", "MTG_top50tags")
    assert resolve_task("x.jsonl", "emo_valence") == ("valence", True)


def test_a_folder_is_one_leaderboard(tmp_path, monkeypatch):
    from mllm.cli import common

    monkeypatch.setattr(common.console, "_width", 200)  # the table's rows on one line each
    folder = results_folder(tmp_path)
    result = eval_mir(folder, "--table")
    summary = json.loads(result.stdout)
    by_file = {Path(entry["input"]).name: entry for entry in summary["files"]}
    assert set(by_file) == {"qwen2_GS_key.jsonl", "qwen2_GTZAN.jsonl", "qwen2_EMO_arousal.jsonl", "salmonn_gs_KEY.jsonl"}
    assert by_file["salmonn_gs_KEY.jsonl"]["model"] == "salmonn"
    assert by_file["salmonn_gs_KEY.jsonl"]["tasks"]["key"]["metrics"]["weighted_score"]["value"] == 1.0
    single = json.loads(eval_mir(folder / "qwen2_GS_key.jsonl").stdout)
    assert by_file["qwen2_GS_key.jsonl"]["tasks"] == single["tasks"]  # the same figures as alone
    assert [Path(s["input"]).name for s in summary["skipped_files"]] == ["qwen2_MusicCaps.jsonl"]
    assert "eval-caption" in summary["skipped_files"][0]["reason"]
    # the table: one row per file, the best first within a task
    lines = [line for line in result.stderr.splitlines() if "weighted_score" in line]
    assert len(lines) == 2 and "salmonn" in lines[0] and "qwen2" in lines[1]
    assert "different numbers of items" in result.stderr and "salmonn_gs_KEY.jsonl 6" in result.stderr


def test_several_files_and_their_limits(tmp_path):
    folder = results_folder(tmp_path)
    files = [folder / "qwen2_GS_key.jsonl", folder / "qwen2_GTZAN.jsonl"]
    summary = json.loads(eval_mir(*files).stdout)
    assert [entry["cmi_bench_task"] for entry in summary["files"]] == ["key", "genre"]
    assert "takes one input" in eval_mir(*files, "--per-item", expect=2).output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "without result files" in eval_mir(empty, expect=2).output


def test_a_file_whose_questions_ask_another_task_is_flagged(tmp_path):
    items = orjson.loads((DATA / "testmodel_EMO_arousal.jsonl").read_bytes())
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "m_EMO_valence.jsonl").write_bytes(orjson.dumps(items))  # the arousal question, as released
    (folder / "m_EMO_arousal.jsonl").write_bytes(orjson.dumps(items))
    result = eval_mir(folder)
    assert "m_EMO_valence.jsonl: its questions ask about arousal, not valence" in result.stderr
    assert "m_EMO_arousal.jsonl: its questions" not in result.stderr
    summary = json.loads(result.stdout)
    assert [bool(entry.get("warnings")) for entry in summary["files"]] == [False, True]


def test_an_unknown_task_is_refused_before_reading():
    result = eval_mir(DATA / "testmodel_GS_key.jsonl", "--task", "GS_kee", expect=2)
    assert "unknown task" in result.output
    assert eval_mir(DATA / "testmodel_GS_key.jsonl", "--task", "gs_key").exit_code == 0


def test_model_and_task_names_keep_their_brackets_in_the_table(tmp_path, monkeypatch):
    from mllm.cli import common

    monkeypatch.setattr(common.console, "_width", 200)
    folder = tmp_path / "results"
    folder.mkdir()
    shutil.copy(DATA / "testmodel_GS_key.jsonl", folder / "salmonn[7b]_GS_key.jsonl")
    shutil.copy(DATA / "testmodel_GS_key.jsonl", folder / "qwen[bold]_GS_key.jsonl")
    result = eval_mir(folder, "--table")
    rows = [line for line in result.stderr.splitlines() if "weighted_score" in line]
    assert any("salmonn[7b]" in row for row in rows) and any("qwen[bold]" in row for row in rows)


def test_the_label_pass_is_made_only_when_a_task_needs_it():
    """A key or numeric file is read once; a classification task without --labels triggers the pass
    that collects its reference labels, when its first record comes up, and the records scored
    before it keep their scores (their tasks need no label set)."""
    from mllm.core.evaluation.inputs import ResultInput
    from mllm.core.evaluation.mir_files import evaluate
    from mllm.core.evaluation.options import EvalOptions

    key = [{"id": f"k{i}", "task": "key", "reference": "C major", "response": r}
           for i, r in enumerate(["C major", "G major", "A minor", "no idea"])]
    genre = [{"id": f"g{i}", "task": "genre", "reference": ref, "response": f"It is {answer}."}
             for i, (ref, answer) in enumerate([("rock", "rock"), ("jazz", "rock"), ("pop", "pop"), ("metal", "jazz")])]

    def run(records):
        passes = []

        def reader():
            passes.append(1)
            return iter([dict(r) for r in records])

        written = []
        summary = evaluate(ResultInput("mem", reader, False), EvalOptions(n_resamples=0), write=written.append)
        return len(passes), summary, written

    n_passes, summary, _ = run(key)
    assert n_passes == 1
    assert summary["tasks"]["key"]["metrics"]["accuracy"]["value"] == 0.25

    n_passes, summary, written = run(key + genre)
    assert n_passes == 2  # the scoring pass, and the label pass started by g0
    genre_summary = summary["tasks"]["genre"]
    assert genre_summary["n"] == 4 and genre_summary["metrics"]["accuracy"]["value"] == 0.5
    assert [w["eval"]["scores"] for w in written[:4]] == [w["eval"]["scores"] for w in run(key)[2]]
    # the label set is every reference label, as one first pass gives it: "jazz" is a label (g1's
    # reference), so the answer "jazz" to g3 is read (wrong), not unparsed
    assert written[7]["eval"]["parse_ok"] is True and written[7]["prediction"]["genre"] == "jazz"


def test_key_tempo_label_and_numeric_files_do_not_import_scipy_stats_mir_eval_or_sklearn(tmp_path):
    # eval-mir's start-up: the kinds import mir_eval (and with it scipy.stats, ~1 s) only for
    # the tasks that score with it (beats, chords); the key metric, the label statistics, the
    # bootstrap and Clopper-Pearson need none of them, nor numba for a small regression sample
    import subprocess
    import sys

    records = [{"id": f"t{i}", "task": "tempo", "response": f"{100 + i} BPM", "reference": 100.0} for i in range(30)]
    records += [{"id": f"a{i}", "task": "arousal", "response": f"I rate it {1 + i % 9}", "reference": 5.0} for i in range(30)]
    records += [{"id": f"k{i}", "task": "key", "response": "It is in A minor", "reference": "C major"} for i in range(10)]
    genres = ["rock", "jazz", "blues"]
    records += [{"id": f"g{i}", "task": "genre", "response": f"Sounds like {genres[i % 3]}", "reference": genres[i % 2]}
                for i in range(12)]
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    probe = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from mllm.cli.main import app\n"
        f"result = CliRunner().invoke(app, ['eval-mir', {str(path)!r}, '--bootstrap', '200'])\n"
        "summary = json.loads(result.stdout)\n"
        "print(json.dumps([result.exit_code, sorted(summary['tasks']),"
        " [m for m in ('scipy.stats', 'mir_eval', 'sklearn', 'nltk', 'numba') if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    exit_code, tasks, imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert exit_code == 0 and tasks == ["arousal", "genre", "key", "tempo"]
    assert imported == []
