"""`mllm demo`: the whole study in one folder, offline, on a CPU, as the shell pipeline a user reruns.

    corpus/                 mllm synth                 labelled clips (key, tempo, energy, caption known exactly)
    features.jsonl          mllm extract-features      the DSP analysis (its own key and tempo estimates)
    clips.jsonl             mllm encode                audio_embedding per clip (DSP features by default)
    instructions/TASK.jsonl mllm build-instructions    one file per task: key, tempo, energy, caption (70/10/20 split)
    llm/                    build_tiny_llm             --fast only: a tiny random LLM whose tokenizer knows these texts
    runs/sft                mllm sft                   every task at once (SmolLM2-135M-Instruct + LoRA by default)
    runs/grpo               mllm grpo                  SFT + GRPO on energy (a numeric target SFT has not saturated)
    answers/probe.mir.jsonl mllm regress --method probe  ridge on time-pooled embeddings (tempo, energy)
    answers/{chance,prior,dsp}.*  write_baselines      answer files of the rows that need no model
    shuffled/TASK.jsonl     shuffle_audio              the test split with embeddings permuted across clips
    answers/SYSTEM.*.jsonl  mllm caption               SFT, SFT + GRPO and SFT-on-shuffled-audio answer the test split
    scores/                 mllm eval-mir, eval-caption  every row through the same two scorers
    results.json, .png      write_report               the table's figures, and the plots

Each stage is one line of bash run in FOLDER (`plan` builds them; `run_demo` runs them in turn and
writes them, as they are, to FOLDER/pipeline.sh). The lines that are not `mllm` commands call the
functions of this module through `"$PYTHON" -c`, so every figure can be traced to a command.
FOLDER/stages.json records each finished stage with its line: a rerun with the same options reuses
the finished stages (a stopped demo continues), one with other options is refused unless
`overwrite`, which reruns every stage and removes its outputs first. Decisions: docs/demo.md.
"""

from __future__ import annotations

import json
import math
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["DemoOptions", "Stage", "DemoError", "plan", "check_folder", "run_demo", "write_baselines", "shuffle_audio",
           "build_tiny_llm", "write_report", "results_table", "ROWS", "TASKS"]

