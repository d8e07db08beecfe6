"""Splits and the readings issue 9 fixed: eval-mir never scores two splits together nor in-sample
predictions by default, caption/regress --split pass the other splits through, training uses
split 'train' only, parse_ok is per target, predictions name their field, references stay on
their scale, and CMI-Bench's "unparsed = the mean" figure sits beside the parsed-only one."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.evaluation.mir import EvalOptions, MirEvaluator
from mllm.core.infer.captions import caption_records
from mllm.core.infer.probe import fit_probe
from mllm.core.infer.regression import regress_records
from mllm.core.train.sft import split_records

runner = CliRunner()


def write_jsonl(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(path)


def eval_mir(*args, expect=0):
    result = runner.invoke(app, ["eval-mir", *map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.output)
    return result


def key_records():
    # train answers are all right, test answers half wrong: mixing them would say 0.75
    train = [{"id": f"tr{i}", "split": "train", "task": "key", "response": "A minor", "reference": "A minor"}
             for i in range(4)]
    test = [{"id": f"te{i}", "split": "test", "task": "key", "response": "A minor",
             "reference": "A minor" if i % 2 else "D major"} for i in range(4)]
    return train + test


def test_split_option_scores_that_split_alone_and_passes_the_others_through(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", key_records())
    result = eval_mir(source, "--split", "test", "--bootstrap", 0, "--table")
    summary = json.loads(result.stdout)
    assert summary["split"] == "test" and summary["not_scored"]["other_splits"] == {"train": 4}
    assert summary["tasks"]["key"]["n"] == 4 and summary["tasks"]["key"]["split"] == "test"
    assert summary["tasks"]["key"]["metrics"]["accuracy"]["value"] == 0.5
    assert "split test" in result.stderr and "train 4" in result.stderr
    per_item = eval_mir(source, "--split", "test", "--per-item", "--bootstrap", 0).stdout.splitlines()
    out = [orjson.loads(line) for line in per_item]
    assert [r["id"] for r in out] == [r["id"] for r in key_records()]  # records in = records out
    assert ["eval" in r for r in out] == [r["split"] == "test" for r in key_records()]
    missing = eval_mir(source, "--split", "valid", "--bootstrap", 0)
    assert "no record of split 'valid'" in missing.stderr


def test_without_split_every_split_is_scored_apart(tmp_path):
    records = key_records() + [{"id": "ns", "task": "key", "response": "C major", "reference": "C major"}]
    summary = json.loads(eval_mir(write_jsonl(tmp_path / "in.jsonl", records), "--bootstrap", 0).stdout)
    assert set(summary["tasks"]) == {"key [train]", "key [test]", "key [no split]"}
    assert summary["tasks"]["key [train]"]["metrics"]["accuracy"]["value"] == 1.0
    assert summary["tasks"]["key [test]"]["metrics"]["accuracy"]["value"] == 0.5
    assert summary["n_scored_by_split"] == {"train": 4, "test": 4, "no split": 1}


def test_in_sample_predictions_are_left_out_unless_asked(tmp_path):
    records = [{"id": f"a{i}", "split": "train", "task": "arousal", "in_sample": True,
                "prediction": {"arousal": 5.0, "parse_ok": {"arousal": True}}, "reference": 5.0} for i in range(3)]
    records += [{"id": f"b{i}", "split": "test", "task": "arousal",
                 "prediction": {"arousal": 4.0 + i, "parse_ok": {"arousal": True}}, "reference": 5.0 + i} for i in range(3)]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    result = eval_mir(source, "--bootstrap", 0)
    summary = json.loads(result.stdout)
    assert set(summary["tasks"]) == {"arousal"} and summary["tasks"]["arousal"]["split"] == "test"
    assert summary["not_scored"]["in_sample"] == 3 and "in-sample" in result.stderr
    both = json.loads(eval_mir(source, "--bootstrap", 0, "--include-in-sample").stdout)
    assert set(both["tasks"]) == {"arousal [train]", "arousal [test]"}


def test_parse_ok_is_read_per_target():
    evaluator = MirEvaluator(EvalOptions(n_resamples=0))
    record = {"id": "r", "task": "arousal", "reference": 6.0,
              "prediction": {"arousal": 6.0, "valence": None, "parse_ok": {"arousal": True, "valence": False}}}
    scored = evaluator.score(record)
    assert scored["eval"]["parse_ok"] is True and scored["eval"]["scores"]["abs_error"] == 0.0
    old_style = {**record, "id": "o", "prediction": {"arousal": 6.0, "valence": None, "parse_ok": False}}
    assert evaluator.score(old_style)["eval"]["parse_ok"] is True  # a plain false: the targets without a value
    unread = {**record, "id": "u", "task": "valence", "prediction": record["prediction"]}
    assert evaluator.score(unread)["eval"]["parse_ok"] is False


def test_a_structured_prediction_must_name_the_tasks_field():
    evaluator = MirEvaluator(EvalOptions(n_resamples=0))
    out = evaluator.score({"id": "t", "task": "tempo", "reference": 120, "prediction": {"energy": 9}})
    assert out["error"]["stage"] == "eval-mir" and "'prediction'" in out["error"]["message"]
    assert "tempo" in out["error"]["message"]
    named = evaluator.score({"id": "u", "task": "tempo", "reference": 120, "prediction": {"tempo": 120}})
    assert named["eval"]["scores"]["acc1"] == 1.0
    # references keep the one-field form of an instruction record's answer
    assert evaluator.score({"id": "v", "task": "tempo", "answer": {"bpm_of_clip": 120}, "response": "120 BPM"})["eval"]


def test_a_reference_outside_the_declared_scale_is_an_error_record_naming_the_field():
    evaluator = MirEvaluator(EvalOptions(n_resamples=0))
    out = evaluator.score({"id": "x", "task": "arousal", "reference": 42.0, "response": "5"})
    assert "error" in out and "'reference'" in out["error"]["message"] and "1-9" in out["error"]["message"]
    z = MirEvaluator(EvalOptions(n_resamples=0, standardize=frozenset({"arousal"})))
    assert "eval" in z.score({"id": "z", "task": "arousal", "reference": -1.5, "response": "5"})  # z-scores


def test_unparsed_as_mean_is_reported_beside_the_parsed_only_figures(tmp_path):
    truth = [2.0, 4.0, 6.0, 8.0, 5.0]
    answers = ["2", "4", "6", "8", "no idea"]
    records = [{"id": f"r{i}", "split": "test", "task": "arousal", "response": a, "reference": t}
               for i, (a, t) in enumerate(zip(answers, truth))]
    result = eval_mir(write_jsonl(tmp_path / "in.jsonl", records), "--bootstrap", 0, "--table")
    arousal = json.loads(result.stdout)["tasks"]["arousal"]
    assert arousal["n_scored"] == 4 and arousal["metrics"]["mae"]["value"] == 0.0
    # the unparsed answer counted as the mean of the parsed ones (5.0), which is its reference
    imputed = arousal["metrics_unparsed_as_mean"]
    assert imputed["mae"]["value"] == 0.0 and imputed["rmse"]["value"] == 0.0
    records[4]["reference"] = 9.0
    arousal = json.loads(eval_mir(write_jsonl(tmp_path / "in2.jsonl", records), "--bootstrap", 0).stdout)["tasks"]["arousal"]
    assert arousal["metrics"]["mae"]["value"] == 0.0
    assert arousal["metrics_unparsed_as_mean"]["mae"]["value"] == pytest.approx(4.0 / 5)
    assert "unparsed = mean" in result.stderr


def generate_stub(prompts):
    return ["I would assign a 5 on the 1-9 scale."] * len(prompts)


def test_caption_and_regress_split_pass_other_splits_through_untouched():
    records = [{"id": f"r{i}", "split": split, "audio_embedding": np.zeros((2, 4), np.float32)}
               for i, split in enumerate(["train", "test", None, "test"])]
    for record in records:
        if record["split"] is None:
            del record["split"]
    captioned = list(caption_records(records, generate_stub, prompt="Describe it.", split="test"))
    assert [r["id"] for r in captioned] == ["r0", "r1", "r2", "r3"]
    assert ["response" in r for r in captioned] == [False, True, False, True]
    assert captioned[0] is records[0] or captioned[0] == records[0]
    regressed = list(regress_records(records, generate_stub, targets=("arousal",), split="test"))
    assert ["prediction" in r for r in regressed] == [False, True, False, True]


def test_training_uses_split_train_only():
    records = [{"id": "a", "split": "train"}, {"id": "b"}, {"id": "c", "split": "valid"}, {"id": "d", "split": "test"}]
    train, valid = split_records(records)
    assert [r["id"] for r in train] == ["a"] and [r["id"] for r in valid] == ["c"]
    unsplit = [{"id": f"u{i}", "audio_embedding": np.full((2, 3), i, np.float32), "labels": {"arousal": float(i)}}
               for i in range(6)]
    with pytest.raises(ValueError, match="6 records have no `split`"):
        fit_probe(unsplit, ("arousal",))


def test_an_answer_that_repeats_the_questions_examples_is_unparsed():
    question = ("Estimate the arousal score of the given music on a scale from 1 to 9. Example 1: a calm piece, "
                "estimated score: 2. Example 2: a driving rock song, estimated score: 8. Example 3: a mid-tempo "
                "ballad, estimated score: 5.")
    evaluator = MirEvaluator(EvalOptions(n_resamples=0))
    echo = evaluator.score({"id": "e", "task": "arousal", "reference": 4.0, "question": question,
                            "response": "The estimated arousal scores of the examples are 2, 8, and 5, respectively."})
    assert echo["eval"]["parse_ok"] is False
    answer = evaluator.score({"id": "a", "task": "arousal", "reference": 4.0, "question": question,
                              "response": "I would give it a 4."})
    assert answer["eval"]["parse_ok"] is True and answer["eval"]["scores"]["abs_error"] == 0.0
    # the question of an instruction record is its last user turn
    messages = [{"role": "user", "content": question}]
    assert evaluator.score({"id": "m", "task": "arousal", "reference": 4.0, "messages": messages,
                            "response": "2, 8 and 5."})["eval"]["parse_ok"] is False


def test_classification_macro_figures_use_the_declared_label_set(tmp_path):
    from sklearn.metrics import precision_recall_fscore_support

    references, answers = ["rock", "jazz", "rock"], ["metal", "jazz", "rock"]
    records = [{"id": f"g{i}", "task": "genre", "reference": r, "response": f"This is {a}."}
               for i, (r, a) in enumerate(zip(references, answers))]
    result = eval_mir(write_jsonl(tmp_path / "g.jsonl", records), "--labels", "genre=rock,jazz,metal", "--bootstrap", 200)
    genre = json.loads(result.stdout)["tasks"]["genre"]
    precision, recall, f1, _ = precision_recall_fscore_support(references, answers, labels=["rock", "jazz", "metal"],
                                                               average="macro", zero_division=0)
    assert genre["metrics"]["precision_macro"]["value"] == pytest.approx(precision)  # 0.667, not 1.0
    assert genre["metrics"]["recall_macro"]["value"] == pytest.approx(recall)  # 0.5
    assert genre["metrics"]["f1_macro"]["value"] == pytest.approx(f1)  # 0.556
    assert genre["labels"] == ["jazz", "metal", "rock"]
    low, high = genre["metrics"]["f1_macro"]["low"], genre["metrics"]["f1_macro"]["high"]
    assert low <= f1 <= high


def test_sft_refuses_records_without_a_split_and_says_why(tmp_path):
    from mllm.core.train import SFTConfig, setup

    records = [{"id": f"u{i}", "audio_embedding": np.zeros((2, 3), np.float32),
                "messages": [{"role": "user", "content": "<audio>\nKey?"}, {"role": "assistant", "content": "A minor"}]}
               for i in range(3)]
    with pytest.raises(ValueError, match="3 records have no `split`"):
        setup(SFTConfig(llm="unused", steps=1, output=str(tmp_path / "ckpt"), device="cpu"), records)
