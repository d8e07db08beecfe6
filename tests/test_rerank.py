"""`mllm rerank` (core/infer/rerank.py): the best sample per id by any numeric field, --keep-all
ranks, --lowest, deterministic ties, error records and missing fields, records in and out, and the
pipe caption --samples | score --reward task | rerank | eval-mir on a tiny checkpoint."""

from __future__ import annotations

import json

import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.infer.rerank import field_value, rerank_records
from mllm.core.io.errors import RecordError, StreamSummary

runner = CliRunner()


def invoke(*args, input=None, expect=0):
    result = runner.invoke(app, [*map(str, args)], input=input)
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def rows(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def samples(key: str, totals: list, **extra) -> list[dict]:
    return [{"id": key, "sample": k, "response": f"{key}-{k}", "reward": {"total": t}, **extra}
            for k, t in enumerate(totals)]


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_best_per_id_by_a_nested_field():
    records = samples("a", [0.2, 0.9, 0.5]) + samples("b", [0.1, 0.0])
    summary = StreamSummary("rerank")
    best = list(rerank_records(records, "reward.total", summary=summary))
    assert [(r["id"], r["sample"]) for r in best] == [("a", 1), ("b", 0)]
    assert best[0]["rank"] == 1 and best[0]["rerank"] == {"by": "reward.total", "best": "highest", "of": 3}
    assert best[0]["response"] == "a-1"  # every other field kept
    assert (summary.records_in, summary.records_out, summary.failed) == (5, 2, 0)
    lowest = list(rerank_records(records, "reward.total", lowest=True))
    assert [(r["id"], r["sample"]) for r in lowest] == [("a", 0), ("b", 1)]
    assert lowest[0]["rerank"]["best"] == "lowest"


def test_keep_all_ranks_every_sample_best_first():
    records = samples("a", [0.2, 0.9, 0.5]) + samples("b", [3])
    ranked = list(rerank_records(records, "reward.total", keep_all=True))
    assert [(r["id"], r["sample"], r["rank"]) for r in ranked] == [("a", 1, 1), ("a", 2, 2), ("a", 0, 3), ("b", 0, 1)]
    assert all(r["rerank"]["of"] == (3 if r["id"] == "a" else 1) for r in ranked)


def test_ties_go_to_the_smaller_sample_index_whatever_the_order():
    records = [{"id": "a", "sample": 2, "logprob": -1.0}, {"id": "a", "sample": 0, "logprob": -3.0},
               {"id": "a", "sample": 1, "logprob": -1.0}]
    assert next(rerank_records(records, "logprob"))["sample"] == 1
    assert [r["sample"] for r in rerank_records(records, "logprob", keep_all=True)] == [1, 2, 0]
    plain = [{"id": "x", "score": 1, "n": i} for i in range(3)]  # no `sample`: the earlier record
    assert next(rerank_records(plain, "score"))["n"] == 0
    assert next(rerank_records(plain, "score", lowest=True))["n"] == 0


@pytest.mark.parametrize("value, message", [
    (None, "NoneType None, not a number"), ("0.5", "str '0.5', not a number"), (True, "bool True, not a number"),
    (float("nan"), "is NaN"), ({"x": 1}, "dict"),
])
def test_field_value_refuses_what_is_not_a_number(value, message):
    with pytest.raises(RecordError, match=message) as caught:
        field_value({"id": "a", "sample": 3, "reward": {"total": value}}, "reward.total")
    assert caught.value.field == "reward.total"
    assert "record 'a' (sample 3)" in str(caught.value)
    with pytest.raises(RecordError, match="has no field 'reward.total'"):
        field_value({"id": "a", "reward": 0.5}, "reward.total")
    assert field_value({"id": "a", "logprob": -2}, "logprob") == -2.0
    with pytest.raises(RecordError, match="split 'train', not sampled: rank one split with --split"):
        field_value({"id": "a", "split": "train"}, "logprob_mean")  # passed through by caption --samples --split test


def test_missing_field_and_error_records():
    upstream = {"id": "b", "sample": 1, "error": {"stage": "score", "type": "RecordError", "message": "no response"}}
    records = (samples("a", [0.2, 0.9]) + [{"id": "a", "sample": 2, "response": "x"}]
               + samples("b", [0.4]) + [upstream] + samples("c", [0.3]))
    summary = StreamSummary("rerank")
    best = list(rerank_records(records, "reward.total", summary=summary))
    assert [r["id"] for r in best] == ["a", "b", "c"]
    assert best[0]["error"]["stage"] == "rerank" and best[0]["sample"] == 2  # the sample at fault, named
    assert "reward.total" in best[0]["error"]["message"] and "sample 2" in best[0]["error"]["message"]
    assert best[1] == upstream  # passed through untouched, not hidden behind the best of the rest
    assert "rank" in best[2] and "error" not in best[2]
    assert (summary.records_in, summary.records_out, summary.failed_here, summary.failed_before) == (6, 3, 1, 1)
    every = list(rerank_records(records, "reward.total", keep_all=True))
    assert len(every) == len(records)
    assert [(r["id"], r["sample"], r.get("rank"), "error" in r) for r in every] == [
        ("a", 1, 1, False), ("a", 0, 2, False), ("a", 2, None, True),
        ("b", 0, 1, False), ("b", 1, None, True), ("c", 0, 1, False)]


def test_an_id_met_again_after_other_ids_is_refused():
    records = samples("a", [0.2]) + samples("b", [0.4]) + samples("a", [0.9, 0.1])
    best = list(rerank_records(records, "reward.total"))
    assert [r["id"] for r in best] == ["a", "b", "a"]
    assert "error" not in best[0] and "appears again" in best[2]["error"]["message"]
    assert len(list(rerank_records(records, "reward.total", keep_all=True))) == 4


def test_split_passes_other_splits_through():
    records = (samples("a", [0.2, 0.9], split="test") + [{"id": "t", "split": "train", "response": "r"}]
               + samples("b", [0.5, 0.6], split="test"))
    best = list(rerank_records(records, "reward.total", split="test"))
    assert [(r["id"], r.get("sample")) for r in best] == [("a", 1), ("t", None), ("b", 1)]
    assert best[1] == records[2]  # untouched: no field needed, no rank
    failed = list(rerank_records(records, "reward.total"))  # without --split the train record has no reward
    assert "error" in failed[1]


def test_cli_counts_exit_codes_and_output_file(tmp_path):
    source = tmp_path / "scored.jsonl"
    source.write_text(jsonl(samples("a", [0.2, 0.9, 0.5]) + samples("b", [0.1, 0.7])))
    result = invoke("rerank", source, "--by", "reward.total")
    assert [(r["id"], r["sample"]) for r in rows(result.stdout)] == [("a", 1), ("b", 1)]
    assert "rerank: 5 records in, 2 out" in " ".join(result.stderr.split())
    out = tmp_path / "ranked.jsonl"
    invoke("rerank", source, "--by", "reward.total", "--keep-all", "--lowest", "-o", out)
    assert [(r["id"], r["rank"]) for r in rows(out.read_text())] == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]
    assert rows(out.read_text())[0]["sample"] == 0
    invoke("rerank", source, "--by", "reward.total", "-o", out, expect=2)  # no overwrite without --overwrite
    missing = invoke("rerank", "-", "--by", "reward.musicality", input=jsonl(samples("a", [1])), expect=1)
    assert "reward.musicality" in rows(missing.stdout)[0]["error"]["message"]
    invoke("rerank", "-", "--by", "reward.musicality", "--allow-errors", input=jsonl(samples("a", [1])))


