"""The task registry (core.evaluation.kinds): one object per kind reads references and answers,
scores an item and summarises a corpus, for eval-mir, build-instructions and regress alike.

A kind registered here alone is scored by eval-mir end to end (summary, intervals, --compare);
every kind's corpus figure matches the library it reimplements; every answer build-instructions
writes scores perfectly when eval-mir reads it back; regress and eval-mir read one response the
same way."""

from __future__ import annotations

import mir_eval
import numpy as np
import orjson
import pytest
import scipy.stats
from sklearn.metrics import f1_score, precision_score, r2_score
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.evaluation import kinds
from mllm.core.evaluation.kinds import KIND_OF_TASK, KINDS, Context, Kind, Scored, Statistics, Summary
from mllm.core.evaluation.mir import MirEvaluator, collect_label_sets, compare
from mllm.core.evaluation.options import EvalOptions
from mllm.core.evaluation.readings import Reading
from mllm.core.evaluation.tasks import TaskError
from mllm.core.infer.regression import question, read_value
from mllm.core.parse.labels import LabelSet

runner = CliRunner()


def write_jsonl(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(path)


def corpus(kind_name: str, task: str, pairs, **context):
    """Read, score and summarise (reference, response) pairs with one kind, as eval-mir does:
    the corpus metric values and the per-item scores."""
    kind, ctx = KINDS[kind_name], Context(task, **context)
    kept, items = [], []
    for reference, response in pairs:
        ref = kind.read_reference(reference, ctx)
        scored = kind.score(ref, kind.read_answer("response", response, ref, ctx), ctx)
        kept.append(scored.kept)
        items.append(scored.scores)
    statistics = kind.summarise(kept, ctx).blocks["metrics"]
    index = np.arange(statistics.size)
    return {name: float(statistic(index)) for name, statistic in statistics.metrics.items()}, items


def test_every_task_name_belongs_to_exactly_one_registered_kind():
    assert set(KINDS) == {"key", "tempo", "beats", "downbeats", "chords", "classification", "tagging", "regression"}
    for name, kind in KINDS.items():
        assert kind.name == name and kind.task_names and kind.fields
        assert all(KIND_OF_TASK[task] == name for task in kind.task_names)
    assert sum(len(kind.task_names) for kind in KINDS.values()) == len(KIND_OF_TASK)  # no name in two kinds


def test_key_and_tempo_corpus_figures_are_mir_eval_means():
    pairs = [("A minor", "It is in A minor."), ("C major", "G major, I think"), ("F# major", "Gb major"),
             ("E minor", "no idea")]
    values, items = corpus("key", "key", pairs)
    expected = [mir_eval.key.weighted_score(ref, est) for ref, est in
                [("A minor", "A minor"), ("C major", "G major"), ("F# major", "Gb major"), ("E minor", "X")]]
    assert values["weighted_score"] == pytest.approx(np.mean(expected))  # unread = wrong (0)
    assert [item["accuracy"] for item in items] == [1.0, 0.0, 1.0, 0.0]
    values, _ = corpus("tempo", "tempo", [(120, "121 BPM"), (100, "about 200 bpm"), (90, "fast")])
    assert values == pytest.approx({"acc1": 1 / 3, "acc2": 2 / 3})


def test_beats_and_chords_corpus_figures_match_mir_eval():
    reference = np.arange(0.5, 10, 0.5)
    estimate = reference[::2] + 0.02
    values, _ = corpus("beats", "beats", [(reference.tolist(), ", ".join(f"{t:.2f}s" for t in estimate))])
    # --beat-trim 0 (the default): every beat counts, as in CMI-Bench (mir_eval's own default trims 5 s)
    assert values["f_measure"] == pytest.approx(mir_eval.beat.f_measure(reference, np.round(estimate, 2)))

    rows = [[0.0, 2.0, "C:maj"], [2.0, 4.0, "G:7"], [4.0, 5.0, "A:min"]]
    short = [[0.0, 1.0, "C:maj"], [1.0, 2.0, "F:maj"]]
    text = ["0.0s-2.0s: C, 2.0s-4.0s: G7, 4.0s-5.0s: Am", "0-1s: C, 1-2s: A minor"]
    values, items = corpus("chords", "chords", [(rows, text[0]), (short, text[1])])
    # duration-weighted over the corpus, as mir_eval's own weighted_accuracy over the two items
    per_item = [mir_eval.chord.evaluate(np.array([r[:2] for r in ref]), [r[2] for r in ref],
                                        np.array([r[:2] for r in est]), [r[2] for r in est])["majmin"]
                for ref, est in ((rows, rows), (short, [[0.0, 1.0, "C:maj"], [1.0, 2.0, "A:min"]]))]
    assert values["majmin"] == pytest.approx((per_item[0] * 5 + per_item[1] * 2) / 7)
    assert items[0]["duration"]["majmin"] == pytest.approx(5.0)


def test_label_corpus_figures_match_sklearn():
    genres = LabelSet.of(["rock", "jazz", "metal"])
    values, _ = corpus("classification", "genre", [("rock", "metal"), ("jazz", "jazz"), ("rock", "It is rock.")],
                       label_set=genres)
    truth, guess = ["rock", "jazz", "rock"], ["metal", "jazz", "rock"]
    assert values["f1_macro"] == pytest.approx(f1_score(truth, guess, labels=["rock", "jazz", "metal"], average="macro"))
    assert values["precision_macro"] == pytest.approx(
        precision_score(truth, guess, labels=["rock", "jazz", "metal"], average="macro", zero_division=0))

    tags = LabelSet.of(["piano", "drums", "voice"])
    pairs = [(["piano", "drums"], "piano and drums"), (["voice"], "a piano"), (["drums"], "drums, voice")]
    values, items = corpus("tagging", "instruments", pairs, label_set=tags)
    y_true = np.array([[1, 1, 0], [0, 0, 1], [0, 1, 0]])
    y_pred = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]])
    assert values["f1_micro"] == pytest.approx(f1_score(y_true, y_pred, average="micro"))
    assert items[2] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3})


