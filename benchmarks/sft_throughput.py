"""Training throughput of `mllm sft` against the Hugging Face `Trainer` on the same MusicLLM, and its FLOP/s.

Both sides train the same thing, in one process, one after the other:

- data: `--records` seeded instruction records, each with a random `audio_embedding` of `--frames`
  frames x 39 values (the size of the `dsp` encoder at 1 frame/s), a key question and its answer
  ("The key is F# major."), about 53 tokens each with SmolLM2's template;
- model: `MusicLLM.build` after `torch.manual_seed(seed)` (same projector, same LoRA rank, alpha,
  targets and dropout), projector standardised with the training frames: identical initial
  weights on both sides (checked);
- optimisation: AdamW on the trainable parameters, `lr * core.train.sft.lr_factor` (LambdaLR),
  `clip_grad_norm_(1.0)`, `--batch-size` records per micro-batch, `--grad-accum` micro-batches per
  step weighted by their answer tokens, bf16 autocast or not;
- order: the Trainer reads the micro-batches in mllm's order (`core.train.sft.epoch_order`, as a
  batch sampler), and the global RNG is set to the same state before its first step, so LoRA dropout
  draws the same masks: the two loss curves must agree to float tolerance (printed).

mllm: `core.train.sft.setup(SFTConfig(...), records)` and `for metrics in train(run)`, exactly what
`mllm sft` runs (the final checkpoint is written into a temporary folder, after the timed steps).
Hugging Face: `transformers.Trainer` with the same optimizer and scheduler passed in, a thin module
whose `forward(**batch fields, num_items_in_batch)` returns `{"loss": ...}` and a collator that
calls `MusicLLM.collate`; no evaluation, saving, reporting, logging or progress bar; no workers.
Two Trainer sides: "HF Trainer" computes the loss with `MusicLLM.forward` (the same arithmetic as
mllm: the ratio measures the loops alone); "HF Trainer, labels=" passes `labels` to the LLM as one
does with transformers alone (its loss takes the logits of every position; the same loss value).

Timing: wall time between the ends of consecutive optimizer steps (data collation, forward,
backward, clipping, optimizer and everything the loop does between steps), the first
`--warmup-steps` steps left out, the next `--steps` timed; mllm's ends are the `yield`s of
`train`, the Trainer's its `on_step_end` callbacks. Tokens are real tokens (the attention mask: the
prompt, the audio tokens and the answer), the same on both sides. The headline figure is the
median over the timed steps of (step tokens / step time), which a colleague's job stealing a core
for a few steps moves less than the overall mean (also printed). With `--repeats R` the two run R
times, in alternating order, and the medians over the repeats are reported.

FLOP/s. With the base weights frozen, a token costs about

    FLOPs per token = 4 (N - H) + 4 H a     (forward 2, backward 2 for the activation gradients; no weight gradients)

where N counts the weights that take part in matrix products: every linear layer of the LLM
(attention and MLP projections of every layer) plus the LM head H (tied to the embedding in
SmolLM2, but still a matrix product), not the embedding lookup; a is the share of positions that
predict an answer token, the only ones whose logits the loss needs. These are the FLOPs the task
requires, the same figure for every side: the "labels=" Trainer side, which runs the head on every
position, does more arithmetic for the same loss and shows it as a lower rate. Left out, and
printed as a share: the LoRA matrices (6 x their size per token: they do get weight gradients),
the projector (6 x its size per audio frame) and the attention scores (12 x layers x padded
length x attention width per token, forward and backward). Achieved FLOP/s = FLOPs per token x
real tokens/s (padding is paid for but not counted). Peak: the median time of a `torch.matmul` of
two 2048 x 2048 matrices (2 n^3 FLOPs) in float32 and in bfloat16, with the thread count training
uses, timed in the same run before and after the training; MFU = achieved / peak of the dtype the
matrix products run in (bfloat16 under `--bf16`, else float32).

    python benchmarks/sft_throughput.py                          # SmolLM2, batch 8, 2 + 15 steps, twice each
    python benchmarks/sft_throughput.py --no-bf16 --repeats 1
    python benchmarks/sft_throughput.py --llm /tmp/tiny-llm --steps 5 --warmup-steps 1   # smoke run (tests/tiny_llm.py)

On a CPU the result depends on the load: run it alone and report the load average it prints.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mllm.core.model import Batch, LoraSettings, MusicLLM
from mllm.core.train.sft import SFTConfig, answer_tokens, bf16_supported, epoch_order, lr_factor, setup, train

KEYS = [f"{tonic} {mode}" for mode in ("major", "minor")
        for tonic in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")]
QUESTIONS = ["What is the key of this piece?", "In which key is this music?", "What key is this song in?",
             "Identify the key and mode of this recording."]
DSP_DIM = 39  # the `dsp` encoder's embedding size
TRAINER_SIDES = {"mllm": "HF Trainer", "labels": "HF Trainer, labels="}  # TrainerModel's loss -> row name


def make_records(count: int, frames: int, seed: int = 0) -> list[dict]:
    """Key-question instruction records with random DSP-like embeddings (seeded)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        embedding = (rng.normal(size=(frames, DSP_DIM)) * 3 + rng.uniform(-20, 5, size=DSP_DIM)).astype(np.float16)
        records.append({"id": f"bench{i:04d}", "split": "train", "encoder": "dsp", "frame_rate": 1.0,
                        "audio_embedding": embedding,
                        "messages": [{"role": "user", "content": "<audio>\n" + QUESTIONS[rng.integers(len(QUESTIONS))]},
                                     {"role": "assistant", "content": f"The key is {KEYS[rng.integers(len(KEYS))]}."}]})
    return records


