"""`mllm eval-reward` end to end on the fixtures of tests/data/reward: pairs, MOS records, CMI-RewardBench
result files (rescored to the numbers their evaluator gives), MOS tables, splits, --by, --compare,
--per-item, error records."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import orjson
import pytest
import scipy.stats
from typer.testing import CliRunner

from mllm.cli.eval_reward import command
from mllm.cli.main import app
from mllm.core.io.records import read_records

DATA = Path(__file__).parent / "data" / "reward"
runner = CliRunner()


def invoke(*args, expect=0):
    result = runner.invoke(app, ["eval-reward", *map(str, args), "--bootstrap", "200"])
    assert result.exit_code == expect, (result.exit_code, result.output)
    return result


def summary(*args, expect=0) -> dict:
    return json.loads(invoke(*args, expect=expect).stdout)


def rows(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def write_jsonl(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


# -- the rule, written out again from CMI-RewardBench's evaluate_results.py (not mllm's code)

THEIR_LABEL = {"a": "model_a", "b": "model_b", "model_a": "model_a", "model_b": "model_b", "both": "both", "neither": "both"}


def their_credit(truth, predicted):
    truth, predicted = THEIR_LABEL[truth.strip().lower()], THEIR_LABEL[predicted.strip().lower()]
    if truth == predicted:
        return 1.0
    return 0.5 if "both" in (truth, predicted) else 0.0


def their_accuracy(pairs):
    return sum(their_credit(t, p) for t, p in pairs) / len(pairs)


# -- pairs


def by_hand(records, axis, margin=0.0):
    """(accuracy, decided accuracy) of the fixture's pairs on `axis`, from the labels and scores."""
    credits, decided = [], []
    for r in records:
        if axis not in r["preference"]:
            continue
        human = r["preference"][axis]
        if "reward" in r:
            d = r["reward"][axis] - r["reward_b"][axis]
            model = "a" if d > margin else "b" if d < -margin else "both"
        else:
            model = r["predicted_preference"][axis]
        credits.append(their_credit(human, model))
        if THEIR_LABEL[human] != "both":
            decided.append(credits[-1])
    return sum(credits) / len(credits), sum(decided) / len(decided)


def test_pairs_give_preference_accuracy_with_ties_counted_half():
    test = [r for r in rows("pairs.jsonl") if r["split"] == "test"]
    result = summary(DATA / "pairs.jsonl", "--split", "test")
    assert result["split"] == "test" and result["n_scored_by_split"] == {"test": 10}
    assert result["not_scored"]["other_splits"] == {"train": 2}
    for axis in ("musicality", "alignment"):
        task = result["tasks"][f"preference/{axis}"]
        accuracy, decided = by_hand(test, axis)
        assert task["n"] == 10
        assert task["metrics"]["accuracy"]["value"] == pytest.approx(accuracy)
        assert task["metrics"]["decided_accuracy"]["value"] == pytest.approx(decided)
        entry = task["metrics"]["accuracy"]
        assert entry["low"] <= entry["value"] <= entry["high"]
    assert result["tasks"]["preference/musicality"]["n_human_ties"] == 1  # p09 "both"
    assert result["tasks"]["preference/alignment"]["n_human_ties"] == 2  # p08 "both", p10 "neither"
    assert result["tasks"]["preference/musicality"]["n_model_ties"] == 2  # p05, p09: equal scores
    assert result["tasks"]["preference/musicality"]["decided_by"] == {"reward": 9, "predicted_preference": 1}


def test_the_tie_margin_turns_close_scores_into_ties():
    test = [r for r in rows("pairs.jsonl") if r["split"] == "test"]
    result = summary(DATA / "pairs.jsonl", "--split", "test", "--tie-margin", "0.06")
    for axis in ("musicality", "alignment"):
        assert result["tasks"][f"preference/{axis}"]["metrics"]["accuracy"]["value"] == \
            pytest.approx(by_hand(test, axis, margin=0.06)[0])
    assert result["tasks"]["preference/alignment"]["n_model_ties"] > \
        summary(DATA / "pairs.jsonl", "--split", "test")["tasks"]["preference/alignment"]["n_model_ties"]