# The rows of the table, in order: label, and whether the row is a model answering the test split.
ROWS = {
    "chance": "chance",
    "prior": "prior (majority / training mean)",
    "dsp": "DSP analysis (extract-features)",
    "probe": "ridge probe (regress --method probe)",
    "sft": "SFT",
    "grpo": "SFT + GRPO (energy)",
    "shuffled": "SFT, shuffled audio",
}
MODEL_ROWS = ("sft", "grpo", "shuffled")
# task -> (the metrics the table shows, the scorer)
TASKS = {
    "key": (("accuracy", "weighted_score"), "eval-mir"),
    "tempo": (("acc1", "acc2"), "eval-mir"),
    "energy": (("mae", "r2"), "eval-mir"),
    "caption": (("rouge_l_f", "cider"), "eval-caption"),
}
MIR_TASKS = ("key", "tempo", "energy")
# Which rows apply to which task ("-" in the table otherwise).
APPLIES = {
    "dsp": ("key", "tempo"),  # extract-features estimates key and tempo, not energy or captions
    "probe": ("tempo", "energy"),  # a regressor: numeric targets only
}
KEYS = [f"{tonic} {mode}" for mode in ("major", "minor")
        for tonic in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")]


class DemoError(RuntimeError):
    """A stage failed or the folder cannot be used; the message says which and why."""


@dataclass
class DemoOptions:
    """What the demo runs. `fast` picks the FAST sizes for every size left at None."""

    folder: Path
    fast: bool = False
    llm: str | None = None  # None: smollm2 (default) or, with fast, a tiny random LLM built in FOLDER/llm
    encoder: str = "dsp"
    frame_rate: float = 1.0
    device: str | None = None  # passed to encode, sft, grpo and caption when given
    threads: int | None = None  # passed to every stage that computes when given
    clips: int | None = None
    seconds: float | None = None
    sft_steps: int | None = None
    grpo_steps: int | None = None
    seed: int = 0
    bootstrap: int = 1000
    overwrite: bool = False

    def size(self, name: str):
        value = getattr(self, name, None)
        return value if value is not None else (FAST if self.fast else DEFAULT)[name]


# Sizes measured on a 2-core AMD EPYC (docs/demo.md, benchmarks/RESULTS.md "mllm demo").
DEFAULT = {"clips": 200, "seconds": 8.0, "sample_rate": 22050, "sft_steps": 150, "batch_size": 8, "lr": 1e-3,
           "warmup": 10, "lora": "", "grpo_steps": 8, "grpo_batch": 4, "group_size": 4, "grpo_lr": 1e-4,
           "mir_tokens": 24, "caption_tokens": 48}
# The tiny random LLM learns the answers' form only with adapters on its MLPs too.
FAST = {"clips": 30, "seconds": 4.0, "sample_rate": 16000, "sft_steps": 120, "batch_size": 8, "lr": 1e-2,
        "warmup": 5, "lora": " --lora-rank 16 --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        "grpo_steps": 2, "grpo_batch": 2, "group_size": 2, "grpo_lr": 1e-3,
        "mir_tokens": 16, "caption_tokens": 32}
SPLIT = "0.7,0.1,0.2"  # train, valid, test: a larger test split than build-instructions' default
# METEOR 1.5 starts a Java VM per call (~16 s of each eval-caption here): left out of the table;
# `mllm eval-caption answers/sft.caption.jsonl --split test` gives it (docs/demo.md).
CAPTION_METRICS = "bleu,rouge,cider"


@dataclass
class Stage:
    name: str
    line: str  # one line of bash, run in FOLDER
    outputs: list[str] = field(default_factory=list)  # paths (relative to FOLDER) it writes


# ---- the plan ----------------------------------------------------------------------------------


def _q(value) -> str:
    return shlex.quote(str(value))


def _python_call(function: str, *args, **kwargs) -> str:
    """A stage line calling a function of this module: "$PYTHON" -c '...'."""
    arguments = ", ".join([*map(json.dumps, args), *(f"{k}={json.dumps(v)}" for k, v in kwargs.items())])
    return f"\"$PYTHON\" -c {_q(f'from mllm.core.demo import {function}; {function}({arguments})')}"


def plan(options: DemoOptions) -> list[Stage]:
    """The stages of the demo, in order, as the bash lines that run them."""
    size = options.size
    threads = f" --threads {options.threads}" if options.threads else ""
    device = f" --device {_q(options.device)}" if options.device else ""
    llm = options.llm or ("llm" if options.fast else "smollm2")
    encoder = options.encoder
    # Transposition rolls chroma columns: only for DSP encoders that have them (docs/training.md).
    transpose = " --transpose" if encoder == "dsp" or "chroma" in encoder.split("+") else ""
    stages = [
        Stage("synth", f"mllm synth corpus --n {size('clips')} --seconds {size('seconds')} --sample-rate "
                       f"{size('sample_rate')} --seed {options.seed} --no-stdout{threads}", ["corpus"]),
        Stage("extract-features", f"mllm extract-features corpus/manifest.jsonl -o features.jsonl{threads}",
              ["features.jsonl"]),
        Stage("encode", f"mllm encode features.jsonl --encoder {_q(encoder)} --frame-rate {options.frame_rate}"
                        f"{device}{threads} -o clips.jsonl", ["clips.jsonl"]),
        Stage("build-instructions", "for task in key tempo energy caption; do mllm build-instructions clips.jsonl "
                                    f"--tasks $task --split-fractions {SPLIT} --seed {options.seed} -o "
                                    "instructions/$task.jsonl; done",
              [f"instructions/{task}.jsonl" for task in TASKS]),
    ]
    if options.fast and not options.llm:
        stages.append(Stage("tiny-llm", _python_call("build_tiny_llm", "llm", "instructions", seed=options.seed),
                            ["llm"]))
    every_task = " ".join(f"instructions/{task}.jsonl" for task in TASKS)
    stages += [
        Stage("sft", f"cat {every_task} | mllm sft - --llm {_q(llm)} -o runs/sft --steps {size('sft_steps')} "
                     f"--batch-size {size('batch_size')} --lr {size('lr')} --warmup {size('warmup')} "
                     f"--val-every {max(1, size('sft_steps') // 5)}{size('lora')}{transpose} --seed {options.seed}{device}{threads}"
                     " > runs/sft.metrics.jsonl", ["runs/sft", "runs/sft.metrics.jsonl"]),
        Stage("grpo", f"mllm grpo instructions/energy.jsonl --checkpoint runs/sft -o runs/grpo --steps "
                      f"{size('grpo_steps')} --batch-size {size('grpo_batch')} --group-size {size('group_size')} "
                      f"--lr {size('grpo_lr')} --beta 0.04 --regression-shape gaussian --max-new-tokens "
                      f"{size('mir_tokens')} --seed {options.seed}{device}{threads} > runs/grpo.metrics.jsonl",
              ["runs/grpo", "runs/grpo.metrics.jsonl"]),
        Stage("probe", "cat instructions/tempo.jsonl instructions/energy.jsonl | mllm regress - --method probe "
                       f"--targets tempo_bpm,energy --split test{threads} -o answers/probe.mir.jsonl",
              ["answers/probe.mir.jsonl"]),
        Stage("baselines", _python_call("write_baselines", "instructions", "answers", seed=options.seed),
              [f"answers/{row}.{part}.jsonl" for row in ("chance", "prior") for part in ("mir", "caption")]
              + ["answers/dsp.mir.jsonl"]),
        Stage("shuffle-audio", _python_call("shuffle_audio", "instructions", "shuffled", seed=options.seed),
              [f"shuffled/{task}.jsonl" for task in TASKS]),
    ]
    for row in MODEL_ROWS:
        model = "runs/sft" if row == "shuffled" else f"runs/{row}"
        folder = "shuffled" if row == "shuffled" else "instructions"
        inputs = " ".join(f"{folder}/{task}.jsonl" for task in MIR_TASKS)
        stages += [
            Stage(f"answer {row}: mir", f"cat {inputs} | mllm caption - --model {model} --split test "
                                        f"--max-new-tokens {size('mir_tokens')}{device}{threads} "
                                        f"-o answers/{row}.mir.jsonl", [f"answers/{row}.mir.jsonl"]),
            Stage(f"answer {row}: caption", f"mllm caption {folder}/caption.jsonl --model {model} --split test "
                                            f"--max-new-tokens {size('caption_tokens')}{device}{threads} "
                                            f"-o answers/{row}.caption.jsonl", [f"answers/{row}.caption.jsonl"]),
        ]
    caption_rows = [row for row in ROWS if "caption" in APPLIES.get(row, TASKS)]
    stages += [
        Stage("eval-mir", "mllm eval-mir " + " ".join(f"answers/{row}.mir.jsonl" for row in ROWS)
              + f" --split test --bootstrap {options.bootstrap} --seed {options.seed}{threads} -o scores/mir.json",
              ["scores/mir.json"]),
        Stage("eval-caption", f"for system in {' '.join(caption_rows)}; do mllm eval-caption "
                              f"answers/$system.caption.jsonl --split test --metrics {CAPTION_METRICS} --bootstrap {options.bootstrap} "
                              f"--seed {options.seed}{threads} -o scores/$system.caption.json; done",
              [f"scores/{row}.caption.json" for row in caption_rows]),
        Stage("report", _python_call("write_report", "."), ["results.json", "results.png"]),
    ]
    return stages


# ---- running it --------------------------------------------------------------------------------


def prelude() -> str:
    """The lines every stage runs after: strict bash, and `mllm` as this Python's module."""
    return (f"set -euo pipefail\nPYTHON=${{PYTHON:-{_q(sys.executable)}}}\n"
            "mllm() { \"$PYTHON\" -m mllm.cli \"$@\"; }\n")


def pipeline_script(stages: list[Stage], folder: Path) -> str:
    """FOLDER/pipeline.sh: the stages as one script that reruns the demo by hand."""
    lines = ["#!/usr/bin/env bash",
             f"# Written by `mllm demo` ({time.strftime('%Y-%m-%d %H:%M')}): the exact commands it ran, in order.",
             "# Each line reruns one stage; paths are relative to the demo folder.",
             "cd \"$(dirname \"$0\")\"", prelude().rstrip(), "mkdir -p instructions runs answers shuffled scores logs", ""]
    for number, stage in enumerate(stages, 1):
        lines += [f"# [{number}/{len(stages)}] {stage.name}", stage.line]
    return "\n".join(lines) + "\n"


def _load_done(folder: Path) -> list[dict]:
    path = folder / "stages.json"
    return json.loads(path.read_text())["stages"] if path.exists() else []


def _save_done(folder: Path, done: list[dict]) -> None:
    path = folder / "stages.json"
    path.with_suffix(".json.partial").write_text(json.dumps({"stages": done}, indent=1))
    path.with_suffix(".json.partial").rename(path)


def check_folder(folder: Path, stages: list[Stage], overwrite: bool) -> list[dict]:
    """The finished stages that can be reused. Refuses (DemoError) a folder that holds something
    other than this demo, or this demo with other options, unless `overwrite`."""
    if not folder.exists() or not any(folder.iterdir()):
        return []
    if overwrite:
        return []
    done = _load_done(folder)
    if not done and not (folder / "demo.json").exists():  # demo.json is written before the first stage
        raise DemoError(f"{folder} is not empty and holds no demo (no demo.json): choose another folder, "
                        "or pass --overwrite to run the demo into it")
    for record, stage in zip(done, stages):
        if record["line"] != stage.line:
            raise DemoError(f"{folder} holds a demo run with other options (stage {stage.name!r} ran as "
                            f"{record['line']!r}): pass --overwrite to rerun it, or choose another folder")
    return done


def _remove(folder: Path, outputs: Iterable[str]) -> None:
    for name in outputs:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def run_stage(stage: Stage, folder: Path, log: Path, threads: int | None) -> float:
    """Run one stage's line with bash in `folder`, its stderr to `log`; its wall seconds."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    with open(log, "wb") as err:
        # A stage's data goes where its line sends it; anything else it prints goes to its log.
        result = subprocess.run(["bash", "-c", prelude() + stage.line], cwd=folder, stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, env=env, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise DemoError(f"stage {stage.name!r} failed (exit {result.returncode}) after {seconds:.0f} s; its log is "
                        f"{log}:\n{tail}\nrerun it by hand: cd {folder} && bash pipeline.sh (or its line)")
    return seconds


def run_demo(options: DemoOptions, console) -> dict:
    """Run (or continue) the demo in options.folder; print progress and the table on `console`
    (stderr). Returns the results (also in FOLDER/results.json)."""
    folder = options.folder.resolve()
    stages = plan(options)
    done = check_folder(folder, stages, options.overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("instructions", "runs", "answers", "shuffled", "scores", "logs"):
        (folder / sub).mkdir(exist_ok=True)
    (folder / "pipeline.sh").write_text(pipeline_script(stages, folder))
    (folder / "demo.json").write_text(json.dumps({**asdict(options), "folder": str(folder)}, indent=1, default=str))
    console.print(f"mllm demo: {len(stages)} stages into {folder} (the commands: {folder / 'pipeline.sh'})",
                  highlight=False)
    reusing = True
    finished: list[dict] = []
    total_started = time.perf_counter()
    for number, stage in enumerate(stages, 1):
        label = f"[{number:>2}/{len(stages)}] {stage.name}"
        previous = done[number - 1] if reusing and number - 1 < len(done) else None
        if previous and previous["line"] == stage.line and all((folder / o).exists() for o in stage.outputs):
            finished.append(previous)
            console.print(f"{label}: reused ({previous['seconds']:.1f} s when it ran)", highlight=False)
            continue
        reusing = False
        _remove(folder, stage.outputs)
        console.print(f"{label}  $ {stage.line}", highlight=False, markup=False, soft_wrap=True)
        with console.status(f"{stage.name} ...", spinner="dots"):
            seconds = run_stage(stage, folder, folder / "logs" / f"{number:02d}-{_slug(stage.name)}.log",
                                options.threads)
        finished.append({"name": stage.name, "line": stage.line, "seconds": round(seconds, 2)})
        _save_done(folder, finished)
        console.print(f"{label}: done in {seconds:.1f} s", highlight=False)
    results = json.loads((folder / "results.json").read_text())
    results["stage_seconds"] = {s["name"]: s["seconds"] for s in finished}
    results["wall_seconds_this_run"] = round(time.perf_counter() - total_started, 1)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    width = console.width
    if not console.is_terminal:  # a log file: no need to wrap the table at 80 columns
        console.width = max(width, 110)
    console.print(results_table(results))
    console.width = width
    console.print(f"figures: {folder / 'results.json'}; plots: {folder / 'results.png'}; "
                  f"rerun any stage by hand: {folder / 'pipeline.sh'}", highlight=False)
    return results


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


# ---- stages that are not mllm commands ---------------------------------------------------------


def _read(path: Path) -> list[dict]:
    from mllm.core.io.records import read_records

    return list(read_records(str(path)))


def _write(path: Path, records: Iterable[dict]) -> None:
    from mllm.core.io.records import RecordWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with RecordWriter(str(path)) as out:
        for record in records:
            out.write(record)


def _answer_field(record: dict) -> tuple[str, object]:
    """The structured answer's one field and value: ("key", "A minor"), ("tempo_bpm", 120.0)."""
    (name, value), = record["answer"].items()
    return name, value


def _consensus_caption(captions: list[str]) -> str:
    """The training caption closest to all the others: the highest mean unigram F1 against them."""
    bags = [Counter(c.lower().split()) for c in captions]

    def f1(a: Counter, b: Counter) -> float:
        common = sum((a & b).values())
        return 0.0 if not common else 2 * common / (sum(a.values()) + sum(b.values()))

    scores = [sum(f1(a, b) for j, b in enumerate(bags) if j != i) for i, a in enumerate(bags)]
    return captions[max(range(len(captions)), key=lambda i: (scores[i], -i))]


def write_baselines(instructions: str, answers: str, seed: int = 0) -> None:
    """Answer files of the rows that need no model, for the test split of each task file:

    chance  key: a key drawn uniformly from the 24; tempo: uniform over the training tempi's range;
            energy: uniform over the scale; caption: a training caption drawn at random.
    prior   key: the commonest training key; tempo, energy: the training mean; caption: the training
            caption closest to all the others (mean unigram F1).
    dsp     key and tempo: extract-features' own estimates (`features.key`, `features.tempo_bpm`).

    Writes answers/{chance,prior}.{mir,caption}.jsonl and answers/dsp.mir.jsonl: the test records
    (without their embedding) with `prediction` (key, tempo, energy) or `response` (caption), and
    `baseline` saying which rule answered; eval-mir and eval-caption score them like any system.
    """
    rng = random.Random(seed)
    folder, out = Path(instructions), Path(answers)
    rows: dict[str, dict[str, list[dict]]] = {"chance": {}, "prior": {}, "dsp": {}}
    for task in TASKS:
        records = _read(folder / f"{task}.jsonl")
        train = [r for r in records if r.get("split") == "train"]
        test = [{k: v for k, v in r.items() if k != "audio_embedding"} for r in records if r.get("split") == "test"]
        if not train or not test:
            raise DemoError(f"{task}: the demo needs train and test records (got {len(train)} and {len(test)}); "
                            "use more clips")
        values = [_answer_field(r)[1] for r in train]
        for row in rows:
            rows[row][task] = []
        for record in test:
            name, _ = _answer_field(record)
            if task == "caption":
                chance, prior, dsp = rng.choice(values), _consensus_caption(values), None
            elif task == "key":
                chance, prior = rng.choice(KEYS), Counter(values).most_common(1)[0][0]
                dsp = (record.get("features") or {}).get("key")
            else:
                low, high = (min(values), max(values)) if task == "tempo" else record.get("scale", (1, 9))
                chance, prior = round(rng.uniform(low, high), 1), round(statistics.fmean(values), 2)
                dsp = (record.get("features") or {}).get("tempo_bpm") if task == "tempo" else None
            for row, value in (("chance", chance), ("prior", prior), ("dsp", dsp)):
                if row == "dsp" and task not in APPLIES["dsp"]:
                    continue
                answered = dict(record, baseline=row)
                if task == "caption":
                    answered["response"] = value
                else:
                    answered["prediction"] = {name: value, "parse_ok": {name: value is not None}}
                rows[row][task].append(answered)
    for row, by_task in rows.items():
        _write(out / f"{row}.mir.jsonl", [r for task in MIR_TASKS for r in by_task.get(task, [])])
        if "caption" in by_task and by_task["caption"]:
            _write(out / f"{row}.caption.jsonl", by_task["caption"])


def shuffle_audio(instructions: str, shuffled: str, seed: int = 0, split: str = "test") -> None:
    """The `split` records of each task file with their audio swapped between clips: clip i gets
    the embedding of clip order[(i + 1) % n] of a seeded permutation of the split's clips (so no
    clip keeps its own, and every task's records of a clip get the same other clip). Everything
    else (question, reference) stays: a model that answers as well from these is not listening.
    Writes shuffled/TASK.jsonl (that split only), each record marked `audio_from` (the donor clip).
    """
    folder, out = Path(instructions), Path(shuffled)
    by_task = {task: [r for r in _read(folder / f"{task}.jsonl") if r.get("split") == split] for task in TASKS}
    clips = sorted({r["track"] for records in by_task.values() for r in records})
    if len(clips) < 2:
        raise DemoError(f"shuffling audio needs two {split} clips or more, got {len(clips)}")
    order = clips[:]
    random.Random(seed).shuffle(order)
    donor = {clip: order[(i + 1) % len(order)] for i, clip in enumerate(order)}
    for task, records in by_task.items():
        embedding = {r["track"]: r["audio_embedding"] for r in records}
        _write(out / f"{task}.jsonl", [dict(r, audio_embedding=embedding[donor[r["track"]]],
                                            audio_from=donor[r["track"]]) for r in records])


# A tiny chat LLM for --fast: SmolLM2's chat template and special tokens, a byte-level BPE
# learned from the demo's own questions and answers, weights drawn wide (std 0.4) so that a few
# LoRA steps move the logits of a 64-wide model.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_llm(folder: str, instructions: str, seed: int = 0) -> None:
    """Save a tiny random Llama (2 layers, hidden 64) and its tokenizer to `folder`; `mllm sft
    --llm folder` loads it like any local model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [turn["content"] for path in sorted(Path(instructions).glob("*.jsonl")) for r in _read(path)
             for turn in r.get("messages", [])]
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=special,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    # No pad_token_id in the config: Llama would freeze that row, and the pad token is the end token.
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=None, tie_word_embeddings=True, initializer_range=0.4)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# ---- the report --------------------------------------------------------------------------------


def _metric(block: dict | None, name: str) -> dict | None:
    """{"value", "low", "high", "interval"}: the scorer's bootstrap interval, or for a proportion
    whose bootstrap is degenerate (every item right, or every item wrong: no spread to resample)
    its Clopper-Pearson interval, which eval-mir gives beside it."""
    if not block or name not in block:
        return None
    value = block[name]
    figure = {k: value.get(k) for k in ("value", "low", "high")}
    figure["interval"] = "bootstrap" if figure["low"] is not None else None
    if figure["low"] is None and value.get("clopper_pearson"):
        figure["low"], figure["high"] = value["clopper_pearson"]
        figure["interval"] = "clopper-pearson"
    return figure


def _figures(folder: Path) -> dict:
    """results["tasks"]: per task, per row, the scorer's n, parse rate and metrics (None where
    the row does not apply), read from scores/."""
    mir = json.loads((folder / "scores/mir.json").read_text())
    by_file = {Path(f["input"]).name: f for f in mir["files"]}
    tasks = {}
    for task, (shown, scorer) in TASKS.items():
        rows = {}
        for row in ROWS:
            applies = task in APPLIES.get(row, TASKS)
            summary = None
            if applies and scorer == "eval-mir":
                block = by_file.get(f"{row}.mir.jsonl", {}).get("tasks", {}).get(task)
                if block:
                    summary = {"n": block["n"], "n_parsed": block.get("n_parsed"), "parse_rate": block["parse_rate"],
                               "n_scored": block.get("n_scored", block["n"]), "metrics": block["metrics"]}
            elif applies:
                path = folder / f"scores/{row}.caption.json"
                if path.exists():
                    block = json.loads(path.read_text())["splits"]["test"]
                    summary = {"n": block["n_records"], "n_scored": block["n_scored"],
                               "parse_rate": block["n_scored"] / max(1, block["n_records"]),
                               "metrics": block["metrics"]}
            rows[row] = None if summary is None else {
                **{k: v for k, v in summary.items() if k != "metrics"},
                "metrics": {name: _metric(summary["metrics"], name) for name in summary["metrics"]}}
        tasks[task] = {"split": "test", "scorer": scorer, "shown": list(shown), "rows": rows}
    return tasks


def _curve(path: Path, *names: str) -> list[dict]:
    if not path.exists():
        return []
    return [{k: m[k] for k in ("step", *names) if k in m} for m in map(json.loads, path.read_text().splitlines()) if m]


def write_report(folder: str = ".") -> dict:
    """FOLDER/results.json (every row's figures with intervals, the split and item counts, the
    training curves, the options) and FOLDER/results.png."""
    root = Path(folder)
    options = json.loads((root / "demo.json").read_text()) if (root / "demo.json").exists() else {}
    results = {
        "split": "test",
        "rows": ROWS,
        "options": options,
        "tasks": _figures(root),
        "curves": {"sft": _curve(root / "runs/sft.metrics.jsonl", "loss", "val_loss", "s_per_step"),
                   "grpo": _curve(root / "runs/grpo.metrics.jsonl", "reward_mean", "reward_task", "kl",
                                  "s_per_step")},
        "stage_seconds": {s["name"]: s["seconds"] for s in _load_done(root)},
    }
    (root / "results.json").write_text(json.dumps(results, indent=1))
    plot_results(root, results)
    return results


def _predictions(path: Path, task: str) -> list[tuple[object, object]]:
    """(reference, prediction) of each test record of `task` in an answer file, read as eval-mir
    reads them (a structured `prediction`, else the `response` parsed)."""
    from mllm.core.parse.key import read_key
    from mllm.core.parse.numbers import read_number

    pairs = []
    if not path.exists():
        return pairs
    for record in _read(path):
        if record.get("split") != "test" or record.get("task") != task:
            continue
        name, reference = _answer_field(record)
        prediction = record.get("prediction")
        if isinstance(prediction, dict) and name in prediction:
            value = prediction[name]
        elif isinstance(record.get("response"), str):
            text = record["response"]
            value = read_key(text) if task == "key" else read_number(text, tuple(record.get("scale", (1, 9))))
        else:
            value = None
        pairs.append((reference, value))
    return pairs


def _key_index(key: str | None) -> int:
    """Row/column of a key in the confusion matrix (24 keys, then 'unparsed')."""
    from mllm.core.parse.key import find_key

    found = find_key(key) if key else None
    if found is None or found.value.mode not in ("major", "minor"):
        return 24
    return found.value.pitch_class + (12 if found.value.mode == "minor" else 0)


def plot_results(root: Path, results: dict) -> None:
    """results.png: energy predictions against references (SFT, SFT + GRPO, probe), the key
    confusion matrix of SFT, the SFT loss curve, the GRPO reward curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(2, 2, figsize=(12, 10))
    ax = axes[0, 0]
    for row, marker in (("sft", "o"), ("grpo", "x"), ("probe", "+")):
        pairs = [(r, p) for r, p in _predictions(root / f"answers/{row}.mir.jsonl", "energy") if p is not None]
        if pairs:
            ax.scatter(*zip(*pairs), marker=marker, label=f"{ROWS[row]} ({len(pairs)} answers)", alpha=0.7)
    ax.plot([1, 9], [1, 9], color="grey", linewidth=1)
    ax.set(xlabel="reference energy (1-9)", ylabel="predicted energy", xlim=(0.5, 9.5), ylim=(0.5, 9.5),
           title="energy, test split")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    matrix = np.zeros((24, 25))
    pairs = _predictions(root / "answers/sft.mir.jsonl", "key")
    for reference, prediction in pairs:
        matrix[_key_index(reference), _key_index(prediction)] += 1
    ax.imshow(matrix, cmap="Blues", aspect="auto")
    labels = [k.replace(" major", "").replace(" minor", "m") for k in KEYS]
    ax.set_xticks(range(25), labels + ["?"], fontsize=6, rotation=90)
    ax.set_yticks(range(24), labels, fontsize=6)
    ax.set(xlabel="SFT answer (? = no key read)", ylabel="reference key",
           title=f"key confusion, SFT, test split ({len(pairs)} items)")

    ax = axes[1, 0]
    sft = results["curves"]["sft"]
    ax.plot([m["step"] for m in sft], [m["loss"] for m in sft], label="train loss")
    validated = [m for m in sft if "val_loss" in m]
    ax.plot([m["step"] for m in validated], [m["val_loss"] for m in validated], "o-", label="valid loss")
    ax.set(xlabel="step", ylabel="answer-token cross-entropy", title="SFT")
    ax.legend()

    ax = axes[1, 1]
    grpo = results["curves"]["grpo"]
    ax.plot([m["step"] for m in grpo], [m.get("reward_mean") for m in grpo], "o-", label="reward (mean of groups)")
    ax.plot([m["step"] for m in grpo], [m.get("reward_task") for m in grpo], "s--", label="task reward")
    ax.set(xlabel="step", ylabel="reward", title="GRPO on energy (train split)")
    twin = ax.twinx()
    twin.plot([m["step"] for m in grpo], [m.get("kl") for m in grpo], color="grey", linewidth=1, label="KL to SFT")
    twin.set_ylabel("KL to SFT")
    ax.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(root / "results.png", dpi=100)
    plt.close(figure)


