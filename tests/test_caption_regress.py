"""`mllm caption` and `mllm regress` (core/infer): batched generation from a tiny trained checkpoint,
--resume, reading and clipping numeric answers, the ridge/MLP probe, and regress | eval-mir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.infer.captions import caption_prompt
from mllm.core.infer.generation import Prompt
from mllm.core.infer.probe import fit_probe, pooled, predict_records
from mllm.core.infer.regression import question, regress_records
from mllm.core.io.errors import StreamSummary
from mllm.core.io.jsonl import dumps
from tiny_llm import build_tiny_llm

runner = CliRunner()
ANSWERS = ["The key is A minor.", "I would assign a 3 on the 1-9 scale.", "A calm piano piece with soft chords."]


def invoke(*args, expect=0):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def rows(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def make_records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        out.append({"id": f"r{i}", "split": "train", "encoder": "dsp", "frame_rate": 1.0,
                    "audio_embedding": rng.normal(size=(2 + i % 3, 6)).astype(np.float32),
                    "messages": [{"role": "user", "content": "<audio>\nDescribe the music."},
                                 {"role": "assistant", "content": ANSWERS[i % len(ANSWERS)]}]})
    return out


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(dumps(r) for r in records))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny LLM + projector + LoRA trained for 8 steps."""
    from mllm.core.train import SFTConfig, setup, train

    folder = tmp_path_factory.mktemp("infer")
    llm = build_tiny_llm(folder / "tiny-llm")
    config = SFTConfig(llm=str(llm), lora_rank=4, lora_alpha=8, batch_size=3, lr=1e-2, steps=8,
                       output=str(folder / "ckpt"), seed=1)
    for _ in train(setup(config, make_records(6))):
        pass
    return folder / "ckpt"


# ---------------------------------------------------------------- caption


def test_caption_writes_a_response_per_record_and_batching_changes_nothing(checkpoint, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(5))
    one = rows(invoke("caption", source, "--model", checkpoint, "--batch-size", 1, "--max-new-tokens", 12).stdout)
    batched = rows(invoke("caption", source, "--model", checkpoint, "--batch-size", 4, "--max-new-tokens", 12).stdout)
    assert [r["id"] for r in one] == [f"r{i}" for i in range(5)]
    assert all(isinstance(r["response"], str) for r in one)
    assert [r["response"] for r in one] == [r["response"] for r in batched]
    assert any(r["response"] for r in one)  # the trained model says something
    assert all(r["messages"] and r["split"] == "train" for r in batched)  # every input field is kept
    asked = rows(invoke("caption", source, "--model", checkpoint, "--prompt", "What key is this music in?",
                        "--max-new-tokens", 4).stdout)
    assert len(asked) == 5 and all("response" in r for r in asked)


def test_sampling_is_seeded(checkpoint, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(3))
    args = ["caption", source, "--model", checkpoint, "--sample", "--temperature", 1.5, "--max-new-tokens", 8]
    first = rows(invoke(*args, "--seed", 4).stdout)
    again = rows(invoke(*args, "--seed", 4).stdout)
    assert [r["response"] for r in first] == [r["response"] for r in again]


def test_caption_prompt_order():
    record = make_records(1)[0]
    assert caption_prompt(record).messages == [record["messages"][0]]  # the answer is dropped
    assert caption_prompt(record, "Which instruments play?").messages[0]["content"] == "<audio>\nWhich instruments play?"
    bare = {"id": "x", "audio_embedding": record["audio_embedding"]}
    assert caption_prompt(bare).messages[0]["content"] == "<audio>\nDescribe this music."
    with pytest.raises(KeyError, match="audio_embedding"):
        caption_prompt({"id": "y"})


def test_caption_resume_skips_written_ids(checkpoint, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(4))
    out = tmp_path / "out.jsonl"
    invoke("caption", source, "--model", checkpoint, "-o", out, "--max-new-tokens", 6)
    whole = rows(out.read_text())
    lines = out.read_bytes().splitlines(keepends=True)
    out.unlink()  # what a kill while writing the third record leaves: no out.jsonl, a cut partial file
    (tmp_path / "out.jsonl.partial").write_bytes(b"".join(lines[:2]) + lines[2][:10])
    result = invoke("caption", source, "--model", checkpoint, "-o", out, "--resume", "--max-new-tokens", 6)
    assert "resume: 2 records already in" in " ".join(result.stderr.split())
    assert not (tmp_path / "out.jsonl.partial").exists()
    resumed = rows(out.read_text())
    assert [r["id"] for r in resumed] == ["r0", "r1", "r2", "r3"]
    assert [r["response"] for r in resumed] == [r["response"] for r in whole]
    invoke("caption", source, "--model", checkpoint, "--resume", expect=2)  # needs -o