def test_breakdowns_by_confidence_modality_and_duration_bins():
    test = [r for r in rows("pairs.jsonl") if r["split"] == "test"]
    result = summary(DATA / "pairs.jsonl", "--split", "test", "--by", "confidence", "--by", "duration", "--by", "modality")
    by = result["tasks"]["preference/musicality"]["by"]
    assert list(by["confidence"]) == ["1", "2", "3", "4", "5"]
    for value, group in by["confidence"].items():
        members = [r for r in test if str(r["confidence"]) == value]
        assert group["n"] == len(members)
        assert group["metrics"]["accuracy"]["value"] == pytest.approx(by_hand(members, "musicality")[0])
    # duration: the mean of both clips, in CMI-RewardBench's bins
    def bin_of(r):
        d = (r["duration"] + r["duration_b"]) / 2
        return "[10,30)" if d < 30 else "[30,60)" if d < 60 else "[60,120)" if d < 120 else "[120,500]"
    assert list(by["duration"]) == ["[10,30)", "[30,60)", "[60,120)", "[120,500]"]
    for value, group in by["duration"].items():
        assert group["n"] == sum(bin_of(r) == value for r in test)
    assert sum(g["n"] for g in by["modality"].values()) == 10
    custom = summary(DATA / "pairs.jsonl", "--split", "test", "--by", "confidence", "--bins", "confidence=1,3,4,5")
    assert list(custom["tasks"]["preference/musicality"]["by"]["confidence"]) == ["[1,3)", "[3,4)", "[4,5]"]


def test_without_split_every_split_is_scored_apart():
    result = summary(DATA / "pairs.jsonl")
    assert set(result["tasks"]) == {"preference/musicality [test]", "preference/musicality [train]",
                                    "preference/alignment [test]", "preference/alignment [train]"}
    train = [r for r in rows("pairs.jsonl") if r["split"] == "train"]
    assert result["tasks"]["preference/alignment [train]"]["metrics"]["accuracy"]["value"] == \
        pytest.approx(by_hand(train, "alignment")[0])
    nothing = invoke(DATA / "pairs.jsonl", "--split", "valid")
    assert json.loads(nothing.stdout)["tasks"] == {}
    assert "no record of split 'valid' was scored" in nothing.stderr


def test_per_item_writes_every_record_with_its_scores(tmp_path):
    out = tmp_path / "scored.jsonl"
    invoke(DATA / "pairs.jsonl", "--split", "test", "--per-item", "-o", out)
    scored = list(read_records(out))
    assert [r["id"] for r in scored] == [r["id"] for r in rows("pairs.jsonl")]  # records in = records out
    p05 = next(r for r in scored if r["id"] == "p05")
    assert p05["eval"]["scores"]["musicality"] == {"human": "a", "model": "tie", "decided_by": "reward",
                                                   "difference": 0.0, "credit": 0.5}
    assert "eval" not in next(r for r in scored if r["id"] == "p11")  # train: passed through unscored
    invoke(DATA / "pairs.jsonl", "--per-item", "-o", out, expect=2)  # an existing output is refused


def test_compare_is_a_paired_bootstrap_on_the_same_pairs():
    result = summary(DATA / "pairs.jsonl", "--split", "test", "--compare", DATA / "pairs_other.jsonl")
    other = [r for r in rows("pairs_other.jsonl") if r["split"] == "test"]
    mine = [r for r in rows("pairs.jsonl") if r["split"] == "test"]
    for axis in ("musicality", "alignment"):
        test = result["comparison"]["tasks"][f"preference/{axis}"]
        assert test["n_paired"] == 10
        a, b = by_hand(mine, axis)[0], by_hand(other, axis)[0]
        assert test["metrics"]["accuracy"]["a"] == pytest.approx(a)
        assert test["metrics"]["accuracy"]["b"] == pytest.approx(b)
        assert test["metrics"]["accuracy"]["difference"] == pytest.approx(a - b)
        assert 0 <= test["metrics"]["accuracy"]["p_value"] <= 1
    same = summary(DATA / "pairs.jsonl", "--split", "test", "--compare", DATA / "pairs.jsonl")
    assert same["comparison"]["tasks"]["preference/alignment"]["metrics"]["accuracy"]["p_value"] == 1.0