def _cell(figure: dict | None) -> str:
    """"0.43 [0.29, 0.57]"; a figure without an interval (fewer than two answers scored, or no
    spread to resample) is shown as "0.43 [-]"; a row that does not apply as "-"."""
    if figure is None or figure.get("value") is None:
        return "-"
    value, low, high = figure["value"], figure.get("low"), figure.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.2f} [-]"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


SHORT = {"chance": "chance", "prior": "prior", "dsp": "DSP analysis", "probe": "ridge probe", "sft": "SFT",
         "grpo": "SFT + GRPO", "shuffled": "SFT, shuffled audio"}
LEGEND = ("prior: the commonest training key, the training mean tempo and energy, the training caption closest "
          "to the others. DSP analysis: extract-features' own key and tempo. Ridge probe: regress --method probe "
          "on time-pooled embeddings. SFT, shuffled audio: the SFT model given other clips' embeddings (as good "
          "as SFT: it answers from priors, not from the audio). Intervals: 95 % bootstrap over the test items (Clopper-Pearson for a "
          "proportion with no spread); [-]: fewer than two answers scored or no spread; -: does not apply.")


def results_table(results: dict):
    """The Rich table of results.json: per task, every row with its two headline figures and
    their 95 % intervals, its number of test items and its parse rate."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"mllm demo: {results['split']} split", title_justify="left", box=box.SIMPLE_HEAD,
                  caption=LEGEND, caption_justify="left")
    for header in ("task", "row", "value [95 % interval]", "value [95 % interval]", "n", "parsed"):
        table.add_column(header, justify="right" if header in ("n", "parsed") else "left")
    for task, block in results["tasks"].items():
        first, second = block["shown"]
        table.add_row(f"[bold]{task}[/]", "", f"[dim]{first}[/]", f"[dim]{second}[/]", "", "")
        for row in ROWS:
            figures = block["rows"].get(row)
            if figures is None:
                table.add_row("", SHORT[row], "-", "-", "-", "-")
                continue
            metrics = figures["metrics"]
            table.add_row("", SHORT[row], _cell(metrics.get(first)), _cell(metrics.get(second)), str(figures["n"]),
                          f"{figures['parse_rate']:.0%}")
        table.add_section()
    return table
