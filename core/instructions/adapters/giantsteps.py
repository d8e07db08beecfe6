"""GiantSteps key and tempo (Knees et al. 2015): electronic dance music excerpts, one label file each.

Layouts read (the GitHub repositories, with their audio downloaded by their scripts):

    giantsteps-key-dataset/
        annotations/key/<n>.LOFI.key          one line, e.g. "F minor" (read with core.parse.key)
        annotations/genre/<n>.LOFI.genre      optional, e.g. "techno"
        audio/<n>.LOFI.mp3
    giantsteps-tempo-dataset/
        annotations_v2/tempo/<n>.LOFI.bpm     the corrected tempi LLark uses (default)
        annotations/tempo/<n>.LOFI.bpm        the first version (--dataset-option annotations=v1)
        annotations/genre/<n>.LOFI.genre
        audio/<n>.LOFI.mp3

One record per excerpt: labels `key` (or `tempo_bpm`) and `genre` when given; track = <n>.
Tracks annotated 0 BPM are left out and counted, as LLark does. Neither dataset has a split: both
are test sets by custom (LLark and CMI-Bench evaluate on them); `--split-fractions 0,0,1` puts
every record in test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from mllm.core.instructions.adapters.files import (
    Adapter, AdapterError, AdapterReport, first_existing, make_record, row_error,
)
from mllm.core.io.errors import Record
from mllm.core.parse.key import read_key


def _annotation_dir(root: Path, version: str, kind: str) -> Path:
    folder = root / version / kind
    if not folder.is_dir():
        matches = sorted(p for p in root.rglob(kind) if p.is_dir() and p.parent.name == version)
        if not matches:
            raise AdapterError(f"no {version}/{kind} folder under {root}")
        folder = matches[0]
    return folder


def _files(root: Path, version: str, kind: str, suffix: str, options: Mapping[str, str]):
    folder = _annotation_dir(root, version, kind)
    genre_dir = folder.parent.parent / "annotations" / "genre"
    audio_dir = Path(options["audio_dir"]) if "audio_dir" in options else folder.parent.parent / "audio"
    for path in sorted(folder.glob(f"*{suffix}")):
        name = path.name[: -len(suffix)]  # "10089.LOFI"
        genre_file = genre_dir / f"{name}.genre"
        genre = genre_file.read_text(encoding="utf-8").strip() if genre_file.is_file() else None
        audio = first_existing([audio_dir / f"{name}.mp3", audio_dir / f"{name}.wav"])
        yield path, name, name.split(".")[0], genre, audio


def read_key_dataset(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    for path, name, track, genre, audio in _files(root, "annotations", "key", ".key", options):
        report.rows += 1
        text = path.read_text(encoding="utf-8").strip()
        key = read_key(text)
        if key is None:
            yield row_error("giantsteps-key", track, path.name, f"not a key: {text!r}")
            continue
        labels = {"key": key, **({"genre": genre} if genre else {})}
        yield make_record("giantsteps-key", track, audio, track=track, labels=labels, metadata={"annotation": text})


def read_tempo_dataset(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    version = options.get("annotations", "v2")
    if version not in ("v1", "v2"):
        raise AdapterError(f"annotations must be v1 or v2, got {version!r}")
    folder = "annotations_v2" if version == "v2" else "annotations"
    report.notes.append(f"tempi from {folder}/tempo")
    for path, name, track, genre, audio in _files(root, folder, "tempo", ".bpm", options):
        report.rows += 1
        text = path.read_text(encoding="utf-8").strip()
        try:
            tempo = float(text.split()[0])
        except (ValueError, IndexError):
            yield row_error("giantsteps-tempo", track, path.name, f"not a tempo: {text!r}")
            continue
        if tempo <= 0:
            report.excluded["annotated 0 BPM (left out, as LLark does)"] += 1
            continue
        labels = {"tempo_bpm": tempo, **({"genre": genre} if genre else {})}
        yield make_record("giantsteps-tempo", track, audio, track=track, labels=labels)


KEY_ADAPTER = Adapter(
    "giantsteps-key", read_key_dataset,
    {"audio_dir": "folder of <n>.LOFI.mp3 (default: audio/ beside annotations/)"},
    "annotations/key/*.key (+ annotations/genre/*.genre) and audio/<n>.LOFI.mp3",
)
TEMPO_ADAPTER = Adapter(
    "giantsteps-tempo", read_tempo_dataset,
    {"audio_dir": "folder of <n>.LOFI.mp3 (default: audio/ beside the annotations)",
     "annotations": "v2 (default: annotations_v2, corrected) or v1"},
    "annotations_v2/tempo/*.bpm (or annotations/tempo) and audio/<n>.LOFI.mp3",
)
