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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from mllm.core.infer.generation import Generate, Prompt, answer_records, embedding_input, prompt_audio
from mllm.core.io.errors import Record, StreamSummary
from mllm.core.model.chat import AUDIO_PLACEHOLDER

__all__ = ["DEFAULT_PROMPT", "STAGE", "caption_prompt", "caption_records"]

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