def sft_config(args, output: str) -> SFTConfig:
    return SFTConfig(llm=args.llm, steps=args.warmup_steps + args.steps, batch_size=args.batch_size,
                     grad_accum=args.grad_accum, lr=args.lr, bf16=args.bf16, output=output, seed=args.seed,
                     device="cpu")


def parameter_checksum(model: MusicLLM) -> float:
    return float(sum(p.detach().double().sum() for p in model.trainable_parameters()))


# ---- mllm ---------------------------------------------------------------------------------------


def run_mllm(args, records: list[dict]) -> dict:
    """`mllm sft`'s loop: setup() then the steps of train(); times the ends of the steps."""
    with tempfile.TemporaryDirectory() as work:
        run = setup(sft_config(args, str(Path(work) / "ckpt")), records)
        checksum = parameter_checksum(run.model)
        ends, losses, tokens = [time.perf_counter()], [], []
        for metrics in train(run):
            ends.append(time.perf_counter())
            losses.append(metrics["loss"])
            tokens.append(metrics["tokens_per_s"] * metrics["s_per_step"])  # the step's attention-mask tokens
        # (the final checkpoint was written after the last end)
        padded = padded_tokens(run.model, run.train_examples, args)
        del run
    gc.collect()
    return summarise("mllm", ends, losses, [round(t) for t in tokens], checksum, padded, args)


def micro_batch_order(n: int, args) -> list[list[int]]:
    """The indices of every micro-batch of the run, in mllm's order (docs/training.md): epoch e
    visits `sft.epoch_order(seed, e, n)`, `batch_size` at a time, the last micro-batch may be
    smaller, steps run across epoch ends. (Equal losses and tokens on both sides check it.)"""
    size, out, epoch, position = args.batch_size, [], 0, 0
    while len(out) < (args.warmup_steps + args.steps) * args.grad_accum:
        if position * size >= n:
            epoch, position = epoch + 1, 0
        out.append(epoch_order(args.seed, epoch, n)[position * size:(position + 1) * size])
        position += 1
    return out


def padded_tokens(model: MusicLLM, examples, args) -> int:
    """Positions the matrix products run over in the timed steps (B x L of each micro-batch)."""
    order = micro_batch_order(len(examples), args)[args.warmup_steps * args.grad_accum:]
    return sum(model.collate([examples[i] for i in chosen], "right").input_ids.numel() for chosen in order)


# ---- Hugging Face Trainer -----------------------------------------------------------------------


class TrainerModel(nn.Module):
    """The Trainer's view of a MusicLLM: keyword tensors in, {"loss"} out.

    `loss="mllm"`: `MusicLLM.forward` (the LM head on answer positions only), so the two sides do the
    same arithmetic and the ratio measures the loops. `loss="labels"`: what one writes for the
    Trainer with transformers alone, `labels=` passed to the LLM, whose loss takes the logits of
    every position (the same value). With `num_items_in_batch` (the step's answer tokens, counted by
    the Trainer) the micro-batch mean is weighted by its share of them, as mllm does; the Trainer
    then does not divide by grad_accum."""

    def __init__(self, model: MusicLLM, loss: str = "mllm"):
        super().__init__()
        self.model = model
        self.loss = loss
        self.losses: list[tuple[float, int]] = []  # (micro-batch mean loss, answer tokens)

    def forward(self, num_items_in_batch=None, **fields):
        batch = Batch(**fields)
        if self.loss == "labels":
            loss = self.model.llm(inputs_embeds=self.model.embed(batch), attention_mask=batch.attention_mask,
                                  position_ids=batch.position_ids, labels=batch.labels, use_cache=False).loss
        else:
            loss = self.model(batch)
        weight = answer_tokens(batch)
        self.losses.append((float(loss.detach()), weight))
        if num_items_in_batch is None:
            return {"loss": loss}
        return {"loss": loss * (weight / num_items_in_batch)}


