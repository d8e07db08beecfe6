"""GTZAN (Tzanetakis & Cook 2002): 1,000 30-second excerpts, 100 in each of 10 genres.

Layout read (the original archive or the Kaggle copy):

    genres_original/<genre>/<genre>.000NN.wav     (Kaggle: Data/genres_original/...)
    genres/<genre>/<genre>.000NN.au               (the original archive)
    train_filtered.txt, valid_filtered.txt, test_filtered.txt   optional, anywhere under the root

One record per file: label `genre` (the folder name, e.g. "hiphop"), track = file stem.

Split: the "fault-filtered" split (Kereliuk et al. 2015; Sturm's list of repeated and mislabelled
excerpts), the one CMI-Bench and most MIR papers use, is read from the three list files when they
are there (lines like "blues/blues.00012.wav"): files in no list are left out and counted, since
leaving the faulty excerpts out is the point of that split. Without the lists every file is kept
and split by hash (--dataset-option split_lists=none ignores lists that are there).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from mllm.core.instructions.adapters.files import (
    AUDIO_SUFFIXES, Adapter, AdapterError, AdapterReport, find_dir, find_files, make_record, split_lists,
)
from mllm.core.io.errors import Record

LIST_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}


def read(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    folder = Path(options["audio_dir"]) if "audio_dir" in options else find_dir(root, ("genres_original", "genres"))
    if folder is None or not folder.is_dir():
        raise AdapterError(f"no genres_original/ or genres/ folder under {root}")
    lists = {}
    if options.get("split_lists", "auto") != "none":
        for split, name in LIST_FILES.items():
            found = find_files(root, name)
            if found:
                lists[split] = found[0]
    if lists and len(lists) < 3:
        raise AdapterError(f"found only {', '.join(p.name for p in lists.values())} of the three split lists")
    splits = split_lists(lists) if lists else {}
    if splits:
        report.notes.append("fault-filtered split from " + ", ".join(str(p) for p in lists.values()))
    for genre_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for audio in sorted(p for p in genre_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            report.rows += 1
            track = audio.stem
            split = splits.get(track)
            if splits and split is None:
                report.excluded["not in the fault-filtered split lists"] += 1
                continue
            yield make_record("gtzan", track, audio, track=track, labels={"genre": genre_dir.name}, split=split)


ADAPTER = Adapter(
    "gtzan", read,
    {"audio_dir": "the genres folder (default: genres_original/ or genres/ found under the root)",
     "split_lists": "auto (default: use *_filtered.txt when present) or none"},
    "genres_original/<genre>/<genre>.000NN.wav (+ train/valid/test_filtered.txt)",
)
