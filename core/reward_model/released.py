"""Reading released reward-model results and MOS tables as mllm records (docs/reward.md), so that
published figures can be rescored with `mllm eval-reward`.

CMI-RewardBench's `results.jsonl` (written by its `inference_benchmark.py`, scored by its
`evaluate_results.py`) holds one row per benchmark item, its dataset told by `source`:

    source                  row                                          becomes
    "...PAM..."             `musicality`, `text-music alignment` (MOS)    a MOS record
    "MusicEval", "SongEval" `musicality` (MOS)                            a MOS record
    "...Music Arena..."     `preference` (one holistic label), two clips  a pair record, scored on musicality
    "cmi-arena-annotation"  `preference-musicality`, `preference-alignment` a pair record (CMI-Pref)

with the clips in `audio-path` and `audio2`, the model's scores in `predicted_musicality`,
`predicted_text-music alignment` and (clip B) the same names + `_b`, and a judge's labels in
`predicted_preference-musicality` / `predicted_preference-alignment`. A row becomes a record

    id                 the row's `id` when it has one, else "<row index>:<file name of audio-path>"
    audio, audio_b     `audio-path`, `audio2`
    dataset            PAM | MusicEval | MusicArena | CMI-Pref | Unknown (the rule of their evaluator)
    modality           the row's `modality`, else text / text+lyrics / text+ref / text+lyrics+ref
                       from `lyrics` and `ref-audio-path` (their evaluator's rule)
    mos                {musicality, alignment} from the MOS fields (MOS rows)
    preference         {musicality[, alignment]} labels (pair rows; Music Arena's on musicality)
    reward, reward_b   {musicality, alignment} from the predicted_* fields
    predicted_preference  {axis: label} from predicted_preference-* (used when a pair has no scores)
    confidence         {axis: value} from confidence_preference-* (CMI-Pref)

and every field of the row is kept beside these. An empty or null value is a value not given (as
their evaluator drops it); a value of the wrong kind is left in place for eval-reward to name.

MusicEval / PAM-style MOS tables (CSV or TSV, detected from the first line) become MOS records:

* with a header: a clip column (clip, audio, wav, wavID, utt, filename, file, id), an optional
  system column (system, system_id, sys, model), MOS columns named by their axis (musicality,
  overall, mos, mi -> musicality; alignment, textual, text-music alignment, ta -> alignment), and
  optional model scores `predicted_<axis>` / `pred_<axis>` -> `reward`; other columns pass through;
* without a header, the VoiceMOS / AudioMOS answer lists `wavID,score[,score2]`: axes musicality
  (the AudioMOS 2025 track 1 "overall musical impression") and alignment ("textual alignment").

When no system column is given, the system is read from the clip's name as the challenges name
their files: "sys64e2f-utt491a78a.wav" -> "sys64e2f" (VoiceMOS), "audiomos2025-track1-S001_P001.wav"
-> "S001" (AudioMOS: the part before "_" of the last "-"-separated part); a name of neither form
has no system. `predictions` (a second table in the same form, a model's scores) fills `reward`
for the clips it names.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mllm.core.io.errors import Record, has_error
from mllm.core.io.records import RecordStreamError, read_records, spool_stdin

__all__ = [
    "CMI_AXES", "looks_like_cmi_rewardbench", "read_cmi_rewardbench", "benchmark_dataset", "looks_like_mos_table",
    "read_mos_table", "system_of_clip", "INPUT_FORMATS", "detect_input_format", "open_reward_records",
]

# CMI-RewardBench's field names of each axis: MOS field, model score field, preference field
CMI_AXES = {
    "musicality": ("musicality", "predicted_musicality", "preference-musicality"),
    "alignment": ("text-music alignment", "predicted_text-music alignment", "preference-alignment"),
}
CMI_FIELDS = ("audio-path", "audio2", "source", "preference", "preference-musicality", "preference-alignment",
              "musicality", "text-music alignment")


def _given(value: Any) -> bool:
    """A value is given unless null, an empty string or NaN (what their evaluator drops)."""
    if value is None:
        return False
    if isinstance(value, str) and not value.strip():
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return True


def benchmark_dataset(row: dict) -> str:
    """The benchmark dataset of a CMI-RewardBench row, by their evaluator's rule on `source`."""
    source = str(row.get("source") or "")
    if "PAM" in source:
        return "PAM"
    if source in ("MusicEval", "SongEval"):
        return "MusicEval"
    if "Music Arena" in source:
        return "MusicArena"
    if source == "cmi-arena-annotation":
        return "CMI-Pref"
    return "Unknown"