def run_trainer(args, records: list[dict], loss: str = "mllm") -> dict:
    import transformers
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    transformers.logging.set_verbosity_error()
    config = sft_config(args, "unused")
    torch.manual_seed(config.seed)  # as sft.setup: the same initial projector and LoRA weights
    model = MusicLLM.build(config.llm, encoder={"name": "dsp", "dim": DSP_DIM, "frame_rate": 1.0},
                           projector={"kind": config.projector, "stride": config.stride},
                           lora=LoraSettings(config.lora_rank, config.lora_alpha, config.lora_dropout,
                                             list(config.lora_targets)),
                           system_prompt=config.system_prompt, device="cpu")
    examples = [model.example(r) for r in records]
    frames = torch.cat([e.audio for e in examples]).double()
    model.projector.set_standardization(frames.mean(0).float(), frames.std(0, correction=0).clamp_min(1e-6).float())
    checksum = parameter_checksum(model)
    rng_state = torch.get_rng_state()  # what mllm's first step starts from
    total = args.warmup_steps + args.steps
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.warmup, total, config.min_lr_ratio))
    order = micro_batch_order(len(examples), args)
    tokens_seen: list[int] = []

    def collate(chosen):
        batch = model.collate(chosen, "right")
        tokens_seen.append(int(batch.attention_mask.sum()))
        return {name: getattr(batch, name) for name in Batch.__dataclass_fields__}

    class Timer(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_train_begin(self, arguments, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def on_step_begin(self, arguments, state, control, **kwargs):
            if state.global_step == 0:  # after the DataLoader drew its seed: same dropout masks as mllm
                torch.set_rng_state(rng_state)

        def on_step_end(self, arguments, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    class SameOrderTrainer(Trainer):
        def get_train_dataloader(self):
            loader = torch.utils.data.DataLoader(examples, batch_sampler=order, collate_fn=collate, num_workers=0)
            return self.accelerator.prepare(loader)

    wrapper = TrainerModel(model, loss)
    timer = Timer()
    with tempfile.TemporaryDirectory() as work:
        arguments = TrainingArguments(
            output_dir=work, per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=args.grad_accum, max_steps=total, learning_rate=config.lr,
            weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, bf16=args.bf16,
            use_cpu=True, seed=config.seed, report_to="none", logging_strategy="no", save_strategy="no",
            eval_strategy="no", disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False,
            remove_unused_columns=False)
        trainer = SameOrderTrainer(model=wrapper, args=arguments, train_dataset=examples,
                                   data_collator=collate, optimizers=(optimizer, scheduler), callbacks=[timer])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        padded = padded_tokens(model, examples, args)
    losses = []
    for step in range(total):
        parts = wrapper.losses[step * args.grad_accum:(step + 1) * args.grad_accum]
        losses.append(sum(loss * n for loss, n in parts) / max(1, sum(n for _, n in parts)))
    step_tokens = [sum(tokens_seen[s * args.grad_accum:(s + 1) * args.grad_accum]) for s in range(total)]
    del trainer, wrapper, optimizer, scheduler
    gc.collect()
    return summarise(TRAINER_SIDES[loss], timer.ends, losses, step_tokens, checksum, padded, args)


# ---- figures ------------------------------------------------------------------------------------


def summarise(name: str, ends: list[float], losses: list[float], step_tokens: list[int], checksum: float,
              padded: int, args) -> dict:
    """ends[0] = before the first step, ends[k] = end of step k."""
    w, n = args.warmup_steps, args.steps
    seconds = ends[w + n] - ends[w]
    tokens = sum(step_tokens[w:w + n])
    intervals = np.diff(ends[w:w + n + 1])
    rates = np.array(step_tokens[w:w + n]) / intervals
    return {"name": name, "seconds": seconds, "s_per_step": seconds / n, "tokens": tokens,
            "tokens_per_s": tokens / seconds, "median_s_per_step": float(np.median(intervals)),
            "median_tokens_per_s": float(np.median(rates)), "padded_tokens": padded, "losses": losses,
            "step_min": float(intervals.min()), "step_max": float(intervals.max()), "checksum": checksum,
            "warmup_seconds": ends[w] - ends[0]}


def matmul_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 8) -> float:
    """FLOP/s of torch.matmul on two size x size matrices (median of `repeats` after a warm-up)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


def flop_terms(args, records: list[dict]) -> dict:
    """N (weights in matrix products, LoRA and the projector apart) and the left-out terms per token."""
    config = sft_config(args, "unused")
    torch.manual_seed(config.seed)
    model = MusicLLM.build(config.llm, encoder={"name": "dsp", "dim": DSP_DIM, "frame_rate": 1.0},
                           projector={"kind": config.projector, "stride": config.stride},
                           lora=LoraSettings(config.lora_rank, config.lora_alpha, config.lora_dropout,
                                             list(config.lora_targets)),
                           system_prompt=config.system_prompt, device="cpu")
    matmul, lora = 0, 0
    for name, module in model.llm.named_modules():
        if isinstance(module, nn.Linear):
            if "lora_" in name:
                lora += module.weight.numel()
            else:
                matmul += module.weight.numel()
    projector = sum(m.weight.numel() for m in model.projector.modules() if isinstance(m, nn.Linear))
    llm_config = model.llm.get_base_model().config
    layers = llm_config.num_hidden_layers
    heads = llm_config.num_attention_heads
    width = heads * (getattr(llm_config, "head_dim", None) or llm_config.hidden_size // heads)
    examples = [model.example(r) for r in records]
    lengths = [len(e.before) + len(e.after) + len(e.answer) + model.projector.output_length(len(e.audio)) for e in examples]
    frames_per_token = float(np.mean([len(e.audio) for e in examples])) / float(np.mean(lengths))
    embedding = model.llm.get_input_embeddings().weight.numel()
    head = model.llm.get_output_embeddings().weight.numel()
    answer_share = float(np.mean([len(e.answer) for e in examples])) / float(np.mean(lengths))
    del model
    gc.collect()
    base = 4 * (matmul - head) + 4 * head * answer_share  # the LM head is needed at answer positions only
    left_out = {"LoRA": 6 * lora, "projector": 6 * projector * frames_per_token,
                "attention scores": 12 * layers * float(np.mean(lengths)) * width}
    return {"N": matmul, "embedding": embedding, "lora": lora, "projector": projector, "per_token": base,
            "left_out": left_out, "mean_length": float(np.mean(lengths)), "head": head, "answer_share": answer_share}


def median_of(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="smollm2", help="LLM: smollm2 (default), a folder or a hub id in the local cache")
    parser.add_argument("--steps", type=int, default=15, help="timed optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps run first and not timed")
    parser.add_argument("--batch-size", type=int, default=8, help="records per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--records", type=int, default=64, help="training records (the order cycles through epochs)")
    parser.add_argument("--frames", type=int, default=8, help="audio frames per record (39 values each)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast (default: as `mllm sft`: on where a bf16 matmul measures >= 1.3x fp32)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side, in alternating order")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.bf16 is None:
        args.bf16 = bf16_supported("cpu")
    if args.steps < 1 or args.warmup_steps < 0 or args.repeats < 1:
        parser.error("--steps >= 1, --warmup-steps >= 0, --repeats >= 1")

    records = make_records(args.records, args.frames, args.seed)
    terms = flop_terms(args, records)
    threads = torch.get_num_threads()
    print(f"LLM {args.llm}: N = {terms['N'] / 1e6:.4g} M weights in matrix products (embedding "
          f"{terms['embedding'] / 1e6:.1f} M not counted, LM head counted), LoRA {terms['lora'] / 1e6:.2f} M, "
          f"projector {terms['projector'] / 1e6:.2f} M; {args.records} records of {args.frames} frames, "
          f"{terms['mean_length']:.1f} tokens on average", flush=True)
    print(f"batch {args.batch_size} x grad-accum {args.grad_accum}, {args.warmup_steps} warm-up + {args.steps} timed "
          f"steps, bf16 {'on' if args.bf16 else 'off'}, repeats {args.repeats}; torch {torch.__version__}, "
          f"threads {threads}, load average {os.getloadavg()[0]:.2f}", flush=True)
    peaks = {"float32": [matmul_flops(torch.float32)], "bfloat16": [matmul_flops(torch.bfloat16)]}
    print(f"matmul 2048^2 peak: float32 {peaks['float32'][0] / 1e9:.1f} GFLOP/s, "
          f"bfloat16 {peaks['bfloat16'][0] / 1e9:.1f} GFLOP/s", flush=True)

    sides = {"mllm": run_mllm, TRAINER_SIDES["mllm"]: run_trainer,
             TRAINER_SIDES["labels"]: lambda a, r: run_trainer(a, r, "labels")}
    results = {name: [] for name in sides}
    for repeat in range(args.repeats):
        names = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for name in names:
            result = sides[name](args, records)
            results[name].append(result)
            print(f"  repeat {repeat + 1} {name:10s}: {result['s_per_step']:.3f} s/step mean, "
                  f"{result['median_s_per_step']:.3f} median (steps {result['step_min']:.3f}-{result['step_max']:.3f} s); "
                  f"tokens/s {result['tokens_per_s']:.1f} overall, {result['median_tokens_per_s']:.1f} median of the steps; "
                  f"loss {result['losses'][0]:.4f} -> {result['losses'][-1]:.4f}; load average {os.getloadavg()[0]:.2f}",
                  flush=True)
    peaks["float32"].append(matmul_flops(torch.float32))
    peaks["bfloat16"].append(matmul_flops(torch.bfloat16))
    peak_dtype = "bfloat16" if args.bf16 else "float32"
    peak = max(peaks[peak_dtype])
    print(f"matmul 2048^2 peak after: float32 {peaks['float32'][1] / 1e9:.1f} GFLOP/s, "
          f"bfloat16 {peaks['bfloat16'][1] / 1e9:.1f} GFLOP/s; MFU against the higher {peak_dtype} figure "
          f"({peak / 1e9:.1f} GFLOP/s)")

    print(f"\nFLOPs per token = 4 (N - head) + 4 head x answer share = {terms['per_token'] / 1e6:.4g} M "
          f"(head {terms['head'] / 1e6:.1f} M, answer share {terms['answer_share']:.3f}; left out: "
          + ", ".join(f"{k} {v / terms['per_token']:.1%}" for k, v in terms["left_out"].items()) + ")")
    print("| loop | s/step: median step (mean) | tokens/s: median step (overall) | achieved GFLOP/s | MFU | "
          "loss, step 1 -> last |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, runs in results.items():
        rate = median_of(runs, "median_tokens_per_s")
        achieved = rate * terms["per_token"]
        print(f"| {name} | {median_of(runs, 'median_s_per_step'):.3f} ({median_of(runs, 's_per_step'):.3f}) | "
              f"{rate:.1f} ({median_of(runs, 'tokens_per_s'):.1f}) | {achieved / 1e9:.1f} | {achieved / peak:.1%} | "
              f"{runs[0]['losses'][0]:.4f} -> {runs[0]['losses'][-1]:.4f} |")
    goals = {TRAINER_SIDES["labels"]: 1.3}  # issue 10 part 3: >= 1.1x the same-forward Trainer, >= 1.3x the labels= one
    for name in list(sides)[1:]:
        ratio = median_of(results["mllm"], "median_tokens_per_s") / median_of(results[name], "median_tokens_per_s")
        overall = median_of(results["mllm"], "tokens_per_s") / median_of(results[name], "tokens_per_s")
        goal = goals.get(name, 1.1)
        print(f"\nratio mllm / {name}, tokens/s of the median step: {ratio:.3f} (overall: {overall:.3f}); "
              f"goal >= {goal}: {'met' if ratio >= goal else 'NOT met'}")
    labels = results[TRAINER_SIDES["labels"]][0]
    print(f"max |loss difference| mllm vs {TRAINER_SIDES['labels']}: "
          f"{max(abs(a - b) for a, b in zip(results['mllm'][0]['losses'], labels['losses'])):.2e}")
    ours, theirs = results["mllm"][0], results["HF Trainer"][0]
    difference = max(abs(a - b) for a, b in zip(ours["losses"], theirs["losses"]))
    same_start = abs(ours["checksum"] - theirs["checksum"]) <= 1e-9 * max(1.0, abs(ours["checksum"]))
    print(f"same initial weights: {'yes' if same_start else 'NO'}; same tokens per timed run: "
          f"{'yes' if ours['tokens'] == theirs['tokens'] else 'NO'} ({ours['tokens']} real of "
          f"{ours['padded_tokens']} padded positions); max |loss difference| over {len(ours['losses'])} steps: "
          f"{difference:.2e}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}", file=sys.stdout)


if __name__ == "__main__":
    main()