def test_compare_leaves_out_ids_met_twice_instead_of_pairing_them_wrong(tmp_path):
    mine = [r for r in rows("pairs.jsonl") if r["split"] == "test"]
    other = [r for r in rows("pairs_other.jsonl") if r["split"] == "test"]
    twice = mine + [dict(mine[0], reward=mine[0]["reward_b"], reward_b=mine[0]["reward"])]  # p01 again, swapped
    result = summary(write_jsonl(tmp_path / "a.jsonl", twice), "--compare", write_jsonl(tmp_path / "b.jsonl", other))
    test = result["comparison"]["tasks"]["preference/musicality"]
    assert test["n_paired"] == 9 and test["n_repeated_ids"] == 1
    rest_mine, rest_other = [r for r in mine if r["id"] != mine[0]["id"]], [r for r in other if r["id"] != mine[0]["id"]]
    assert test["metrics"]["accuracy"]["a"] == pytest.approx(by_hand(rest_mine, "musicality")[0])
    assert test["metrics"]["accuracy"]["b"] == pytest.approx(by_hand(rest_other, "musicality")[0])


# -- MOS records


def test_mos_records_give_per_clip_and_per_system_correlations():
    records = rows("mos.jsonl")
    result = summary(DATA / "mos.jsonl")
    task = result["tasks"]["mos/musicality"]
    mos = [r["mos"]["musicality"] for r in records]
    score = [r["reward"]["musicality"] for r in records]
    assert task["metrics"]["lcc"]["value"] == pytest.approx(scipy.stats.pearsonr(mos, score).statistic)
    assert task["metrics"]["srcc"]["value"] == pytest.approx(scipy.stats.spearmanr(mos, score).statistic)
    assert task["metrics"]["kendall_tau"]["value"] == pytest.approx(scipy.stats.kendalltau(mos, score).statistic)
    assert task["metrics"]["mse"]["value"] == pytest.approx(sum((s - m) ** 2 for m, s in zip(mos, score)) / 12)
    systems = sorted({r["system"] for r in records})
    mean = lambda values, s: sum(v for v, r in zip(values, records) if r["system"] == s) / 3  # noqa: E731
    per_system = ([mean(mos, s) for s in systems], [mean(score, s) for s in systems])
    assert task["n_systems"] == 4
    assert task["metrics_per_system"]["lcc"]["value"] == pytest.approx(scipy.stats.pearsonr(*per_system).statistic)
    assert task["metrics_per_system"]["srcc"]["value"] == pytest.approx(1.0)  # the fixture's systems rank right
    # noise-3 has an alignment MOS and no alignment score: counted, not scored
    assert result["tasks"]["mos/alignment"]["n"] == 11
    assert result["not_scored"]["axes_without_model_score"] == {"mos/alignment": 1}


