"""Batched answers from a model: prompts -> batches -> generate -> text.

A prompt is chat turns whose user turn holds `<audio>` once, plus the record's audio in the form the
model reads: the `audio_embedding` ([T, D]) for a MusicLLM checkpoint (`ModelGenerator`), the
decoded waveform for a published audio-text model such as Qwen2-Audio (`AudioTextGenerator`,
audio_text_models.py). A generator turns a list of prompts into a list of answers; anything with
that signature (a stub in tests) can take its place in `captions.py` and `regression.py`. A
generator may say how it reads a record's audio (`audio_input(record)`); `prompt_audio` falls back
to the `audio_embedding`.

`load_generator(name)` picks the kind from the folder: an mllm checkpoint (config.json `format`
"mllm-musicllm") or a Hugging Face audio-text model (config.json `model_type`, e.g. "qwen2_audio";
a hub id of the form owner/name is looked up in the local cache).

`ModelSampler` (`mllm caption --samples N`) answers each prompt with N sampled completions, each
a `Sample` (text, token ids, log-probability under the model); the random stream of completion k of
a prompt is `row_seed(prompt.seed, k)` (core/train/sampling.py, as `mllm grpo` samples), so it does
not depend on the batch, the order of the records or a resumed run.

`answer_records` walks a record stream in batches of `batch_size` prompts. A record may ask several
questions (one per regression target): its prompts go into the batch together, and the record is
written once all its answers are back, in input order (`finish` may write several records for one,
as `--samples` does). A record whose prompts cannot be built, or
that already carries an `error`, is written as an error record / passed through; the others go on.
When a whole batch fails (a record the model cannot take, out of memory), its records are tried
one by one, so only the record at fault becomes an error record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from mllm.core.io.errors import Record, StreamSummary, has_error, with_error
from mllm.core.io.splits import in_split
from mllm.core.options import check_integer, check_number

__all__ = ["Prompt", "Sample", "ModelGenerator", "ModelSampler", "load_generator", "answer_records", "prompt_audio",
           "embedding_input"]


@dataclass
class Prompt:
    messages: list[dict]  # system/user turns, the user turn holding "<audio>"
    audio: object  # what the model reads: (T, D) audio_embedding, or (n,) waveform for an audio-text model
    seed: int = 0  # the random stream of its samples (ModelSampler); greedy generators ignore it


@dataclass
class Sample:
    """One sampled completion of a prompt."""

    text: str  # the answer text (special tokens removed, whitespace stripped)
    token_ids: list[int]  # the completion's tokens, the stop token included when it was reached
    logprob: float  # sum over token_ids of log p(token | prompt, tokens before), the model at temperature 1

    @property
    def logprob_mean(self) -> float:
        return self.logprob / len(self.token_ids)


Generate = Callable[[list[Prompt]], list[str]]


def embedding_input(record: Record) -> object:
    """The record's `audio_embedding` (what a MusicLLM reads); KeyError naming the record when absent."""
    if "audio_embedding" not in record:
        raise KeyError(f"record {record.get('id')!r} has no 'audio_embedding' (run `mllm encode` first)")
    return record["audio_embedding"]


def prompt_audio(record: Record, generate: Generate | None = None) -> object:
    """The record's audio as `generate` reads it (`generate.audio_input`, else the `audio_embedding`)."""
    return getattr(generate, "audio_input", embedding_input)(record)


class ModelGenerator:
    """`MusicLLM.generate` over a list of prompts (one left-padded batch)."""

    def __init__(self, model, max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, audio_input: Callable[[Record], object] | None = None):
        self.model = model
        self.options = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                            top_k=top_k, top_p=top_p)
        # The record's audio as the model reads it: by default its `audio_embedding`; load_generator
        # passes the checkpoint's encoder (core/encoders/for_model.py), which checks a record's
        # embedding against it and encodes records that only have `audio`.
        self.audio_input = audio_input or embedding_input

    def check(self, prompt: Prompt) -> None:
        """Raise if the prompt cannot become an example (so the record alone fails, not its batch)."""
        self.model.example({"messages": prompt.messages, "audio_embedding": prompt.audio}, with_answer=False)

    def __call__(self, prompts: list[Prompt]) -> list[str]:
        records = [{"messages": p.messages, "audio_embedding": p.audio} for p in prompts]
        return self.model.generate(self.model.batch(records, with_answer=False), **self.options)


class ModelSampler(ModelGenerator):
    """`samples` completions per prompt (a list of `Sample` per prompt), drawn by `mllm grpo`'s
    sampler: completion k of a prompt from its own stream `row_seed(prompt.seed, k)`, at `temperature`
    within the `top_p` nucleus (core/train/sampling.py), generated with the prompt's KV cache shared
    by its completions (core.train.grpo.generate_completions). Each completion's log-probability is
    the model's own (temperature 1, the full distribution: comparable across sampling settings),
    summed over its tokens, from one scoring pass (core.train.grpo.group_token_logps)."""

    def __init__(self, model, samples: int, max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0,
                 audio_input: Callable[[Record], object] | None = None, bf16: bool = False):
        super().__init__(model, max_new_tokens=max_new_tokens, audio_input=audio_input)
        check_integer("--samples", samples, minimum=1)
        self.samples = samples
        from mllm.core.train.grpo import GRPOConfig

        # generate_completions reads its sampling settings from a GRPO config: group_size is the
        # number of completions per prompt (no GRPO training runs here; check() is not called).
        self.settings = GRPOConfig(group_size=samples, temperature=temperature, top_p=top_p,
                                   max_new_tokens=max_new_tokens, bf16=bf16, device=str(model.device))

    def __call__(self, prompts: list[Prompt]) -> list[list[Sample]]:
        import torch

        from mllm.core.train.grpo import generate_completions, group_token_logps

        examples = [self.model.example({"messages": p.messages, "audio_embedding": p.audio}, with_answer=False)
                    for p in prompts]
        completions = generate_completions(self.model, examples, self.settings, [p.seed for p in prompts])
        # (B * N) rows, prompt by prompt. A completion is never empty (generate gives >= 1 token).
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                logps, mask, _ = group_token_logps(self.model, examples, completions, self.samples)
        finally:
            self.model.train(was_training)
        sums = (logps * mask).sum(dim=1).tolist()  # (B * N,)
        decode = self.model.tokenizer.decode
        drawn = [Sample(decode(ids, skip_special_tokens=True).strip(), list(ids), float(total))
                 for ids, total in zip(completions, sums)]
        return [drawn[i * self.samples:(i + 1) * self.samples] for i in range(len(prompts))]