def test_regression_figures_match_sklearn_and_scipy_and_keep_cmi_benchs_protocol_apart():
    kind, ctx = KINDS["regression"], Context("arousal", scale=(1.0, 9.0))
    pairs = [(2.0, "I'd rate it 3"), (5.0, "a 5"), (8.0, "about 7.5"), (4.0, "no idea"), (6.0, "14 out of 9")]
    kept = [kind.score(truth, kind.read_answer("response", text, truth, ctx), ctx).kept for truth, text in pairs]
    summary = kind.summarise(kept, ctx)
    assert summary.notes == {"n_scored": 4, "n_clipped": 1, "scale": [1.0, 9.0]}  # 14 clipped to 9
    parsed = summary.blocks["metrics"]
    y_true, y_pred = np.array([2.0, 5.0, 8.0, 6.0]), np.array([3.0, 5.0, 7.5, 9.0])
    value = {name: float(statistic(np.arange(parsed.size))) for name, statistic in parsed.metrics.items()}
    assert parsed.size == 4
    assert value["r2"] == pytest.approx(r2_score(y_true, y_pred))
    assert value["pearson"] == pytest.approx(scipy.stats.pearsonr(y_true, y_pred)[0])
    imputed = summary.blocks["metrics_unparsed_as_mean"]
    assert imputed.size == 5  # the unread answer counted as the mean of the read ones
    y_true5, y_pred5 = np.array([2.0, 5.0, 8.0, 4.0, 6.0]), np.array([3.0, 5.0, 7.5, y_pred.mean(), 9.0])
    assert float(imputed.combined(np.arange(5))[0]) == pytest.approx(r2_score(y_true5, y_pred5))
    with pytest.raises(TaskError, match="outside the scale"):
        kind.read_reference(12, ctx)


