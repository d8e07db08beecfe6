"""DEAM (Aljanaki et al. 2017): static arousal and valence of 1,802 songs on the 1-9 scale.

Layout read (the published archives unpacked under one folder, any depth):

    .../static_annotations_averaged_songs_1_2000.csv      song_id, valence_mean, valence_std, arousal_mean, arousal_std
    .../static_annotations_averaged_songs_2000_2058.csv   the same columns (and more, ignored)
    .../MEMD_audio/<song_id>.mp3                          (or --dataset-option audio_dir=DIR)

Each song is one record: labels `arousal` and `valence` (the means), scales [1, 9], track = song id;
the standard deviations go to `metadata`.

Split: DEAM publishes none. The emotion paper uses 1261/271/270 songs, the split of Music2Emo
(Kang & Herremans 2025), which that project ships as lists of song ids (meta/split/train.txt,
val.txt, test.txt); give their folder with --dataset-option split_dir=DIR (a folder `split/`
beside the annotations is found by itself). Without lists the songs carry no split and are split
by a hash of the song id: `--split-fractions 0.7,0.15,0.15` gives the paper's proportions (not its
songs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from mllm.core.instructions.adapters.files import (
    Adapter, AdapterError, AdapterReport, find_dir, find_files, make_record, read_table, row_error, split_lists,
)
from mllm.core.instructions.splits import normalise_split
from mllm.core.io.errors import Record

SCALE = [1.0, 9.0]
SPLIT_FILES = {"train": ("train.txt",), "valid": ("val.txt", "valid.txt", "validation.txt"), "test": ("test.txt",)}


def split_files(folder: Path) -> dict[str, Path]:
    out = {}
    for split, names in SPLIT_FILES.items():
        for name in names:
            if (folder / name).is_file():
                out[split] = folder / name
                break
    return out


def _split_folder(root: Path, options: Mapping[str, str]) -> Path | None:
    if "split_dir" in options:
        folder = Path(options["split_dir"])
        if not split_files(folder):
            raise AdapterError(f"split_dir {folder}: no train.txt / val.txt / test.txt there")
        return folder
    folder = find_dir(root, ("split",))
    return folder if folder is not None and split_files(folder) else None


def read(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    tables = find_files(root, "static_annotations_averaged_songs_*.csv")
    if not tables:
        raise AdapterError(f"no DEAM annotations (static_annotations_averaged_songs_*.csv) under {root}")
    audio_dir = Path(options["audio_dir"]) if "audio_dir" in options else (find_dir(root, ("MEMD_audio",)) or root / "MEMD_audio")
    folder = _split_folder(root, options)
    splits = split_lists(split_files(folder), key=lambda line: line.split(".")[0]) if folder else {}
    if folder:
        report.notes.append(f"splits from the lists in {folder}")
    for table in tables:
        for line, row in read_table(table):
            report.rows += 1
            song = row.get("song_id", "")
            try:
                labels = {"arousal": float(row["arousal_mean"]), "valence": float(row["valence_mean"])}
            except (KeyError, ValueError) as exc:
                yield row_error("deam", song or f"{table.name}:{line}", f"{table.name} line {line}", f"no arousal_mean/valence_mean number ({exc})")
                continue
            metadata = {k: float(row[k]) for k in ("arousal_std", "valence_std") if row.get(k)}
            split = splits.get(song)
            yield make_record(
                "deam", song, audio_dir / f"{song}.mp3", track=song, labels=labels,
                split=normalise_split(split) if split else None,
                scales={"arousal": SCALE, "valence": SCALE}, metadata=metadata or None,
            )


ADAPTER = Adapter(
    "deam", read,
    {"audio_dir": "folder of <song_id>.mp3 (default: the MEMD_audio folder found under the root)",
     "split_dir": "folder of train.txt, val.txt, test.txt song-id lists (Music2Emo's meta/split)"},
    "static_annotations_averaged_songs_*.csv and MEMD_audio/<song_id>.mp3",
)