def answer_records(records: Iterable[Record], questions: Callable[[Record], list[Prompt]],
                   finish: Callable[[Record, list], Record | list[Record]], generate: Generate, *, batch_size: int,
                   stage: str, summary: StreamSummary | None = None, split: str | None = None) -> Iterator[Record]:
    """Each record with `finish(record, answers)` applied, answers in the order of `questions(record)`;
    `finish` returns the record to write, or a list of records written in its place.

    With `split`, only the records of that split are answered; the others pass through untouched,
    in their place."""
    check = getattr(generate, "check", None)
    pending: list[tuple[Record, list[Prompt] | None, Record | None]] = []  # (record, prompts, finished output)

    def answers_of(batch: list[tuple[Record, list[Prompt]]]) -> list[list[str] | Exception]:
        """The answers of each record of a batch; when the batch fails, its records are tried one by
        one, so that one bad record fails alone (with its own error) and the others get answers."""
        try:
            answers = generate([p for _, ps in batch for p in ps])
            if len(answers) != sum(len(ps) for _, ps in batch):
                raise RuntimeError(f"the model gave {len(answers)} answers to {sum(len(ps) for _, ps in batch)} prompts")
        except Exception as exc:  # noqa: BLE001 - retried record by record below
            if len(batch) == 1:
                return [exc]
            return [answers_of([item])[0] for item in batch]
        out, position = [], 0
        for _, ps in batch:
            out.append(answers[position:position + len(ps)])
            position += len(ps)
        return out

    def flush() -> Iterator[Record]:
        batch = [(record, ps) for record, ps, done in pending if done is None]
        results = iter(answers_of(batch) if batch else [])
        for record, ps, done in pending:
            if done is None:
                answers = next(results)
                try:
                    if isinstance(answers, Exception):
                        raise answers
                    done = finish(record, answers)
                except Exception as exc:  # noqa: BLE001 - this record's failure only
                    done = with_error(record, stage, exc)
            for out in done if isinstance(done, list) else [done]:
                if summary is not None:
                    summary.note(out, new_failure=has_error(out) and not has_error(record))
                yield out
        pending.clear()

    queued = 0
    for record in records:
        if summary is not None:
            summary.records_in += 1
        if has_error(record) or not in_split(record, split):
            pending.append((record, None, record))
        else:
            try:
                prompts = questions(record)
                if check is not None:
                    for prompt in prompts:
                        check(prompt)
                pending.append((record, prompts, None))
                queued += len(prompts)
            except Exception as exc:  # noqa: BLE001 - this record's failure only
                pending.append((record, None, with_error(record, stage, exc)))
        if queued >= batch_size:
            yield from flush()
            queued = 0
    if pending:
        yield from flush()


def load_generator(name: str, *, device: str = "auto", dtype: str = "float32", max_new_tokens: int = 128,
                   sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                   samples: int = 0) -> Generate:
    """The model `name` wrapped as a generator ("auto" device: CUDA when present).

    `name` is a `mllm sft` checkpoint folder, or a Hugging Face audio-text model (local folder or
    owner/name hub id) whose config.json `model_type` is in audio_text_models.MODELS. With
    `samples` N > 0, a `ModelSampler` of N completions per prompt (checkpoints only). Raises
    ValueError naming `name` when it cannot be loaded.
    """
    import torch

    from mllm.core.infer.audio_text_models import audio_text_model_type, load_audio_text_model

    check_number("--temperature", temperature, above=0)
    check_number("--top-p", top_p, above=0, maximum=1)
    check_integer("--max-new-tokens", max_new_tokens, minimum=1)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    if samples:
        check_integer("--samples", samples, minimum=1)
    model_type = audio_text_model_type(name)
    if model_type is not None and samples:
        raise ValueError(f"--samples needs a `mllm sft` checkpoint; {name} is a {model_type} model "
                         "(use --sample for one sampled answer per record)")
    if model_type is not None:
        return load_audio_text_model(name, model_type, device=device, dtype=dtype, max_new_tokens=max_new_tokens,
                                     sample=sample, temperature=temperature, top_p=top_p)
    from mllm.core.model import load_checkpoint

    try:
        loaded = load_checkpoint(name, dtype=getattr(torch, dtype), device=device)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"cannot load checkpoint {name}: {exc}") from None
    from mllm.core.encoders.for_model import ModelEncoder

    if samples:
        return ModelSampler(loaded, samples, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            audio_input=ModelEncoder(loaded.encoder, device=device))
    return ModelGenerator(loaded, max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature, top_p=top_p,
                          audio_input=ModelEncoder(loaded.encoder, device=device))