def test_build_pairs_style_records_are_read_too(tmp_path):
    """Opinion scores under the axes' own names and a plain-string preference with its `axis`, as
    `mllm build-pairs` writes them."""
    records = [
        {"id": f"c{i}", "audio": f"{i}.wav", "system": f"level-{i % 3}", "musicality": 5.0 - i % 3,
         "reward": {"musicality": 0.1 * (5 - i % 3) + 0.01 * i, "alignment": 0.3}} for i in range(9)
    ] + [
        {"id": "p1", "audio": "x.wav", "audio_b": "y.wav", "axis": "alignment", "preference": "b",
         "reward": {"alignment": 0.2, "musicality": 0.9}, "reward_b": {"alignment": 0.7, "musicality": 0.1}},
        {"id": "p2", "audio": "x.wav", "audio_b": "y.wav", "axis": "musicality", "preference": "b",
         "reward": {"alignment": 0.2, "musicality": 0.9}, "reward_b": {"alignment": 0.7, "musicality": 0.1}},
    ]
    result = summary(write_jsonl(tmp_path / "r.jsonl", records))
    assert result["tasks"]["mos/musicality"]["n"] == 9
    assert result["tasks"]["mos/musicality"]["metrics_per_system"]["srcc"]["value"] == pytest.approx(1.0)
    assert result["tasks"]["preference/alignment"]["metrics"]["accuracy"]["value"] == 1.0
    assert result["tasks"]["preference/musicality"]["metrics"]["accuracy"]["value"] == 0.0


def test_compare_on_mos_pairs_clips_and_systems(tmp_path):
    records = rows("mos.jsonl")
    flat = [dict(r, reward={axis: 0.5 for axis in r["reward"]} | {"musicality": r["reward"]["musicality"] * -1})
            for r in records]
    other = write_jsonl(tmp_path / "other.jsonl", flat)
    result = summary(DATA / "mos.jsonl", "--compare", other)
    test = result["comparison"]["tasks"]["mos/musicality"]
    assert test["n_paired"] == 12
    assert test["metrics"]["lcc"]["difference"] == pytest.approx(2 * result["tasks"]["mos/musicality"]["metrics"]["lcc"]["value"])
    assert test["metrics_per_system"]["srcc"]["a"] == pytest.approx(1.0)
    assert test["metrics_per_system"]["srcc"]["b"] == pytest.approx(-1.0)


# -- bad records


def test_bad_fields_make_error_records_naming_the_record_and_the_field(tmp_path):
    good = rows("pairs.jsonl")[0]
    bad = [
        dict(good, id="bad-label", preference={"musicality": "tie"}),
        dict(good, id="bad-score", reward={"musicality": "high", "alignment": 0.1}),
        dict(good, id="no-b", reward_b=None),
        {k: v for k, v in good.items() if k != "audio_b"} | {"id": "no-audio-b"},
        dict(good, id="axes-differ", reward_b={"musicality": 0.2}),
        {"id": "mos-no-reward", "audio": "x.wav", "mos": {"musicality": 3.0}},
        {"id": "mos-bool", "audio": "x.wav", "mos": {"musicality": True}, "reward": {"musicality": 0.2}},
        {"id": "bad-axis", "audio": "x.wav", "audio_b": "y.wav", "axis": 3, "preference": "a",
         "reward": {"musicality": 0.2}, "reward_b": {"musicality": 0.1}},
        dict(good, id="fine"),
    ]
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, bad)
    out = tmp_path / "scored.jsonl"
    result = invoke(path, "--per-item", "-o", out, expect=1)
    scored = {r["id"]: r for r in read_records(out)}
    assert len(scored) == len(bad)
    expected = {"bad-label": "preference.musicality", "bad-score": "reward.musicality", "no-b": "reward_b",
                "no-audio-b": "audio_b", "axes-differ": "reward_b", "mos-no-reward": "reward", "mos-bool": "mos.musicality",
                "bad-axis": "axis"}
    for record_id, field_name in expected.items():
        error = scored[record_id]["error"]
        assert error["stage"] == "eval-reward" and field_name in error["message"], (record_id, error)
    assert "eval" in scored["fine"] and "error" not in scored["fine"]
    assert "bad-label: eval-reward" in result.stderr  # the summary on stderr names the record
    assert "give eval-reward the same --split" in scored["mos-no-reward"]["error"]["message"]
    invoke(path, "--allow-errors", expect=0)