def _modality(row: dict) -> str:
    if _given(row.get("modality")):
        return str(row["modality"]).strip()
    lyrics = _given(row.get("lyrics"))
    reference = _given(row.get("ref-audio-path"))
    return "text" + ("+lyrics" if lyrics else "") + ("+ref" if reference else "")


def looks_like_cmi_rewardbench(path: str | Path) -> bool:
    """True when the first record has no `id` of mllm's kind and CMI-RewardBench's fields
    (`audio-path` and `source`, or one of its judgement fields)."""
    try:
        for record in read_records(path, require_id=False):
            if has_error(record) or "audio-path" not in record:
                return False
            return "source" in record or any(name in record for name in CMI_FIELDS[3:])
    except RecordStreamError:
        return False
    return False


def _axis_values(row: dict, fields: dict[str, str]) -> dict[str, Any]:
    return {axis: row[name] for axis, name in fields.items() if _given(row.get(name))}


def read_cmi_rewardbench(path: str | Path, name: str | None = None) -> Iterator[Record]:
    """Records (docs/reward.md) of a CMI-RewardBench results.jsonl; see the module docstring."""
    for index, row in enumerate(read_records(path, require_id=False, name=name)):
        if has_error(row):
            row.setdefault("id", str(index))
            yield row
            continue
        audio = row.get("audio-path")
        record: Record = dict(row)
        record["id"] = str(row["id"]) if _given(row.get("id")) else (
            f"{index}:{os.path.basename(str(audio))}" if _given(audio) else str(index))
        dataset = benchmark_dataset(row)
        record["dataset"] = dataset
        record["modality"] = _modality(row)
        if _given(audio):
            record["audio"] = audio
        if _given(row.get("audio2")):
            record["audio_b"] = row["audio2"]
        reward = _axis_values(row, {axis: fields[1] for axis, fields in CMI_AXES.items()})
        reward_b = _axis_values(row, {axis: fields[1] + "_b" for axis, fields in CMI_AXES.items()})
        if dataset == "MusicArena" or (_given(row.get("preference")) and dataset == "Unknown"):
            # Music Arena has one holistic label; CMI-RewardBench scores it by musicality
            preference = {"musicality": row["preference"]} if _given(row.get("preference")) else {}
        else:
            preference = _axis_values(row, {axis: fields[2] for axis, fields in CMI_AXES.items()})
        if preference or _given(row.get("audio2")):
            record["preference"] = preference
            predicted = _axis_values(row, {axis: "predicted_" + fields[2] for axis, fields in CMI_AXES.items()})
            if predicted:
                record["predicted_preference"] = predicted
            confidence = _axis_values(row, {axis: "confidence_" + fields[2] for axis, fields in CMI_AXES.items()})
            if confidence:
                record["confidence"] = confidence
            if reward_b:
                record["reward_b"] = reward_b
        else:
            record["mos"] = _axis_values(row, {axis: fields[0] for axis, fields in CMI_AXES.items()})
        if reward:
            record["reward"] = reward
        yield record


# ---------------------------------------------------------------- MOS tables

CLIP_COLUMNS = ("clip", "clip_id", "audio", "audio_path", "audio-path", "wav", "wavid", "wav_id", "utt", "utterance",
                "filename", "file", "id")
SYSTEM_COLUMNS = ("system", "system_id", "sys", "sysid", "model")
AXIS_COLUMNS = {
    "musicality": "musicality", "overall": "musicality", "mos": "musicality", "mi": "musicality",
    "musical impression": "musicality", "overall musical impression": "musicality",
    "alignment": "alignment", "textual": "alignment", "text-music alignment": "alignment", "ta": "alignment",
    "textual alignment": "alignment",
}
PREDICTED_PREFIXES = ("predicted_", "pred_")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")


def system_of_clip(clip: str) -> str | None:
    """The system a challenge's file name gives (module docstring), or None.

    Examples
    --------
    >>> system_of_clip("sys64e2f-utt491a78a.wav"), system_of_clip("audiomos2025-track1-S001_P001.wav")
    ('sys64e2f', 'S001')
    >>> system_of_clip("clip07.wav") is None
    True
    """
    stem = Path(clip).stem
    match = re.match(r"^(sys[^-]+)-utt", stem)
    if match:
        return match.group(1)
    last = stem.rsplit("-", 1)[-1]
    return last.split("_", 1)[0] if "_" in last and last.split("_", 1)[0] else None


def looks_like_mos_table(path: str | Path) -> bool:
    """A path ending in .csv, .tsv or .txt is read as a MOS table."""
    return str(path).lower().endswith(TABLE_SUFFIXES)


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # left as text: eval-reward names the field


