"""`mllm caption`: a MusicLLM's free-text answer to one question per record, written as `response`.

The question of a record is, in order:
1. `--prompt TEXT` when given (the same question for every record: "Describe this music.");
2. else the record's `messages` without a trailing assistant turn (an instruction record asks its
   own question: `<audio>\\nWhat key is this music in?`);
3. else `DEFAULT_PROMPT`.

The audio of the prompt is what the model reads (generation.py): the record's `audio_embedding` for
a MusicLLM checkpoint, its decoded `audio` for a published audio-text model (audio_text_models.py).

Resume: `prepare_resume(path)` (resume.py, shared with `mllm regress`) sets up the output JSONL file
of a stopped run and gives the ids already done; the command skips those records and appends the others.

Samples (`--samples N`, `sample_records`): each answered record is written N times, once per
sampled response, in sample order, each copy with

    response         the sampled answer text
    sample           its index, 0 .. N-1
    logprob          log p(response tokens | prompt) under the model at temperature 1 (the full
                     distribution, whatever --temperature/--top-p drew it): the sum over its tokens,
                     the stop token included when it was reached
    logprob_mean     logprob / response_tokens (the per-token mean)
    response_tokens  the number of tokens scored

Sample k of a record is drawn from the stream `row_seed(row_seed(seed, id number), k)`, the id
number a hash of its `id` (blake2b, 8 bytes): the same seed gives the same samples whatever the
batch, the order or the other records of the input, and a resumed run what the first would have.
A record that fails is written once, as an error record (no `sample`); records of other splits and
earlier error records pass through once, untouched. So records out = N x the records answered +
the others. Resume counts N records per answered record: a stopped run's last, incomplete group
(samples 0 .. k-1 written) is completed with samples k .. N-1.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from mllm.core.infer.generation import Generate, Prompt, Sample, answer_records, embedding_input, prompt_audio
from mllm.core.io.errors import Record, StreamSummary, has_error
from mllm.core.io.splits import in_split
from mllm.core.model.chat import AUDIO_PLACEHOLDER
from mllm.core.train.sampling import row_seed

__all__ = ["DEFAULT_PROMPT", "STAGE", "caption_prompt", "caption_records", "record_seed", "sample_records"]

STAGE = "caption"
DEFAULT_PROMPT = "Describe this music."


def caption_prompt(record: Record, prompt: str | None = None,
                   audio_input: Callable[[Record], object] = embedding_input) -> Prompt:
    """The prompt of one record (see the module docstring for the order); `audio_input(record)`
    gives its audio as the model reads it (default: the `audio_embedding`)."""
    audio = audio_input(record)
    if prompt is None and record.get("messages"):
        turns = [dict(m) for m in record["messages"]]
        if turns[-1].get("role") == "assistant":
            turns = turns[:-1]
        if not any(t.get("role") == "user" for t in turns):
            raise ValueError(f"record {record.get('id')!r}: `messages` has no user turn")
        return Prompt(turns, audio)
    text = prompt if prompt is not None else DEFAULT_PROMPT
    content = text if AUDIO_PLACEHOLDER in text else f"{AUDIO_PLACEHOLDER}\n{text}"
    return Prompt([{"role": "user", "content": content}], audio)


def caption_records(records: Iterable[Record], generate: Generate, *, prompt: str | None = None,
                    batch_size: int = 8, summary: StreamSummary | None = None,
                    split: str | None = None) -> Iterator[Record]:
    """Every record with `response` (the answer text) added; failures become error records. With
    `split`, records of other splits pass through untouched."""

    def finish(record: Record, answers: list[str]) -> Record:
        return {**record, "response": answers[0]}

    def questions(record: Record) -> list[Prompt]:
        return [caption_prompt(record, prompt, lambda r: prompt_audio(r, generate))]

    return answer_records(records, questions, finish, generate,
                          batch_size=batch_size, stage=STAGE, summary=summary, split=split)


def record_seed(seed: int, record_id: object) -> int:
    """The seed of a record's sample streams: `row_seed(seed, a 64-bit hash of its id)`."""
    digest = hashlib.blake2b(str(record_id).encode("utf-8"), digest_size=8).digest()
    return row_seed(seed, int.from_bytes(digest, "big"))


def sample_records(records: Iterable[Record], generate: Generate, *, samples: int, seed: int = 0,
                   prompt: str | None = None, batch_size: int = 8, summary: StreamSummary | None = None,
                   split: str | None = None, done: Counter | None = None) -> Iterator[Record]:
    """`samples` records per answered record, one per sampled response (the module docstring says
    what each holds). `generate` answers a prompt with a list of `samples` `Sample`s
    (generation.ModelSampler). `batch_size` counts sequences: batch_size // samples prompts (at least
    one) go into a call. `done` (from prepare_resume) counts the records of each id already written:
    an answered record counts `samples`, a passed-through one 1; those records are skipped, and a
    record with k < samples written gets the others."""
    left = Counter(done or {})
    first: dict[int, int] = {}  # id(record) -> its first sample to write (a resumed, incomplete group)

    def todo() -> Iterator[Record]:
        for record in records:
            key = record.get("id")
            answered = not has_error(record) and in_split(record, split)
            written = min(left.get(key, 0), samples if answered else 1)
            if written:
                left[key] -= written
            if written == (samples if answered else 1):
                continue
            if written:
                first[id(record)] = written
            yield record

    def questions(record: Record) -> list[Prompt]:
        question = caption_prompt(record, prompt, lambda r: prompt_audio(r, generate))
        question.seed = record_seed(seed, record.get("id"))
        return [question]

    def finish(record: Record, answers: list[list[Sample]]) -> list[Record]:
        (drawn,) = answers
        if len(drawn) != samples:
            raise RuntimeError(f"the model gave {len(drawn)} samples, {samples} asked")
        start = first.pop(id(record), 0)
        return [{**record, "response": s.text, "sample": k, "logprob": s.logprob, "logprob_mean": s.logprob_mean,
                 "response_tokens": len(s.token_ids)}
                for k, s in enumerate(drawn) if k >= start]

    return answer_records(todo(), questions, finish, generate, batch_size=max(1, batch_size // samples),
                          stage=STAGE, summary=summary, split=split)
