"""MusicQA (Liu et al. 2024, MU-LLaMA): question-answer pairs about music clips, for the retention check.

The emotion paper checks that alignment keeps a model's MusicQA ability (BLEU/METEOR/ROUGE on
its answers): this adapter turns MusicQA's files into `qa` instruction records to train on or to
evaluate with `mllm eval-caption`.

Layout read (as MU-LLaMA's MusicQA/generate_dataset.py writes it and as the dataset is shared):

    MusicQA.json, FinetuneMusicQA.json, PretrainMusicQA.json, EvalMusicQA.json   (any *MusicQA*.json[l])
        [{"audio_name": "000123.wav",
          "conversation": [{"from": "human", "value": "<question>"}, {"from": "gpt", "value": "<answer>"}]}, ...]
    audios/<audio_name>

Rows in the flat form {"audio_name" (or "audio"/"Music"), "question", "answer"} (JSONL or JSON) are
read too; a conversation with several exchanges gives one pair per human/gpt exchange. One record
per row: labels.qa = its pairs, track = the audio name (so a clip's questions stay in one split).
Split by file name: a file named Eval*/ *test* is test, the others train (MU-LLaMA evaluates on
EvalMusicQA.json). --dataset-option files=GLOB picks the files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mllm.core.instructions.adapters.files import (
    Adapter, AdapterError, AdapterReport, find_dir, find_files, make_record, row_error,
)
from mllm.core.io.errors import Record, has_error
from mllm.core.io.records import RecordStreamError, read_records

AUDIO_KEYS = ("audio_name", "audio", "Music", "music", "audio_path")
QUESTION_KEYS = ("question", "Question", "instruction")
ANSWER_KEYS = ("answer", "Answer", "output")


def _first(item: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if item.get(key) not in (None, ""):
            return item[key]
    return None


def qa_pairs(item: Mapping[str, Any]) -> list[dict[str, str]]:
    """The question-answer pairs of one MusicQA row (a conversation, or flat question/answer)."""
    conversation = item.get("conversation") or item.get("conversations")
    if isinstance(conversation, list):
        pairs, question = [], None
        for turn in conversation:
            if not isinstance(turn, Mapping):
                continue
            speaker, text = str(turn.get("from", "")).lower(), turn.get("value")
            if not isinstance(text, str):
                continue
            if speaker in ("human", "user"):
                question = text
            elif speaker in ("gpt", "assistant") and question is not None:
                pairs.append({"question": question.strip(), "answer": text.strip()})
                question = None
        return pairs
    question, answer = _first(item, QUESTION_KEYS), _first(item, ANSWER_KEYS)
    if isinstance(question, str) and isinstance(answer, str):
        return [{"question": question.strip(), "answer": answer.strip()}]
    return []


def read(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    pattern = options.get("files", "*MusicQA*.json*")
    files = [p for p in find_files(root, pattern) if p.suffix in (".json", ".jsonl")]
    if not files:
        raise AdapterError(f"no MusicQA files ({pattern}) under {root}")
    audio_dir = Path(options["audio_dir"]) if "audio_dir" in options else (find_dir(root, ("audios", "audio")) or root / "audios")
    for file in files:
        lowered = file.stem.lower()
        split = "test" if lowered.startswith("eval") or "test" in lowered else "train"
        try:
            yield from _rows(file, split, audio_dir, report)
        except RecordStreamError as exc:
            raise AdapterError(str(exc)) from None


def _rows(file: Path, split: str, audio_dir: Path, report: AdapterReport) -> Iterator[Record]:
    for index, item in enumerate(read_records(file, require_id=False)):
        report.rows += 1
        local_id = f"{file.stem}:{index}"
        if has_error(item):
            yield row_error("musicqa", local_id, file.name, item["error"]["message"])
            continue
        audio_name = _first(item, AUDIO_KEYS)
        pairs = qa_pairs(item)
        if not isinstance(audio_name, str) or not pairs:
            yield row_error("musicqa", local_id, f"{file.name} item {index}", "needs an audio name and a question-answer pair")
            continue
        track = Path(audio_name).stem
        yield make_record("musicqa", local_id, audio_dir / audio_name, track=track, labels={"qa": pairs}, split=split)


ADAPTER = Adapter(
    "musicqa", read,
    {"audio_dir": "folder of the audio files (default: audios/ under the root)",
     "files": "glob of the QA files (default *MusicQA*.json*)"},
    "*MusicQA*.json (audio_name + conversation) and audios/<audio_name>",
)
