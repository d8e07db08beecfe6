"""CMI-Bench (Ma et al. 2025): its task files, each line an instruction with the reference answer.

Layout read (the CMI-bench repository's data/ folder, with each task's audio where its paths say):

    data/GS-key/CMI_GS_key.jsonl          {"instruction", "input", "output", "split": ["train"],
    data/GTZAN/CMI_GTZAN.jsonl              "audio_path": ["data/GS-key/.../0005061-0.wav"],
    data/EMO/CMI_EMO_arousal.jsonl          "audio_start", "audio_end", "source", "task_type", ...}
    data/Beat-Transformer/CMI_gtzan_beat.jsonl
    ...

The task comes from the file name (CMI_<TASK>.jsonl, the names of core.evaluation.cmi_bench) and
`output` becomes the label of the mllm task eval-mir scores it as:

    GS_key -> key; GS_tempo -> tempo_bpm; GTZAN -> genre; MTG_genre -> genres;
    MTG_instrument -> instruments; MTG_emotion -> moods; MTG_top50tags, MTT -> tags;
    gtzan_beat, ballroom_beat -> beats; gtzan_downbeat, ballroom_downbeat -> downbeats;
    MusicCaps, SDD -> caption;
    EMO_arousal, EMO_valence -> arousal_z, valence_z: CMI-Bench's EMO outputs are z-scores of
    the emoMusic ratings, not values on the 1-9 scale its instruction asks for, so they are kept
    under these names with no scale and no regression instruction is made from them.

Files of other tasks (NSynth, VocalSet, lyrics, melody, ...) are passed over and named in the
report. Each line's `instruction` is kept as the record's own question for its task
(`questions`), which build-instructions uses unless --template-questions is given, so the
benchmark's prompts are reproduced. `audio_path` is relative to the repository root (the folder
above data/); `audio_start`/`audio_end` become `start`/`end`; `split` (train/dev/test) is the
dataset's. Track = the audio file's stem without a trailing clip index ("0005061-0" -> "0005061").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mllm.core.evaluation.cmi_bench import CmiBenchError, task_from_file_name
from mllm.core.instructions.adapters.files import (
    Adapter, AdapterError, AdapterReport, find_files, first_existing, make_record, row_error,
)
from mllm.core.instructions.splits import SplitError, normalise_split
from mllm.core.io.errors import Record, has_error
from mllm.core.io.records import RecordStreamError, read_records
from mllm.core.parse.times import read_times

# CMI-Bench task -> (mllm task whose question the instruction is, label field)
LABELS = {
    "GS_key": ("key", "key"),
    "GS_tempo": ("tempo", "tempo_bpm"),
    "GTZAN": ("genre", "genre"),
    "MTG_genre": ("genres", "genres"),
    "MTG_instrument": ("instruments", "instruments"),
    "MTG_emotion": ("moods", "moods"),
    "MTG_top50tags": ("tags", "tags"),
    "MTT": ("tags", "tags"),
    "gtzan_beat": ("beats", "beats"),
    "ballroom_beat": ("beats", "beats"),
    "gtzan_downbeat": ("downbeats", "downbeats"),
    "ballroom_downbeat": ("downbeats", "downbeats"),
    "MusicCaps": ("caption", "caption"),
    "SDD": ("caption", "caption"),
    "EMO_arousal": ("arousal_z", "arousal_z"),
    "EMO_valence": ("valence_z", "valence_z"),
}
CLIP_INDEX = re.compile(r"-\d+$")


def label_value(field: str, output: Any) -> Any:
    """CMI-Bench's `output` as the value of an mllm label field; raises ValueError."""
    if isinstance(output, list) and len(output) == 1 and field not in ("beats", "downbeats"):
        output = output[0]
    if field in ("tempo_bpm", "arousal_z", "valence_z"):
        return float(output)
    if field in ("genres", "instruments", "moods", "tags"):
        items = output if isinstance(output, list) else str(output).split(",")
        return [str(item).strip() for item in items if str(item).strip()]
    if field in ("beats", "downbeats"):
        times = [float(t) for t in output] if isinstance(output, list) else read_times(str(output))
        if times is None:
            raise ValueError(f"no times in {str(output)[:60]!r}")
        return times
    text = str(output).strip()
    if not text:
        raise ValueError("empty output")
    return text


def _audio(root: Path, item: Mapping[str, Any]) -> tuple[Path | None, str | None]:
    paths = item.get("audio_path") or item.get("audioid")
    if isinstance(paths, list):
        paths = paths[0] if paths else None
    if not isinstance(paths, str) or not paths:
        return None, None
    relative = Path(paths)
    return first_existing([root / relative, root.parent / relative, root / relative.name]), relative.stem


def read(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    files = find_files(root, options.get("files", "CMI_*.jsonl"))
    if not files:
        raise AdapterError(f"no CMI-Bench task files (CMI_*.jsonl) under {root}")
    repository = Path(options["repository"]) if "repository" in options else (root.parent if root.name == "data" else root)
    for file in files:
        try:
            cmi_task = task_from_file_name(file)
        except CmiBenchError:
            report.notes.append(f"passed over {file.name}: not a CMI-Bench task file name")
            continue
        if cmi_task not in LABELS:
            report.notes.append(f"passed over {file.name}: {cmi_task} is not a task build-instructions makes")
            continue
        task, field = LABELS[cmi_task]
        try:
            yield from _rows(file, cmi_task, task, field, repository, report)
        except RecordStreamError as exc:
            raise AdapterError(str(exc)) from None


def _rows(file: Path, cmi_task: str, task: str, field: str, repository: Path, report: AdapterReport) -> Iterator[Record]:
    for index, item in enumerate(read_records(file, require_id=False)):
        report.rows += 1
        local_id = f"{cmi_task}:{index}"
        where = f"{file.name} item {index}"
        if has_error(item):
            yield row_error("cmi-bench", local_id, file.name, item["error"]["message"])
            continue
        audio, stem = _audio(repository, item)
        try:
            if audio is None:
                raise ValueError("no audio_path")
            value = label_value(field, item.get("output"))
            split = normalise_split(item["split"]) if item.get("split") else None
        except (ValueError, TypeError, SplitError) as exc:
            yield row_error("cmi-bench", local_id, where, exc)
            continue
        span = {}
        for name, key in (("start", "audio_start"), ("end", "audio_end")):
            if isinstance(item.get(key), (int, float)):
                span[name] = float(item[key])
        if span.get("end") is not None and span.get("start") is not None and span["end"] <= span["start"]:
            span = {}
        questions = {task: item["instruction"]} if isinstance(item.get("instruction"), str) else None
        metadata = {"cmi_task": cmi_task, **{k: item[k] for k in ("source", "uuid") if item.get(k)}}
        yield make_record(
            "cmi-bench", local_id, audio, track=CLIP_INDEX.sub("", stem), labels={field: value}, split=split,
            questions=questions, metadata=metadata, **span,
        )


ADAPTER = Adapter(
    "cmi-bench", read,
    {"repository": "folder the audio_path entries are relative to (default: the folder above data/)",
     "files": "glob of the task files (default CMI_*.jsonl)"},
    "data/**/CMI_<TASK>.jsonl with audio where their audio_path entries say",
)
