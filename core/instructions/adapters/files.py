"""What the dataset adapters share: finding files of a published layout, reading tables, making records.

An adapter reads annotation files only (audio is never decoded): it yields one record per excerpt,

    {"id": "deam:2", "audio": "<root>/.../MEMD_audio/2.mp3", "dataset": "deam", "track": "2",
     "split": "train"?, "start"?, "end"?, "labels": {...}, "scales": {...}?, "metadata": {...}?}

with the field names of docs/records.md. `metadata` keeps the dataset's other columns (artist,
title, YouTube id, ...) for the generator's prompt and for audit. A row that cannot be read is an
error record naming the file and line; a layout that cannot be found at all is an AdapterError
(the command stops with exit code 2).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mllm.core.io.errors import Record, make_error

__all__ = [
    "AUDIO_SUFFIXES", "Adapter", "AdapterError", "AdapterReport", "find_files", "find_one", "find_dir",
    "read_table", "make_record", "row_error", "split_lists", "first_existing",
]

STAGE = "build-instructions"  # the stage named in error records (the command that reads the dataset)
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".au", ".aiff", ".aif")


class AdapterError(ValueError):
    """The dataset's layout is not found under the given folder (or an option is wrong)."""


@dataclass
class AdapterReport:
    """Counts of one adapter's run, printed on stderr."""

    dataset: str
    rows: int = 0  # annotation rows (or files) read
    records: int = 0  # records yielded
    missing_audio: int = 0
    excluded: Counter = field(default_factory=Counter)  # reason -> rows left out
    notes: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"{self.dataset}: {self.rows} annotation rows, {self.records} records"]
        if self.missing_audio:
            lines.append(f"{self.dataset}: {self.missing_audio} rows without their audio file (left out; --allow-missing-audio keeps them)")
        for reason, n in self.excluded.most_common():
            lines.append(f"{self.dataset}: {n} rows left out: {reason}")
        lines.extend(f"{self.dataset}: {note}" for note in self.notes)
        return lines


@dataclass(frozen=True)
class Adapter:
    name: str
    read: Callable[[Path, Mapping[str, str], AdapterReport], Iterator[Record]]
    options: Mapping[str, str]  # option name -> help
    layout: str  # one line: what the folder must hold


def find_files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file())


def find_one(root: Path, pattern: str, what: str) -> Path:
    found = find_files(root, pattern)
    if not found:
        raise AdapterError(f"no {what} ({pattern}) under {root}")
    return found[0]


def find_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    """`root` itself when its name is one of `names`, else the first folder below it so named."""
    lowered = {n.lower() for n in names}
    if root.name.lower() in lowered:
        return root
    for path in sorted(root.rglob("*")):
        if path.is_dir() and path.name.lower() in lowered:
            return path
    return None


def first_existing(candidates: list[Path]) -> Path:
    """The first candidate that exists, else the first one (its absence is counted later)."""
    for path in candidates:
        if path.exists():
            return path
    return candidates[0]


def read_table(path: Path, delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV/TSV with a header; names and values stripped (DEAM pads them)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = [name.strip() for name in next(reader, [])]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield reader.line_num, {name: cell.strip() for name, cell in zip(header, row)}


def split_lists(files: Mapping[str, Path], key: Callable[[str], str] = lambda line: Path(line).stem) -> dict[str, str]:
    """{item: split} from one list file per split (one item per line, e.g. "blues/blues.00012.wav")."""
    out: dict[str, str] = {}
    for split, path in files.items():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out[key(line.strip())] = split
    return out


def make_record(dataset: str, local_id: str, audio: Path | str, *, track: str, labels: dict[str, Any],
                split: str | None = None, scales: dict[str, list[float]] | None = None, **fields: Any) -> Record:
    record: Record = {"id": f"{dataset}:{local_id}", "audio": str(audio), "dataset": dataset, "track": track}
    if split is not None:
        record["split"] = split
    record.update({k: v for k, v in fields.items() if v is not None})
    record["labels"] = labels
    if scales:
        record["scales"] = scales
    return record


def row_error(dataset: str, local_id: str, where: str, exc: BaseException | str) -> Record:
    message = f"{where}: {exc}"
    return {"id": f"{dataset}:{local_id}", "dataset": dataset, "error": make_error(STAGE, message, "AnnotationError")}
