"""`mllm caption`: a MusicLLM's free-text answer to one question per record, written as `response`.

The question of a record is, in order:
1. `--prompt TEXT` when given (the same question for every record: "Describe this music.");
2. else the record's `messages` without a trailing assistant turn (an instruction record asks its
   own question: `<audio>\\nWhat key is this music in?`);
3. else `DEFAULT_PROMPT`.

Resume: `done_ids(path)` reads the ids already in an output JSONL file (cutting off a last line
that a stop left half written); the command skips those records and appends the others, so a
stopped run continues where it was and the file ends with every id once, in input order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from mllm.core.infer.generation import Generate, Prompt, answer_records
from mllm.core.io.errors import Record, StreamSummary
from mllm.core.model.chat import AUDIO_PLACEHOLDER

__all__ = ["DEFAULT_PROMPT", "STAGE", "caption_prompt", "caption_records", "done_ids"]

STAGE = "caption"
DEFAULT_PROMPT = "Describe this music."


def caption_prompt(record: Record, prompt: str | None = None) -> Prompt:
    """The prompt of one record (see the module docstring for the order)."""
    if "audio_embedding" not in record:
        raise KeyError(f"record {record.get('id')!r} has no 'audio_embedding' (run `mllm encode` first)")
    if prompt is None and record.get("messages"):
        turns = [dict(m) for m in record["messages"]]
        if turns[-1].get("role") == "assistant":
            turns = turns[:-1]
        if not any(t.get("role") == "user" for t in turns):
            raise ValueError(f"record {record.get('id')!r}: `messages` has no user turn")
        return Prompt(turns, record["audio_embedding"])
    text = prompt if prompt is not None else DEFAULT_PROMPT
    content = text if AUDIO_PLACEHOLDER in text else f"{AUDIO_PLACEHOLDER}\n{text}"
    return Prompt([{"role": "user", "content": content}], record["audio_embedding"])


def caption_records(records: Iterable[Record], generate: Generate, *, prompt: str | None = None,
                    batch_size: int = 8, summary: StreamSummary | None = None) -> Iterator[Record]:
    """Every record with `response` (the answer text) added; failures become error records."""

    def finish(record: Record, answers: list[str]) -> Record:
        return {**record, "response": answers[0]}

    return answer_records(records, lambda r: [caption_prompt(r, prompt)], finish, generate,
                          batch_size=batch_size, stage=STAGE, summary=summary)


def done_ids(path: str | os.PathLike) -> set[str]:
    """Ids of the records already in the JSONL file `path` (empty when it does not exist).

    A last line without its newline (the run was stopped while writing it) is cut off the file, so
    appending starts on a clean line; a complete line that is not a record is an error.
    """
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data[:4] == b"PAR1":
        raise ValueError(f"{path} is Parquet: --resume appends to JSONL output only")
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(end)
    ids = set()
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number} is not a JSON record ({exc}); cannot resume into it") from None
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            ids.add(value["id"])
    return ids