def test_pipe_caption_samples_score_rerank_eval(tmp_path):
    """Best-of-4 by the verifiable reward is at least as good as each sample, item by item, and
    eval-mir reads the reranked answers (one per id)."""
    from test_caption_regress import make_records, write_records

    from mllm.core.train import SFTConfig, setup, train
    from tiny_llm import build_tiny_llm

    def key_records(n):
        keys = ["A minor", "C major", "E minor"]
        return [{**r, "task": "key", "split": "test", "answer": {"key": keys[i % 3]},
                 "messages": [{"role": "user", "content": "<audio>\nWhat key is this music in?"},
                              {"role": "assistant", "content": f"The key is {keys[i % 3]}."}]}
                for i, r in enumerate(make_records(n))]

    llm = build_tiny_llm(tmp_path / "llm")
    config = SFTConfig(llm=str(llm), lora_rank=4, lora_alpha=8, batch_size=3, lr=1e-2, steps=8,
                       output=str(tmp_path / "ckpt"), seed=1)
    for _ in train(setup(config, [{**r, "split": "train"} for r in key_records(6)])):
        pass
    source = write_records(tmp_path / "key.jsonl", key_records(4))
    drawn = invoke("caption", source, "--model", tmp_path / "ckpt", "--samples", 4, "--temperature", 1.5,
                   "--max-new-tokens", 8, "--split", "test").stdout
    scored = invoke("score", "-", "--reward", "task", "--split", "test", input=drawn).stdout
    best = rows(invoke("rerank", "-", "--by", "reward.total", "--split", "test", input=scored).stdout)
    assert [r["id"] for r in best] == ["r0", "r1", "r2", "r3"]
    by_id = {}
    for r in rows(scored):
        by_id.setdefault(r["id"], []).append(r["reward"]["total"])
    for r in best:
        assert r["reward"]["total"] == max(by_id[r["id"]]) and r["rerank"]["of"] == 4
    summary = json.loads(invoke("eval-mir", "-", "--split", "test", "--bootstrap", 0,
                                input=jsonl(best)).stdout)
    assert summary["tasks"]["key"]["n"] == 4
