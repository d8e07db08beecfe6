"""The issue's slower check (marked slow, not in CI): SmolLM2-135M with the DSP encoder learns key.

The whole study on CPU: `mllm synth` (240 clips of 8 s) -> `mllm encode` (DSP, 1 frame/s) ->
`mllm build-instructions --tasks key` (70/10/20 split) -> `mllm sft` (900 steps, batch 8, LoRA
r=8, bf16 where the CPU runs it fast, `--transpose`, validation every 50 steps scored by the task,
`--select-by val_score --keep-best`) -> `mllm caption` on the 42 test clips from the last and the
best checkpoint -> `mllm eval-mir --split test`. Chance for the exact key is 1/24 (about 0.04).

Measured with these commands on a 2-core AMD EPYC VM (Zen 5; 2026-12-02, fp32, one thread, about
60 minutes): the last checkpoint 0.88 (95 % interval 0.76-0.98), weighted 0.90; the best
val_score checkpoint (step 700) 0.86 (0.74-0.95); parse rate 1.0. This test as written on the
same machine (bf16 on by default there, 26 minutes at 2 threads): 0.79 (0.64-0.90). With 450 steps (the recipe
until then) the last checkpoint gave 0.71 (0.57-0.83) on AMD and 0.69 (0.55-0.83) on Intel with
AMX: the validation score was still rising. Before `--transpose` (250 steps, best val_loss) an
AMD machine gave 0.19 from the best and 0.36 from the last checkpoint. With 22 valid clips
val_score is a noisy guide, so the bar is on the last checkpoint (docs/training.md): the
issue's goal, 0.7, below the measured interval.

    pytest -m slow tests/test_slow_smollm2_learns_key.py -s      # -s prints the curve and the scores
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.slow


def mllm(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run([sys.executable, "-m", "mllm.cli", *args], input=stdin, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return result.stdout


def test_smollm2_with_dsp_features_learns_key_well_above_chance(tmp_path):
    corpus = tmp_path / "corpus"
    mllm("synth", str(corpus), "--n", "240", "--seconds", "8", "--no-stdout")
    encoded = mllm("encode", str(corpus / "manifest.jsonl"), "--encoder", "dsp", "--frame-rate", "1")
    instructions = tmp_path / "instr.jsonl"
    mllm("build-instructions", "--tasks", "key", "--split-fractions", "0.7,0.1,0.2", "-o", str(instructions), stdin=encoded)
    metrics = mllm("sft", str(instructions), "-o", str(tmp_path / "run"), "--steps", "900", "--batch-size", "8",
                   "--lr", "1e-3", "--val-every", "50", "--keep-best", "--transpose", "--select-by", "val_score")
    validations = [(m["step"], round(m["val_loss"], 3), round(m["val_score"], 3))
                   for m in map(orjson.loads, metrics.splitlines()) if "val_loss" in m]
    print("\n(step, val_loss, val_score):", validations, file=sys.stderr)
    test = [r for r in map(orjson.loads, instructions.read_bytes().splitlines()) if r["split"] == "test"]
    scores = {}
    for checkpoint in ("run", "run-best"):  # the last step, and the best val_score
        answers = mllm("caption", "-", "--model", str(tmp_path / checkpoint),
                       stdin=b"".join(orjson.dumps(r) + b"\n" for r in test))
        key = orjson.loads(mllm("eval-mir", "--split", "test", "--bootstrap", "200", stdin=answers))["tasks"]["key"]
        accuracy = key["metrics"]["accuracy"]
        print(f"{checkpoint}: accuracy {accuracy['value']:.3f} ({accuracy.get('low')}-{accuracy.get('high')}), weighted "
              f"{key['metrics']['weighted_score']['value']:.3f}, parse rate {key['parse_rate']:.2f}, n {key['n']}", file=sys.stderr)
        scores[checkpoint] = key
    last = scores["run"]
    assert last["n"] == len(test) == 42
    assert last["parse_rate"] >= 0.9
    assert last["metrics"]["accuracy"]["value"] >= 0.7  # chance: 1/24; the goal; measured 0.88 (0.76-0.98)