RIGHT_AND_UNREAD = {  # kind: (task, reference, a right answer, context)
    "key": ("key", "A minor", "It is in A minor.", {}),
    "tempo": ("tempo", 120, "120 BPM", {}),
    "beats": ("beats", [0.5, 1.0, 1.5], "0.5s, 1.0s, 1.5s", {}),
    "downbeats": ("downbeats", [0.5, 2.5], "0.5, 2.5", {}),
    "chords": ("chords", [[0, 2, "C:maj"], [2, 4, "G:maj"]], "0-2s: C, 2-4s: G", {}),
    "classification": ("genre", "jazz", "jazz", {"label_set": LabelSet.of(["jazz", "rock"])}),
    "tagging": ("moods", ["sad", "calm"], "calm and sad", {"label_set": LabelSet.of(["sad", "calm", "happy"])}),
    "regression": ("arousal", 6.5, "I would rate it 6.5", {"scale": (1.0, 9.0)}),
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_rewards_a_right_answer_1_and_an_unread_one_0(name):
    task, reference, right, context = RIGHT_AND_UNREAD[name]
    kind, ctx = KINDS[name], Context(task, **context)
    ref = kind.read_reference(reference, ctx)
    for text, expected in ((right, 1.0), ("I cannot say.", 0.0)):
        reading = kind.read_answer("response", text, ref, ctx)
        assert reading.parse_ok is (expected == 1.0)
        assert kind.reward(kind.score(ref, reading, ctx), ctx) == pytest.approx(expected), text


class CountKind(Kind):
    """A kind the tree does not have: how many notes, right when exactly right."""

    name = "count"
    task_names = ("notes",)
    fields = ("count",)
    reward_metric = "exact"

    def read_reference(self, value, context):
        if not isinstance(value, int) or value < 0:
            raise TaskError(f"field 'reference' must be a count, got {value!r}")
        return value

    def read_answer(self, source, value, reference, context):
        if source == "response":
            digits = [int(word) for word in value.replace(".", " ").split() if word.isdigit()]
            return Reading(digits[0], True, source, str(digits[0])) if digits else Reading(None, False, source,
                                                                                           reason="no count")
        return Reading(value, value is not None, source)

    def score(self, reference, reading, context):
        return Scored({"exact": float(reading.value == reference)}, float(reading.value == reference))

    def summarise(self, kept, context):
        values = np.asarray(kept, float)
        return Summary({"metrics": Statistics({"exact": lambda index: values[index].mean(axis=-1)}, len(kept),
                                              frozenset({"exact"}))})


def test_a_kind_registered_alone_is_scored_end_to_end(monkeypatch, tmp_path):
    monkeypatch.setitem(kinds.KINDS, "count", CountKind())
    monkeypatch.setitem(kinds.KIND_OF_TASK, "notes", "count")
    records = [{"id": str(i), "task": "notes", "reference": i % 3, "response": f"I hear {answer} notes."}
               for i, answer in enumerate([0, 1, 5, 0, 1, 2, 7, 1])]
    records.append({"id": "s", "task": "notes", "reference": 2, "prediction": {"count": 2}})
    records.append({"id": "bad", "task": "notes", "reference": -1, "response": "3"})
    path = write_jsonl(tmp_path / "notes.jsonl", records)
    result = runner.invoke(app, ["eval-mir", path, "--bootstrap", "200", "--allow-errors"])
    assert result.exit_code == 0, result.output
    task = orjson.loads(result.stdout)["tasks"]["notes"]
    assert task["task_type"] == "count" and task["n"] == 9 and task["n_parsed"] == 9
    exact = task["metrics"]["exact"]
    assert exact["value"] == pytest.approx(7 / 9)
    assert exact["low"] <= exact["value"] <= exact["high"] and len(exact["clopper_pearson"]) == 2

    options = EvalOptions(n_resamples=100)
    a, b = MirEvaluator(options), MirEvaluator(options)
    for record in records[:-1]:
        a.score(record)
        b.score({**record, "response": "I hear 0 notes."} if "response" in record else record)
    paired = compare(a, b)["notes"]
    assert paired["n_paired"] == 9 and paired["metrics"]["exact"]["a"] == pytest.approx(7 / 9)
    assert paired["metrics"]["exact"]["b"] == pytest.approx(4 / 9)  # 0 notes: right for 3 + the prediction
    # and its reward, for mllm grpo, from the same registration
    from mllm.core.train.rewards import Reward

    reward = Reward.parse("task")
    prepared = reward.prepare({"id": "r", "task": "notes", "reference": 2})
    assert reward(prepared, "2 notes")[0] == 1.0 and reward(prepared, "3 notes")[0] == 0.0


def test_a_tagging_prediction_may_be_a_bare_score_per_label():
    options = EvalOptions(n_resamples=0)
    records = [{"id": "1", "task": "instruments", "reference": ["piano"],
                "prediction": {"piano": 0.9, "drums": 0.2, "theremin": 0.8}},  # not a label of the set: ignored
               {"id": "2", "task": "instruments", "reference": ["drums"], "prediction": {"instruments": {"drums": 0.7}}},
               {"id": "3", "task": "instruments", "reference": ["drums"], "prediction": {"energy": 9}}]
    evaluator = MirEvaluator(options, collect_label_sets(records, options))
    out = [evaluator.score(record) for record in records]
    assert out[0]["eval"]["scores"]["f1"] == 1.0 and out[1]["eval"]["scores"]["f1"] == 1.0
    assert "energy" in out[2]["error"]["message"]  # no label of the task: refused, naming what it found
    task = evaluator.summary()["tasks"]["instruments"]
    assert task["ranking"] == "from the predicted scores" and task["n"] == 2


def test_every_answer_build_instructions_writes_scores_perfectly_in_eval_mir(tmp_path):
    labels = {"id": "x", "audio": "/a/x.wav", "labels": {
        "key": "Eb minor", "tempo_bpm": 93.47, "meter": 3, "beats": [0.41, 1.05, 1.69, 2.33, 2.97],
        "downbeats": [0.41, 2.33], "chords": [[0.0, 1.5, "Eb:min"], [1.5, 3.2, "Bb:7"], [3.2, 4.0, "N"]],
        "genre": "hip hop", "instruments": ["piano", "voice"], "moods": ["dark", "calm"], "arousal": 3.25,
        "valence": 6.8}}
    others = [{**labels, "id": f"y{i}", "labels": {**labels["labels"], "genre": genre, "instruments": ["drums"]}}
              for i, genre in enumerate(["rock", "jazz"])]
    source = write_jsonl(tmp_path / "labels.jsonl", [labels, *others])
    built = runner.invoke(app, ["build-instructions", source, "--per-task", "3", "--seed", "4", "--tasks",
                                "key,tempo,meter,beats,downbeats,chords,genre,instruments,moods,regression"])
    assert built.exit_code == 0, built.output
    records = [orjson.loads(line) for line in built.stdout.splitlines()]
    assert {r["task"] for r in records} >= {"key", "tempo", "meter", "chords", "genre", "moods", "arousal", "valence"}
    answered = [{**r, "response": r["messages"][-1]["content"], "reference": r["answer"]} for r in records]
    result = runner.invoke(app, ["eval-mir", write_jsonl(tmp_path / "gold.jsonl", answered), "--per-item",
                                 "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    scored = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(scored) == len(records)
    for record in scored:
        assert record["eval"]["parse_ok"], record["messages"][-1]["content"]
        for name, value in record["eval"]["scores"].items():
            if name == "abs_error":
                assert value == pytest.approx(0.0, abs=1e-9), record["messages"][-1]["content"]
            elif name != "duration":
                assert value == pytest.approx(1.0), (name, record["messages"][-1]["content"])


@pytest.mark.parametrize("text", [
    "I would rate the arousal as 6.5.", "Arousal: 3, valence: 7", "between 5 and 6", "On a scale of 1-9: 4",
    "It is calm.", "12 out of 9", "seven point five", "2, 8 and 5",
])
def test_regress_and_eval_mir_read_a_response_alike(text):
    scale = (1.0, 9.0)
    value, matched, _ = read_value(text, "arousal", scale, question("arousal", scale))
    evaluator = MirEvaluator(EvalOptions(n_resamples=0))
    prompt = [{"role": "user", "content": f"<audio>\n{question('arousal', scale)}"}]
    out = evaluator.score({"id": "1", "task": "arousal", "reference": 5, "response": text, "messages": prompt})
    read = out["prediction"]["arousal"] if out["eval"]["parse_ok"] else None
    assert (value is None) == (read is None)
    if value is not None:
        assert value == pytest.approx(min(max(read, 1.0), 9.0)) and matched == out["eval"]["matched"]
