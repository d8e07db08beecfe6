"""Completions per second and peak memory of mllm's GRPO loop against TRL's GRPOTrainer, side by side.

    .venv/bin/pip install -e '.[bench]'             # TRL 1.16.0: the yardstick only, not a dependency of mllm
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/grpo_throughput.py --steps 3 --repeats 2
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/grpo_throughput.py --steps 3 --repeats 2 --bf16   # both in bf16

The same text-only task on both (TRL trains text models only): SmolLM2-135M-Instruct (the
embedded GGUF, converted once to safetensors), a fresh LoRA adapter (r=8, alpha 16, q/k/v/o, no
dropout), 4 prompts x 4 completions per step, up to 16 new tokens at temperature 1, the dapo loss,
beta 0 (no reference pass), one update per batch, AdamW at 1e-5, fp32 on the CPU (or, with
`--bf16`, bf16 on both sides: mllm's `--bf16`, which autocasts sampling and the log-prob passes
and keeps the frozen base's linear weights in bf16, and TRL's `bf16=True`, its autocast), and the same
reward function (core/train/rewards.py: key task score + format) for both. Each run is a fresh
process; the runs alternate (mllm, TRL, mllm, TRL, ...) so that drift of the machine hits both.
Completions/s = completions generated in the timed steps / their wall time (model loading and
a first warm-up step are not timed); peak memory = the process's maximum resident set.
Goal (issue 10): mllm >= 1.5x TRL's completions/s with no more memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PROMPTS = ["Name a musical key.", "Which key would you write a sad song in?", "Give me a major key.",
           "What key is a bright fanfare usually in?", "Name a minor key.", "Pick a key for a lullaby.",
           "Which key has no sharps or flats?", "Name a key with two sharps."]
GROUP, PROMPTS_PER_STEP, MAX_NEW_TOKENS, LR = 4, 4, 16, 1e-5


def records() -> list[dict]:
    return [{"id": f"p{i}", "split": "train", "task": "key", "answer": {"key": "C major"},
             "messages": [{"role": "user", "content": text}]} for i, text in enumerate(PROMPTS)]


def run_mllm(steps: int, bf16: bool) -> dict:
    from mllm.core.model.llm import resolve_llm
    from mllm.core.train.grpo import GRPOConfig, setup, train

    with tempfile.TemporaryDirectory() as folder:
        config = GRPOConfig(llm=resolve_llm("smollm2"), reward="task:1.0,format:0.2", group_size=GROUP,
                            batch_size=PROMPTS_PER_STEP, steps=steps + 1, lr=LR, max_new_tokens=MAX_NEW_TOKENS,
                            loss_type="dapo", beta=0.0, lora_rank=8, lora_alpha=16, bf16=bf16,
                            output=os.path.join(folder, "g"))
        run = setup(config, records())
        timed, completions, started = 0, 0, None
        for metrics in train(run):
            if metrics["step"] == 1:  # warm-up
                started = time.perf_counter()
                continue
            completions += metrics["groups_sampled"] * GROUP
            timed += 1
        seconds = time.perf_counter() - started
    return {"completions_per_s": completions / seconds, "steps": timed}


def run_trl(steps: int, bf16: bool) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mllm.core.evaluation.options import EvalOptions
    from mllm.core.model.llm import resolve_llm
    from mllm.core.train.rewards import Reward

    reward = Reward.parse("task:1.0,format:0.2", options=EvalOptions())
    prepared = reward.prepare(records()[0])

    def key_reward(prompts, completions, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [reward(prepared, text)[0] for text in texts]

    class Clock(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    source = resolve_llm("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source)
    dataset = Dataset.from_list([{"prompt": r["messages"]} for r in records()] * (steps + 2))
    with tempfile.TemporaryDirectory() as folder:
        args = GRPOConfig(output_dir=folder, per_device_train_batch_size=PROMPTS_PER_STEP * GROUP, num_generations=GROUP,
                          max_completion_length=MAX_NEW_TOKENS, max_steps=steps + 1, learning_rate=LR, beta=0.0,
                          loss_type="dapo", num_iterations=1, temperature=1.0, top_p=1.0, logging_steps=1,
                          report_to=[], save_strategy="no", use_cpu=True, bf16=bf16, seed=0)
        clock = Clock()
        trainer = GRPOTrainer(model=model, reward_funcs=key_reward, args=args, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[clock],
                              peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                     task_type="CAUSAL_LM"))
        trainer.train()
    seconds = clock.times[-1] - clock.times[0]  # from the end of the warm-up step to the end of the last
    return {"completions_per_s": steps * PROMPTS_PER_STEP * GROUP / seconds, "steps": steps}


def child(which: str, steps: int, bf16: bool) -> None:
    result = (run_mllm if which == "mllm" else run_trl)(steps, bf16)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternated")
    parser.add_argument("--bf16", action="store_true", help="bf16 on both sides (default: fp32 on both)")
    parser.add_argument("--child", choices=["mllm", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.bf16)
        return
    results = {"mllm": [], "trl": []}
    for _ in range(args.repeats):
        for which in ("mllm", "trl"):
            done = subprocess.run([sys.executable, __file__, "--child", which, "--steps", str(args.steps)] + ["--bf16"] * args.bf16,
                                  capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                sys.exit(f"{which} failed:\n{done.stderr[-3000:]}")
            results[which].append(json.loads(lines[-1][7:]))
            print(which, results[which][-1], file=sys.stderr)
    cps = {k: statistics.median(r["completions_per_s"] for r in v) for k, v in results.items()}
    peak = {k: statistics.median(r["peak_mib"] for r in v) for k, v in results.items()}
    print(f"{'bf16' if args.bf16 else 'fp32'} on both sides", file=sys.stderr)
    print(f"completions/s (median of {args.repeats}): mllm {cps['mllm']:.2f}, TRL {cps['trl']:.2f}, "
          f"mllm / TRL = {cps['mllm'] / cps['trl']:.2f} (goal >= 1.5)")
    print(f"peak MiB: mllm {peak['mllm']:.0f}, TRL {peak['trl']:.0f}, mllm / TRL = {peak['mllm'] / peak['trl']:.2f} (goal <= 1)")


if __name__ == "__main__":
    main()