def test_caption_errors_become_error_records(checkpoint, tmp_path):
    records = make_records(2) + [{"id": "bare"}]
    source = write_records(tmp_path / "in.jsonl", records)
    result = invoke("caption", source, "--model", checkpoint, "--max-new-tokens", 4, expect=1)
    out = rows(result.stdout)
    assert [r["id"] for r in out] == ["r0", "r1", "bare"]
    assert "response" in out[0] and out[2]["error"]["stage"] == "caption"
    invoke("caption", source, "--model", checkpoint, "--max-new-tokens", 4, "--allow-errors")
    assert "mllm caption" in invoke("caption", "--help").stdout


# ---------------------------------------------------------------- regress (llm)


def stub(answers: dict[str, str]):
    """A generator that answers each question by the target it names."""
    def generate(prompts: list[Prompt]) -> list[str]:
        out = []
        for prompt in prompts:
            text = prompt.messages[-1]["content"]
            out.append(next(a for name, a in answers.items() if name in text))
        return out
    return generate


def test_regress_reads_clips_and_keeps_unparsed_answers_visible():
    records = make_records(3)
    generate = stub({"arousal": "I would assign a 12 on the 1-9 scale.", "valence": "It sounds rather calm."})
    summary = StreamSummary("regress")
    out = list(regress_records(records, generate, batch_size=2, summary=summary))
    assert [r["id"] for r in out] == ["r0", "r1", "r2"] and summary.failed == 0
    for record in out:
        assert record["prediction"] == {"arousal": 9.0, "valence": None, "parse_ok": {"arousal": True, "valence": False}}
        assert record["regression"]["arousal"] == {"read": "12", "clipped": True}
        assert record["response"]["valence"] == "It sounds rather calm."
        assert "messages" in record
    good = list(regress_records(records[:1], stub({"arousal": "6.5", "valence": "Valence: 3 out of 9"})))
    assert good[0]["prediction"] == {"arousal": 6.5, "valence": 3.0, "parse_ok": {"arousal": True, "valence": True}}
    passed = {"id": "old", "error": {"stage": "encode", "type": "X", "message": "m"}}
    bare = {"id": "bare"}
    summary = StreamSummary("regress")
    out = list(regress_records([passed, bare, records[0]], generate, summary=summary))
    assert out[0] == passed and out[1]["error"]["stage"] == "regress" and "prediction" in out[2]
    assert (summary.failed_here, summary.failed_before) == (1, 1)
    own = [{**records[0], "task": "valence"}, {**records[1], "task": "arousal"}]
    by_task = list(regress_records(own, generate, targets=("task",)))
    assert [r["prediction"] for r in by_task] == [{"valence": None, "parse_ok": {"valence": False}},
                                                  {"arousal": 9.0, "parse_ok": {"arousal": True}}]
    scaled = list(regress_records(records[:1], stub({"energy": "0.5"}), targets=("energy",), scales={"energy": (-1, 1)}))
    assert scaled[0]["prediction"] == {"energy": 0.5, "parse_ok": {"energy": True}}


def test_regress_question_is_the_emotion_papers_form():
    assert question("arousal", (1, 9)) == ("How would you rate the arousal (how calm or energetic it feels) "
                                           "of this music on a scale from 1 to 9?")
    assert question("energy", (0, 1)) == "How would you rate the energy of this music on a scale from 0 to 1?"


