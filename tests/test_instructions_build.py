"""build-instructions in Python: phrasing by seed, --tasks, provenance, label sources, skips and errors."""

from __future__ import annotations

import pytest

from mllm.core.instructions import templates as tpl
from mllm.core.instructions.build import BuildOptions, InstructionBuilder, build_stream, messages
from mllm.core.instructions.splits import SplitRule
from mllm.core.io.errors import StreamSummary


def record(n: int = 0, **labels) -> dict:
    base = {"key": "A minor", "tempo_bpm": 120.0, "genre": "rock", "arousal": 5.2}
    base.update(labels)
    return {"id": f"clip-{n}", "audio": f"audio/{n}.wav", "dataset": "toy", "track": f"song-{n // 2}", "labels": base}


def build(records, **options) -> tuple[list[dict], InstructionBuilder, StreamSummary]:
    builder = InstructionBuilder(BuildOptions(**options))
    summary = StreamSummary("build-instructions")
    return list(build_stream(records, builder, summary)), builder, summary


def by_id(out):
    return {r["id"]: r for r in out}


def test_one_record_per_task_with_messages_answer_and_split():
    out, _, summary = build([record()], tasks=("key", "tempo", "genre", "arousal"))
    assert [r["task"] for r in out] == ["key", "tempo", "genre", "arousal"]
    assert [r["id"] for r in out] == ["clip-0#key-0", "clip-0#tempo-0", "clip-0#genre-0", "clip-0#arousal-0"]
    for r in out:
        user, assistant = r["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert user["content"].startswith("<audio>\n") and user["content"].count("<audio>") == 1
        assert "<audio>" not in assistant["content"]
        assert r["split"] in ("train", "valid", "test")
        assert r["labels"] == record()["labels"] and r["track"] == "song-0"  # input fields pass through
    answers = {r["task"]: r["answer"] for r in out}
    assert answers == {"key": {"key": "A minor"}, "tempo": {"tempo_bpm": 120.0}, "genre": {"genre": "rock"}, "arousal": {"arousal": 5.2}}
    arousal = out[3]
    assert arousal["scale"] == [1.0, 9.0] and arousal["task_type"] == "regression"
    assert (summary.records_in, summary.records_out, summary.failed) == (1, 4, 0)


def test_provenance_names_dataset_templates_seed_and_record():
    out, _, _ = build([record(3)], tasks=("key",), seed=7)
    source = out[0]["source"]
    assert source["dataset"] == "toy" and source["seed"] == 7 and source["record"] == "clip-3"
    assert source["labels_from"] == "labels" and source["split_from"] == "hash" and source["generator"] is None
    question_id, answer_id = source["template"].split(",")
    question = next(p for p in tpl.QUESTIONS["key"] if p.id == question_id)
    answer = next(p for p in tpl.ANSWERS["key"] if p.id == answer_id)
    assert out[0]["messages"][0]["content"] == "<audio>\n" + question.text
    assert out[0]["messages"][1]["content"] == answer.render({"key": "A minor"})


def test_same_seed_same_records_whatever_the_order_and_other_seeds_differ():
    records = [record(n) for n in range(40)]
    first, _, _ = build(records, seed=1)
    again, _, _ = build(list(reversed(records)), seed=1)
    assert by_id(first) == by_id(again)
    other, _, _ = build(records, seed=2)
    assert by_id(first).keys() == by_id(other).keys()
    changed = [i for i in by_id(first) if by_id(first)[i]["messages"] != by_id(other)[i]["messages"]]
    assert len(changed) > len(first) // 3


def test_per_task_gives_distinct_question_phrasings():
    out, _, _ = build([record()], tasks=("key", "mir_qa"), per_task=3)
    keys = [r for r in out if r["task"] == "key"]
    assert len(keys) == 3 and len({r["source"]["template"].split(",")[0] for r in keys}) == 3
    assert [r["id"] for r in keys] == ["clip-0#key-0", "clip-0#key-1", "clip-0#key-2"]
    kinds = [r["source"]["template"].split("/")[1] for r in out if r["task"] == "mir_qa"]
    assert kinds == ["tempo_key"]  # the only MIR question these values allow


def test_tasks_choose_families_and_numeric_fields():
    out, _, _ = build([record(energy=4.0)], tasks=("regression",), scales={"energy": (1.0, 9.0)})
    assert sorted(r["task"] for r in out) == ["arousal", "energy"]
    out, _, _ = build([record(energy=4.0)], tasks=("energy",), scales={"energy": (1.0, 9.0)})
    assert [r["task"] for r in out] == ["energy"]


def test_numeric_field_without_a_scale_is_skipped_and_counted():
    out, builder, summary = build([record(brightness_raw=0.3)], tasks=("brightness_raw",))
    assert out == [] and summary.failed == 0
    assert builder.skipped["brightness_raw"]["brightness_raw has no declared scale"] == 1
    assert any("produced no instruction record" in line for line in builder.report_lines())


def test_labels_win_over_features_unless_asked():
    rec = record() | {"features": {"key": "C major", "tempo_bpm": 99.0, "meter": 4}}
    out, _, _ = build([rec], tasks=("key", "meter"))
    assert [(r["answer"], r["source"]["labels_from"]) for r in out] == [({"key": "A minor"}, "labels"), ({"meter": "4"}, "features")]
    out, _, _ = build([rec], tasks=("key",), prefer="features")
    assert (out[0]["answer"], out[0]["source"]["labels_from"]) == ({"key": "C major"}, "features")


def test_missing_values_skip_a_task_and_unreadable_values_are_errors():
    out, builder, summary = build([record(key=None), record(1, key="H minor")], tasks=("key", "tempo"))
    assert [r["id"] for r in out] == ["clip-0#tempo-0", "clip-1"]
    assert builder.skipped["key"] == {"no key": 1}
    error = out[1]["error"]
    assert error["stage"] == "build-instructions" and "labels.key" in error["message"] and "H minor" in error["message"]
    assert (summary.failed_here, summary.records_out) == (1, 2)


def test_records_without_audio_and_upstream_errors():
    upstream = {"id": "x", "error": {"stage": "extract-features", "type": "AudioError", "message": "broken"}}
    out, _, summary = build([{"id": "no-audio", "labels": {"key": "A minor"}}, upstream])
    assert out[0]["error"]["type"] == "RecordError" and "audio" in out[0]["error"]["message"]
    assert out[1] is upstream
    assert (summary.failed_here, summary.failed_before) == (1, 1)


def test_dataset_questions_are_used_unless_templates_are_asked():
    rec = record() | {"questions": {"key": "Estimate the key. <audio> Answer with one key."}}
    out, _, _ = build([rec], tasks=("key",))
    assert out[0]["messages"][0]["content"] == "<audio>\nEstimate the key.  Answer with one key."
    assert out[0]["source"]["template"].startswith("dataset,key/a")
    out, _, _ = build([rec], tasks=("key",), dataset_questions=False)
    assert out[0]["source"]["template"].startswith("key/q")


def test_caption_given_or_composed():
    out, _, _ = build([record(caption="A calm piano piece.")], tasks=("caption",))
    assert out[0]["answer"] == {"caption": "A calm piano piece."}
    assert out[0]["messages"][1]["content"] == "A calm piano piece."
    assert out[0]["source"]["template"].endswith(",caption/given")
    out, _, _ = build([record(instruments=["piano"])], tasks=("caption",))
    caption = out[0]["answer"]["caption"]
    assert "rock" in caption and "A minor" in caption and "120 BPM" in caption and "piano" in caption
    assert "caption/composed" in out[0]["source"]["template"]


def test_dataset_qa_pairs_become_qa_records():
    rec = {"id": "q", "audio": "a.wav", "labels": {"qa": [{"question": "Is it fast?", "answer": "No, slow."},
                                                          {"question": "Mood?", "answer": "Calm."}]}}
    out, _, _ = build([rec], tasks=("qa",), per_task=3)
    assert [(r["id"], r["messages"][0]["content"], r["answer"]) for r in out] == [
        ("q#qa-0", "<audio>\nIs it fast?", "No, slow."), ("q#qa-1", "<audio>\nMood?", "Calm."),
    ]
    assert out[0]["source"]["template"] == "qa/dataset,qa/dataset"


def test_split_from_the_dataset_or_hash():
    rec = record() | {"split": "validation"}
    out, _, _ = build([rec], tasks=("key",))
    assert (out[0]["split"], out[0]["source"]["split_from"]) == ("valid", "dataset")
    out, _, _ = build([rec], tasks=("key",), split_rule=SplitRule(mode="hash", fractions=(0.0, 0.0, 1.0)))
    assert (out[0]["split"], out[0]["source"]["split_from"]) == ("test", "hash")


def test_messages_have_no_system_turn_and_strip_extra_placeholders():
    assert messages("<audio> What key?", "A minor.") == [
        {"role": "user", "content": "<audio>\nWhat key?"}, {"role": "assistant", "content": "A minor."},
    ]


def test_options_are_checked():
    with pytest.raises(ValueError):
        InstructionBuilder(BuildOptions(per_task=0))
    with pytest.raises(ValueError):
        InstructionBuilder(BuildOptions(prefer="both"))
