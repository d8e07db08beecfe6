"""MTG-Jamendo (Bogdanov et al. 2019): 55,000 full tracks with genre, instrument and mood/theme tags.

Layout read (the mtg-jamendo-dataset repository, audio downloaded by its script):

    data/autotagging.tsv                                   TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS...
    data/splits/split-0/autotagging-{train,validation,test}.tsv    the same columns
    audio/<PATH>  e.g. audio/14/214.mp3   (or the low-quality copy: audio-low/14/214.low.mp3)

A row holds its tags in the columns after DURATION, tab-separated, each `category---name`:
`genre---rock` -> labels.genres, `instrument---piano` -> labels.instruments, `mood/theme---happy`
-> labels.moods (three tagging tasks, the names eval-mir knows). DURATION goes to labels.duration;
ARTIST_ID and ALBUM_ID go to `artist` and `album` (`--group-by artist` keeps an artist's tracks
together in a hashed split).

Split: the dataset's split-0 by default (--dataset-option split=split-1..4, or split=none to read
data/autotagging.tsv with no split); its splits already keep each artist in one split. The other
tag files (autotagging_genre, autotagging_moodtheme, autotagging_top50tags, ...) are read with
--dataset-option file=NAME.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from mllm.core.instructions.adapters.files import (
    Adapter, AdapterError, AdapterReport, find_files, first_existing, make_record, row_error,
)
from mllm.core.io.errors import Record

CATEGORIES = {"genre": "genres", "instrument": "instruments", "mood/theme": "moods"}
SPLITS = {"train": "train", "validation": "valid", "test": "test"}
COLUMNS = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION")


def _tables(root: Path, options: Mapping[str, str]) -> list[tuple[Path, str | None]]:
    name = options.get("file", "autotagging")
    split = options.get("split", "split-0")
    if split != "none":
        folders = sorted(p for p in root.rglob(split) if p.is_dir() and p.parent.name == "splits")
        if folders:
            tables = [(folders[0] / f"{name}-{s}.tsv", mine) for s, mine in SPLITS.items()]
            missing = [str(p) for p, _ in tables if not p.is_file()]
            if missing:
                raise AdapterError(f"missing split files: {', '.join(missing)}")
            return tables
        if "split" in options:
            raise AdapterError(f"no splits/{split} folder under {root}")
    found = find_files(root, f"{name}.tsv")
    if not found:
        raise AdapterError(f"no {name}.tsv under {root}")
    return [(found[0], None)]


def _audio_dirs(root: Path, options: Mapping[str, str]) -> list[Path]:
    if "audio_dir" in options:
        return [Path(options["audio_dir"])]
    return [root / "audio", root / "audio-low", root]


def read(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    audio_dirs = _audio_dirs(root, options)
    for table, split in _tables(root, options):
        with open(table, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split("\t")
            if tuple(header[:5]) != COLUMNS:
                raise AdapterError(f"{table}: expected the columns {' '.join(COLUMNS)} TAGS, got {header[:5]}")
            for number, line in enumerate(handle, start=2):
                if not line.strip():
                    continue
                report.rows += 1
                cells = line.rstrip("\n").split("\t")
                track, artist, album, path, duration = cells[:5]
                labels: dict = {}
                try:
                    labels["duration"] = float(duration)
                except ValueError:
                    yield row_error("mtg-jamendo", track or f"{table.name}:{number}", f"{table.name} line {number}", f"DURATION {duration!r} is not a number")
                    continue
                for tag in cells[5:]:
                    category, _, name = tag.strip().partition("---")
                    if category in CATEGORIES and name:
                        labels.setdefault(CATEGORIES[category], []).append(name)
                low = path[: -len(".mp3")] + ".low.mp3" if path.endswith(".mp3") else path
                audio = first_existing([d / p for d in audio_dirs for p in (path, low)])
                yield make_record(
                    "mtg-jamendo", track, audio, track=track, labels=labels, split=split,
                    artist=artist, album=album, metadata={"path": path},
                )


ADAPTER = Adapter(
    "mtg-jamendo", read,
    {"audio_dir": "folder holding the PATH column's files (default: audio/, audio-low/ or the root)",
     "split": "split-0 (default) .. split-4, or none",
     "file": "autotagging (default), autotagging_genre, autotagging_instrument, autotagging_moodtheme, autotagging_top50tags"},
    "data/autotagging.tsv or data/splits/split-N/autotagging-{train,validation,test}.tsv, audio/<PATH>",
)