def test_regress_cli_on_a_checkpoint(checkpoint, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(3))
    out = rows(invoke("regress", source, "--model", checkpoint, "--max-new-tokens", 8, "--batch-size", 4).stdout)
    assert [r["id"] for r in out] == ["r0", "r1", "r2"]
    for record in out:
        prediction = record["prediction"]
        assert set(prediction) == {"arousal", "valence", "parse_ok"}
        assert prediction["parse_ok"] == {n: prediction[n] is not None for n in ("arousal", "valence")}
        assert all(v is None or 1 <= v <= 9 for k, v in prediction.items() if k != "parse_ok")
        assert set(record["response"]) == {"arousal", "valence"}
    invoke("regress", source, expect=2)  # --method llm needs --model
    assert "mllm regress" in invoke("regress", "--help").stdout


def test_regress_resume_skips_written_ids(checkpoint, tmp_path):
    source = write_records(tmp_path / "in.jsonl", make_records(4))
    out = tmp_path / "out.jsonl"
    invoke("regress", source, "--model", checkpoint, "-o", out, "--max-new-tokens", 6, "--batch-size", 3)
    whole = rows(out.read_text())
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + lines[2][:10])  # stopped while writing the third record
    result = invoke("regress", source, "--model", checkpoint, "-o", out, "--resume", "--max-new-tokens", 6,
                    "--batch-size", 3)
    assert "resume: 2 records already in" in " ".join(result.stderr.split())
    resumed = rows(out.read_text())
    assert [r["id"] for r in resumed] == ["r0", "r1", "r2", "r3"]
    assert [(r["prediction"], r["response"]) for r in resumed] == [(r["prediction"], r["response"]) for r in whole]
    invoke("regress", source, "--model", checkpoint, "-o", out, "--resume")  # nothing left: appends nothing
    assert rows(out.read_text()) == resumed
    invoke("regress", source, "--model", checkpoint, "--resume", expect=2)  # needs -o
    invoke("regress", source, "--model", checkpoint, "-o", tmp_path / "out.parquet", "--resume", expect=2)