def test_bad_options_exit_2():
    invoke(DATA / "pairs.jsonl", "--tie-margin", "-1", expect=2)
    invoke(DATA / "pairs.jsonl", "--bins", "duration=30,10", expect=2)
    invoke(DATA / "pairs.jsonl", "--input-format", "csv", expect=2)
    invoke(DATA / "pairs.jsonl", "--predictions", DATA / "mos_predicted.csv", expect=2)
    invoke(DATA / "pairs.jsonl", "--per-item", "--compare", DATA / "pairs_other.jsonl", expect=2)
    invoke(DATA / "no-such-file.jsonl", expect=2)


def test_the_summary_is_never_written_as_parquet(tmp_path):
    """A JSON summary in a file named .parquet would look like Parquet and fail to read as it."""
    refused = invoke(DATA / "pairs.jsonl", "-o", tmp_path / "summary.parquet", expect=2)
    assert "--per-item" in refused.stderr and not (tmp_path / "summary.parquet").exists()
    invoke(DATA / "pairs.jsonl", "--format", "parquet", expect=2)
    invoke(DATA / "pairs.jsonl", "--per-item", "-o", tmp_path / "scored.parquet")
    assert [r["id"] for r in read_records(tmp_path / "scored.parquet")] == [r["id"] for r in rows("pairs.jsonl")]


# -- CMI-RewardBench's result files and MOS tables


def test_rescoring_a_cmi_rewardbench_results_file_gives_their_numbers():
    """Their evaluate_results.py, with its default config (split test, LCC and K-Tau included):
    PAM/MusicEval SRCC/LCC/K-Tau of predicted_* against the MOS (pandas' corr = scipy's), Music Arena
    accuracy of the musicality difference against `preference`, CMI-Pref accuracy of the
    predicted_preference-* labels; ties 0.5 (THEIR_LABEL, their_credit above)."""
    test = [r for r in rows("results.jsonl") if r["split"] == "test"]
    result = summary(DATA / "results.jsonl", "--split", "test")
    tasks = result["tasks"]
    for dataset, axis, truth, predicted in [("PAM", "musicality", "musicality", "predicted_musicality"),
                                            ("PAM", "alignment", "text-music alignment", "predicted_text-music alignment"),
                                            ("MusicEval", "musicality", "musicality", "predicted_musicality")]:
        items = [r for r in test if (r["source"] == "MusicEval") == (dataset == "MusicEval")
                 and "audio2" not in r]
        x, y = [r[truth] for r in items if truth in r], [r[predicted] for r in items if truth in r]
        metrics = tasks[f"{dataset}/mos/{axis}"]["metrics"]
        assert tasks[f"{dataset}/mos/{axis}"]["n"] == len(x)
        assert metrics["srcc"]["value"] == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
        assert metrics["lcc"]["value"] == pytest.approx(scipy.stats.pearsonr(x, y).statistic)
        assert metrics["kendall_tau"]["value"] == pytest.approx(scipy.stats.kendalltau(x, y).statistic)
    arena = [r for r in test if r["source"] == "Music Arena"]
    arena_pairs = [(r["preference"], "model_b" if r["predicted_musicality_b"] > r["predicted_musicality"] else "model_a")
                   for r in arena]
    assert tasks["MusicArena/preference/musicality"]["metrics"]["accuracy"]["value"] == pytest.approx(their_accuracy(arena_pairs))
    cmi = [r for r in test if r["source"] == "cmi-arena-annotation"]
    for axis in ("musicality", "alignment"):
        pairs = [(r[f"preference-{axis}"], r[f"predicted_preference-{axis}"]) for r in cmi]
        task = tasks[f"CMI-Pref/preference/{axis}"]
        assert task["n"] == len(cmi) == 5
        assert task["metrics"]["accuracy"]["value"] == pytest.approx(their_accuracy(pairs))
    # the confidence breakdown reads confidence_preference-<axis> per axis
    by = summary(DATA / "results.jsonl", "--split", "test", "--by", "confidence")["tasks"]
    groups = by["CMI-Pref/preference/alignment"]["by"]["confidence"]
    assert {value: g["n"] for value, g in groups.items()} == \
        {str(r["confidence_preference-alignment"]): 1 for r in sorted(cmi, key=lambda r: r["confidence_preference-alignment"])}
    five = [(r["preference-alignment"], r["predicted_preference-alignment"]) for r in cmi if r["confidence_preference-alignment"] == 5]
    assert groups["5"]["metrics"]["accuracy"]["value"] == their_accuracy(five)


