"""Reading CMI-Bench result files, so published model outputs can be rescored with mllm.

CMI-Bench (Ma et al., ISMIR 2025) writes one file per model and task, named
`<model>_<TASK>.jsonl`, e.g. `qwen2_GS_key.jsonl`; most are one JSON array (despite the name),
some are JSONL. Each item holds `question`, `response`, `correct_answer`, `audioid`, `other`, and
no id. Here each item becomes a record:

    id        "<index>:<file name of audioid>"  (the index keeps ids unique: clips repeat)
    task      the mllm task of the CMI-Bench task (TASKS below)
    response  the model's answer, unchanged
    reference `correct_answer` (a one-element list is unwrapped)
    question, audioid, other: passed through

The arousal/valence references of CMI-Bench's EMO files are z-scores while the models answer on
1-9, so those tasks are scored with the predictions z-scored too (CMI-Bench's scorer does the
same before its R2). Unlike CMI-Bench's scorer, an unparsed answer is not replaced by the mean in
the headline figures: it is counted in the parse rate and left out; the summary's
`metrics_unparsed_as_mean` gives CMI-Bench's protocol beside them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mllm.core.evaluation.kinds import KIND_OF_TASK
from mllm.core.evaluation.tasks import SCORED_ELSEWHERE
from mllm.core.io.errors import Record, has_error
from mllm.core.io.records import read_records


@dataclass(frozen=True)
class CmiTask:
    task: str  # mllm task name
    standardized_reference: bool = False


TASKS: dict[str, CmiTask] = {
    "GS_key": CmiTask("key"),
    "GS_tempo": CmiTask("tempo"),
    "EMO_arousal": CmiTask("arousal", standardized_reference=True),
    "EMO_valence": CmiTask("valence", standardized_reference=True),
    "GTZAN": CmiTask("genre"),
    "Nsynth_instrument": CmiTask("instrument"),
    "Nsynth_pitch": CmiTask("pitch"),
    "VocalSet_tech": CmiTask("technique"),
    "MTG_genre": CmiTask("genres"),
    "MTG_instrument": CmiTask("instruments"),
    "MTG_emotion": CmiTask("moods"),
    "MTG_top50tags": CmiTask("tags"),
    "MTT": CmiTask("tags"),
    "gtzan_beat": CmiTask("beats"),
    "ballroom_beat": CmiTask("beats"),
    "gtzan_downbeat": CmiTask("downbeats"),
    "ballroom_downbeat": CmiTask("downbeats"),
}

# CMI-Bench tasks this command does not score, with where to go instead.
NOT_MIR = {
    "MusicCaps": "captioning: use `mllm eval-caption --cmi-bench`",
    "SDD": "captioning: use `mllm eval-caption --cmi-bench`",
    "DSing": "lyrics transcription (WER) is not an eval-mir task",
    "Guzheng_Tech": "playing-technique detection is not an eval-mir task",
    "MedleyDB": "melody extraction is not an eval-mir task",
}


class CmiBenchError(ValueError):
    pass


def _cmi_name(name: str) -> str | None:
    """The CMI-Bench task spelled `name` in any case ("gs_key" -> "GS_key"), or None."""
    lowered = name.lower()
    for known in (*TASKS, *NOT_MIR):
        if known.lower() == lowered:
            return known
    return None


def split_file_name(path: str | Path) -> tuple[str, str]:
    """(model, CMI-Bench task) of a result file named `<model>_<TASK>.jsonl` (any case); CmiBenchError
    when the name ends in no task."""
    stem = Path(path).name
    for suffix in (".jsonl", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    lowered = stem.lower()
    for name in sorted([*TASKS, *NOT_MIR], key=len, reverse=True):
        if lowered == name.lower():
            return "", name
        if lowered.endswith("_" + name.lower()):
            return stem[: -len(name) - 1], name
    raise CmiBenchError(
        f"cannot tell the CMI-Bench task from the file name {Path(path).name!r}; give --task "
        f"(one of {', '.join(TASKS)}) or an mllm task name"
    )


def task_from_file_name(path: str | Path) -> str:
    """The CMI-Bench task a result file holds, from its name (`<model>_<TASK>.jsonl`, any case)."""
    return split_file_name(path)[1]


def resolve_task(path: str | Path, task: str | None) -> tuple[str, bool]:
    """(mllm task name, references are z-scores) for a result file and an optional --task."""
    name = task or task_from_file_name(path)
    name = _cmi_name(name) or name
    if name in NOT_MIR:
        raise CmiBenchError(f"{name} is {NOT_MIR[name]}")
    if name in TASKS:
        return TASKS[name].task, TASKS[name].standardized_reference
    return name, False  # an mllm task name given directly


def check_task_name(name: str, task_types: Mapping[str, str]) -> str:
    """`name` when --task names a task eval-mir knows: a CMI-Bench task, an mllm task, or one given
    a kind with --task-type; CmiBenchError listing them otherwise."""
    if _cmi_name(name) or name in task_types or name.lower() in KIND_OF_TASK \
            or name.lower() in SCORED_ELSEWHERE:
        return name
    raise CmiBenchError(
        f"--task {name}: unknown task; give a CMI-Bench task ({', '.join(TASKS)}), an mllm task "
        f"({', '.join(sorted(KIND_OF_TASK))}), or give its kind with --task-type {name}=KIND"
    )


def looks_like_cmi_bench(path: str | Path) -> bool:
    """True when the first record has CMI-Bench's `correct_answer` and no `id`."""
    for record in read_records(path, require_id=False):
        return "correct_answer" in record and "id" not in record
    return False


def read_cmi_bench(path: str | Path, task: str, name: str | None = None) -> Iterator[Record]:
    """Records of a CMI-Bench result file, all of `task` (an mllm task name)."""
    for index, item in enumerate(read_records(path, require_id=False, name=name)):
        if has_error(item):
            yield item
            continue
        answer = item.pop("correct_answer", None)
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        audio = item.get("audioid")
        record: Record = {
            "id": f"{index}:{os.path.basename(str(audio))}" if audio else str(index),
            "task": task,
            **{k: v for k, v in item.items() if k not in ("id", "task")},
            "reference": answer,
        }
        yield record