def test_resume_retries_error_records_and_the_exit_code_tells_what_the_file_holds(checkpoint, tmp_path):
    records = make_records(3)
    source = write_records(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    invoke("caption", source, "--model", checkpoint, "-o", out, "--max-new-tokens", 4)
    lines = out.read_bytes().splitlines(keepends=True)
    failed = {**records[1], "error": {"stage": "caption", "type": "RuntimeError", "message": "CUDA out of memory"}}
    out.write_bytes(lines[0] + dumps(failed) + lines[2])  # a finished run in which r1 failed
    result = invoke("caption", source, "--model", checkpoint, "-o", out, "--resume", "--max-new-tokens", 4)
    assert "1 error records are done again" in " ".join(result.stderr.split())
    final = rows(out.read_text())
    assert sorted(r["id"] for r in final) == ["r0", "r1", "r2"] and not any("error" in r for r in final)
    # An error that comes back again stays in the file, and the exit code says so.
    bad = write_records(tmp_path / "bad.jsonl", [records[0], {"id": "bare"}])
    invoke("caption", bad, "--model", checkpoint, "-o", tmp_path / "bad.out.jsonl", "--max-new-tokens", 4, expect=1)
    invoke("caption", bad, "--model", checkpoint, "-o", tmp_path / "bad.out.jsonl", "--resume", "--max-new-tokens", 4,
           expect=1)
    assert [r["id"] for r in rows((tmp_path / "bad.out.jsonl").read_text())] == ["r0", "bare"]


def test_resume_with_repeated_ids_does_every_copy(checkpoint, tmp_path):
    records = make_records(3)
    twice = [records[0], records[0], records[1], records[2]]  # an input that holds r0 twice
    source = write_records(tmp_path / "in.jsonl", twice)
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.partial").write_bytes(dumps({**records[0], "response": "done before the stop"}))
    invoke("caption", source, "--model", checkpoint, "-o", out, "--resume", "--max-new-tokens", 4)
    assert [r["id"] for r in rows(out.read_text())] == ["r0", "r0", "r1", "r2"]


def test_resume_after_a_real_sigkill(checkpoint, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    records = [{**r, "id": f"{r['id']}-{k}"} for k in range(60) for r in make_records(3)]
    source = write_records(tmp_path / "in.jsonl", records)
    out, partial = tmp_path / "out.jsonl", tmp_path / "out.jsonl.partial"
    command = [sys.executable, "-m", "mllm.cli", "caption", str(source), "--model", str(checkpoint), "-o", str(out),
               "--batch-size", "1", "--max-new-tokens", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (partial.exists() and partial.read_bytes().count(b"\n") >= 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "the run finished before it was killed"
    kept = partial.read_bytes().count(b"\n")
    assert 3 <= kept < len(records)
    resumed = subprocess.run([*command, "--resume"], capture_output=True, env=env)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert [r["id"] for r in rows(out.read_text())] == [r["id"] for r in records]
    assert not partial.exists()


def test_a_failed_batch_is_retried_record_by_record():
    """One record that makes `generate` fail takes only itself down, not its whole batch."""
    from mllm.core.infer.generation import answer_records

    calls = []

    def generate(prompts):
        calls.append(len(prompts))
        if any(p.audio == "poison" for p in prompts):
            raise RuntimeError("the model cannot take this input")
        return [f"answer {p.audio}" for p in prompts]

    records = [{"id": f"r{i}", "audio": "poison" if i == 2 else str(i)} for i in range(5)]
    summary = StreamSummary("test")
    out = list(answer_records(records, lambda r: [Prompt([], r["audio"])], lambda r, a: {**r, "response": a[0]},
                              generate, batch_size=4, stage="test", summary=summary))
    assert [r["id"] for r in out] == [f"r{i}" for i in range(5)]
    assert [r.get("response") for r in out] == ["answer 0", "answer 1", None, "answer 3", "answer 4"]
    assert out[2]["error"]["message"] == "the model cannot take this input"
    assert summary.failed_here == 1 and calls == [4, 1, 1, 1, 1, 1]


def test_regress_probe_resume_fits_on_all_and_predicts_the_rest(tmp_path):
    source = write_records(tmp_path / "in.jsonl", linear_corpus(60))
    out = tmp_path / "pred.jsonl"
    invoke("regress", source, "--method", "probe", "-o", out)
    whole = rows(out.read_text())
    out.write_bytes(b"".join(out.read_bytes().splitlines(keepends=True)[:50]))  # train records written, test ones not
    invoke("regress", source, "--method", "probe", "-o", out, "--resume")
    resumed = rows(out.read_text())
    assert [r["id"] for r in resumed] == [r["id"] for r in whole]
    assert [r["prediction"] for r in resumed] == [r["prediction"] for r in whole]  # same fit: every train record


# ---------------------------------------------------------------- regress (probe)


def linear_corpus(n: int = 200, dim: int = 8, seed: int = 0) -> list[dict]:
    """Embeddings whose time mean gives arousal and valence by a linear map (inside 1-9)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(2, dim))
    records = []
    for i in range(n):
        frames = rng.normal(size=(3 + i % 4, dim))
        a, v = 5 + 0.5 * weights @ frames.mean(0)
        split = "train" if i < int(0.7 * n) else "test"
        records.append({"id": f"c{i}", "split": split, "task": "arousal", "audio_embedding": frames.astype(np.float32),
                        "answer": {"arousal": float(a), "valence": float(v)}, "reference": {"arousal": float(a)}})
    return records


def test_ridge_probe_recovers_a_linear_target():
    from sklearn.metrics import r2_score

    records = linear_corpus()
    probe = fit_probe(records, ("arousal", "valence"), "ridge")
    assert probe.train_counts == {"arousal": 140, "valence": 140}
    twice = records + [{**r, "id": r["id"] + "-again", "task": "valence"} for r in records[:10]]
    assert fit_probe(twice, ("arousal",)).train_counts == {"arousal": 140}  # a clip in two task records counts once
    out = list(predict_records(records, probe))
    test = [(r, o) for r, o in zip(records, out) if r["split"] == "test"]
    for name in ("arousal", "valence"):
        truth = [np.clip(r["answer"][name], 1, 9) for r, _ in test]
        assert r2_score(truth, [o["prediction"][name] for _, o in test]) > 0.9
    assert all(o["prediction"]["parse_ok"] == {"arousal": True, "valence": True} and 1 <= o["prediction"]["arousal"] <= 9
               for o in out)
    # predictions of the records the probe was fitted on are marked, and only those
    assert [o.get("in_sample", False) for o in out] == [r["split"] == "train" for r in records]
    np.testing.assert_allclose(pooled(records[0]), records[0]["audio_embedding"].astype(np.float64).mean(0))
    mlp = fit_probe(records, ("arousal",), "mlp")
    assert set(next(iter(predict_records(records[:1], mlp)))["prediction"]) == {"arousal", "parse_ok"}
    with pytest.raises(ValueError, match="at least 2"):
        fit_probe(records, ("tempo",))


def test_probe_cli_and_eval_mir_end_to_end(tmp_path):
    records = linear_corpus(120)
    records.append({"id": "broken", "split": "test", "task": "arousal"})  # no embedding: an error record
    source = write_records(tmp_path / "in.jsonl", records)
    result = invoke("regress", source, "--method", "probe", "-o", tmp_path / "pred.jsonl", expect=1)
    assert "1 failed" in result.stderr
    invoke("regress", source, "--method", "probe", "--probe", "mlp", "--allow-errors")
    predicted = rows((tmp_path / "pred.jsonl").read_text())
    assert len(predicted) == 121 and predicted[-1]["error"]["stage"] == "regress"
    assert predicted[0]["probe"]["method"] == "ridge" and predicted[0]["prediction"]["parse_ok"] == {"arousal": True, "valence": True}
    # stdin is read twice (fit, then predict) through a spooled copy
    piped = runner.invoke(app, ["regress", "--method", "probe", "--allow-errors"], input=source.read_bytes())
    assert piped.exit_code == 0 and len(rows(piped.stdout)) == 121
    clean = write_records(tmp_path / "clean.jsonl", [r for r in predicted if "error" not in r and r["split"] == "test"])
    summary = json.loads(invoke("eval-mir", clean).stdout)
    arousal = summary["tasks"]["arousal"]
    assert arousal["task_type"] == "regression" and arousal["n_parsed"] == arousal["n"] > 0
    assert arousal["metrics"]["r2"]["value"] > 0.9 and "rmse" in arousal["metrics"] and "ccc" in arousal["metrics"]


def test_llm_answers_reach_eval_mir_with_unparsed_ones_counted(tmp_path):
    records = [{**r, "task": "arousal", "reference": {"arousal": 3.0 + i}} for i, r in enumerate(make_records(4))]
    answers = iter(["I would assign a 3 on the 1-9 scale.", "no idea", "About 5.", "Arousal: 6"])

    def generate(prompts):
        return [next(answers) for _ in prompts]

    out = list(regress_records(records, generate, targets=("arousal",), batch_size=3))
    assert [r["prediction"]["parse_ok"] for r in out] == [{"arousal": ok} for ok in (True, False, True, True)]
    summary = json.loads(invoke("eval-mir", write_records(tmp_path / "pred.jsonl", out)).stdout)
    arousal = summary["tasks"]["arousal"]
    assert arousal["n"] == 4 and arousal["n_parsed"] == 3 and "r2" in arousal["metrics"]


@pytest.mark.parametrize("args, message", [
    (["--scale", "energy=9,1"], "LOW < HIGH"),
    (["--scale", "energy"], "NAME=VALUE"),
    (["--model", "no-such-checkpoint"], "cannot load checkpoint no-such-checkpoint"),
])
def test_regress_bad_options_exit_2(tmp_path, args, message):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a"}\n')
    result = CliRunner().invoke(app, ["regress", str(source), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())


def test_regress_and_caption_share_the_generation_options(tmp_path, monkeypatch):
    # regress had no --top-p and passed 1.0 whatever was asked; both commands now take the same block
    import mllm.cli.caption as caption_cli
    import mllm.cli.regress as regress_cli

    seen = {}

    def fake_generator(model, device, dtype, max_new_tokens, sample, temperature, top_p, seed, samples=0):
        seen.update(top_p=top_p, temperature=temperature, sample=sample)

        def generate(prompts):
            return ["5"] * len(prompts)

        return generate

    source = write_records(tmp_path / "in.jsonl", make_records(2))
    for module, command in ((regress_cli, "regress"), (caption_cli, "caption")):
        seen.clear()
        monkeypatch.setattr(module, "open_generator", fake_generator)
        invoke(command, source, "--model", "m", "--sample", "--temperature", 0.7, "--top-p", 0.5)
        assert seen == {"top_p": 0.5, "temperature": 0.7, "sample": True}, command