def _rows(path: str | Path, name: str) -> tuple[list[str] | None, list[list[str]]]:
    """(header or None, rows) of a CSV/TSV file; the delimiter is a tab when the first line has one."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordStreamError(f"cannot read {name}: {exc}") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None, []
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]
    first = rows[0]
    headerless = len(first) >= 2 and all(isinstance(_number(cell), float) for cell in first[1:])
    return (None, rows) if headerless else ([cell.lower() for cell in first], rows[1:])


def _table_records(path: str | Path, name: str) -> Iterator[tuple[str, Record]]:
    """(clip, record with `mos` and maybe `reward`) per row of a MOS table."""
    header, rows = _rows(path, name)
    if header is None:
        axes = ("musicality", "alignment")
        for line, row in enumerate(rows, start=1):
            record: Record = {"id": row[0], "audio": row[0], "mos": {a: _number(v) for a, v in zip(axes, row[1:3])}}
            yield row[0], record
        return
    clip_column = next((c for c in CLIP_COLUMNS if c in header), None)
    if clip_column is None:
        raise RecordStreamError(f"{name}: no clip column (one of {', '.join(CLIP_COLUMNS)}) in the header {header}")
    system_column = next((c for c in SYSTEM_COLUMNS if c in header and c != clip_column), None)
    mos_columns = {c: AXIS_COLUMNS[c] for c in header if c in AXIS_COLUMNS}
    predicted_columns = {}
    for column in header:
        for prefix in PREDICTED_PREFIXES:
            if column.startswith(prefix) and column[len(prefix):] in AXIS_COLUMNS:
                predicted_columns[column] = AXIS_COLUMNS[column[len(prefix):]]
    if not mos_columns and not predicted_columns:
        raise RecordStreamError(f"{name}: no MOS column (one of {', '.join(AXIS_COLUMNS)}) in the header {header}")
    used = {clip_column, system_column, *mos_columns, *predicted_columns}
    for line, row in enumerate(rows, start=2):
        cells = dict(zip(header, row))
        clip = cells.get(clip_column, "")
        record = {"id": clip or f"line {line}", "audio": clip}
        record.update({column: value for column, value in cells.items() if column not in used})
        record["mos"] = {axis: _number(cells[c]) for c, axis in mos_columns.items() if cells.get(c, "") != ""}
        reward = {axis: _number(cells[c]) for c, axis in predicted_columns.items() if cells.get(c, "") != ""}
        if reward:
            record["reward"] = reward
        if system_column and cells.get(system_column):
            record["system"] = cells[system_column]
        yield clip, record


def read_mos_table(path: str | Path, predictions: str | Path | None = None, name: str | None = None) -> Iterator[Record]:
    """MOS records of a MusicEval / PAM-style table (module docstring); with `predictions`, a
    second table of a model's scores (same forms; its MOS columns are the model's) gives `reward`."""
    name = name or str(path)
    scores: dict[str, dict] = {}
    if predictions is not None:
        for clip, record in _table_records(predictions, str(predictions)):
            scores[clip] = record.get("mos") or record.get("reward") or {}
    for clip, record in _table_records(path, name):
        if "system" not in record:
            system = system_of_clip(clip)
            if system is not None:
                record["system"] = system
        if predictions is not None and clip in scores:
            record["reward"] = scores[clip]
        yield record


# ---------------------------------------------------------------- the input of eval-reward

INPUT_FORMATS = ("auto", "records", "cmi-rewardbench", "mos-table")


def detect_input_format(path: str | Path) -> str:
    """records | cmi-rewardbench | mos-table: a .csv/.tsv/.txt path is a MOS table, a JSONL
    whose first row has CMI-RewardBench's fields and no `id` a results.jsonl, anything else records."""
    if looks_like_mos_table(path):
        return "mos-table"
    return "cmi-rewardbench" if looks_like_cmi_rewardbench(path) else "records"


def open_reward_records(path: str, stack, input_format: str = "auto",
                        predictions: str | None = None) -> tuple[Callable[[], Iterator[Record]], str]:
    """(a function starting a pass over the records of `path`, the format read); "-" is stdin,
    copied to a temporary file first (closed with `stack`). ValueError for an unknown format, or
    `predictions` with records that are not a MOS table."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"--input-format must be one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")
    real = spool_stdin(stack) if path == "-" else path
    shown = "<stdin>" if path == "-" else path
    chosen = detect_input_format(real) if input_format == "auto" else input_format
    if predictions is not None and chosen != "mos-table":
        raise ValueError(f"--predictions joins a model's scores to a MOS table; {shown} is read as {chosen}")
    if chosen == "mos-table":
        return (lambda: read_mos_table(real, predictions, name=shown)), chosen
    if chosen == "cmi-rewardbench":
        return (lambda: read_cmi_rewardbench(real, name=shown)), chosen
    return (lambda: read_records(real, name=shown)), chosen