def test_a_judges_labels_are_scored_with_their_ties():
    judge = rows("results_judge.jsonl")
    tasks = summary(DATA / "results_judge.jsonl")["tasks"]
    for axis in ("musicality", "alignment"):
        pairs = [(r[f"preference-{axis}"], r[f"predicted_preference-{axis}"]) for r in judge]
        task = tasks[f"CMI-Pref/preference/{axis}"]
        assert task["metrics"]["accuracy"]["value"] == pytest.approx(their_accuracy(pairs))
        assert task["decided_by"] == {"predicted_preference": len(judge)}


def test_a_mos_table_with_a_table_of_predictions():
    truth = [line.split(",") for line in (DATA / "mos.csv").read_text().splitlines()[1:]]
    predicted = {line.split(",")[0]: line.split(",")[1:] for line in (DATA / "mos_predicted.csv").read_text().splitlines()}
    result = summary(DATA / "mos.csv", "--predictions", DATA / "mos_predicted.csv")
    for axis, column in (("musicality", 2), ("alignment", 3)):
        x = [float(row[column]) for row in truth]
        y = [float(predicted[row[1]][column - 2]) for row in truth]
        task = result["tasks"][f"mos/{axis}"]
        assert task["metrics"]["srcc"]["value"] == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
        systems = sorted({row[0] for row in truth})
        mean = lambda values, s: sum(v for v, row in zip(values, truth) if row[0] == s) / 3  # noqa: E731
        sx, sy = [mean(x, s) for s in systems], [mean(y, s) for s in systems]
        assert task["n_systems"] == 4
        assert task["metrics_per_system"]["lcc"]["value"] == pytest.approx(scipy.stats.pearsonr(sx, sy).statistic)
    # without predictions every clip lacks the model's score: error records naming `reward`
    no_scores = invoke(DATA / "mos.csv", expect=1)
    assert "no field 'reward'" in no_scores.stderr


def test_a_headerless_answer_list_is_read_with_systems_from_the_file_names(tmp_path):
    shutil.copy(DATA / "mos_predicted.csv", tmp_path / "answer.txt")
    records = list(read_records_of_table(tmp_path / "answer.txt"))
    assert records[0]["system"] == "S001" and records[0]["mos"] == {"musicality": 3.2, "alignment": 3.1}


def read_records_of_table(path):
    from mllm.core.reward_model.released import read_mos_table

    return read_mos_table(path)


def test_stdin_is_read_and_detected():
    text = (DATA / "results_judge.jsonl").read_text()
    result = runner.invoke(app, ["eval-reward", "--bootstrap", "0"], input=text)
    assert result.exit_code == 0, result.output
    assert "CMI-Pref/preference/musicality" in json.loads(result.stdout)["tasks"]


def test_the_help_examples_run_on_the_fixtures(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    examples = [line.strip() for line in command.__doc__.splitlines() if line.strip().startswith("mllm eval-reward")]
    assert len(examples) >= 4
    for line in examples:
        args = shlex.split(line)[2:]
        args = [str(tmp_path / a) if a.endswith("scored.jsonl") else a for a in args]
        result = runner.invoke(app, ["eval-reward", *args, "--bootstrap", "50"])
        assert result.exit_code == 0, (line, result.output)
        if "--table" in args:
            assert "eval-reward" in result.stderr
