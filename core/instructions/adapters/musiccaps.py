"""MusicCaps (Agostinelli et al. 2023): 5,521 ten-second YouTube clips with a caption and aspects.

Layout read:

    musiccaps-public.csv     ytid, start_s, end_s, audioset_positive_labels, aspect_list, caption,
                             author_id, is_balanced_subset, is_audioset_eval
    <any folder below the root>/<ytid>.wav        the clip, as download scripts save it
                       or  [<ytid>]-[<start>-<end>].wav   (yt-dlp's naming in several scripts)

The audio files are taken to be the 10-second clips themselves (what every public download script
writes), so records carry no `start`/`end`; start_s and end_s (seconds in the YouTube video) stay in
`metadata` with the other columns. Labels: `caption`, and `tags` = the aspect list (a Python list
literal in the CSV). Split: is_audioset_eval True -> test, else train (the split MusicCaps results,
LLark's and CMI-Bench's included, are reported on). Track = ytid.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from mllm.core.instructions.adapters.files import (
    AUDIO_SUFFIXES, Adapter, AdapterReport, find_one, make_record, read_table, row_error,
)
from mllm.core.io.errors import Record

BRACKETED = re.compile(r"^\[(?P<ytid>[^\]]+)\]")


def audio_index(folder: Path) -> dict[str, Path]:
    """ytid -> audio file, from file names `<ytid>.<ext>` or `[<ytid>]-[...].<ext>`."""
    index: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        match = BRACKETED.match(path.stem)
        index.setdefault(match.group("ytid") if match else path.stem, path)
    return index


def _aspects(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text.strip("[]").split(",")
    if isinstance(value, str):
        value = [value]
    return [str(v).strip().strip("'\"") for v in value if str(v).strip().strip("'\"")]


def read(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    table = find_one(root, "musiccaps-public.csv", "MusicCaps table")
    folder = Path(options["audio_dir"]) if "audio_dir" in options else root
    index = audio_index(folder)
    for line, row in read_table(table):
        report.rows += 1
        ytid = row.get("ytid", "")
        caption = row.get("caption", "")
        if not ytid or not caption:
            yield row_error("musiccaps", ytid or f"line{line}", f"{table.name} line {line}", "needs ytid and caption")
            continue
        labels = {"caption": caption, "tags": _aspects(row.get("aspect_list", "[]"))}
        split = "test" if row.get("is_audioset_eval", "").lower() == "true" else "train"
        metadata = {k: row[k] for k in ("ytid", "start_s", "end_s", "author_id", "is_balanced_subset",
                                        "is_audioset_eval", "audioset_positive_labels") if k in row}
        audio = index.get(ytid, folder / f"{ytid}.wav")
        yield make_record("musiccaps", ytid, audio, track=ytid, labels=labels, split=split, metadata=metadata)


ADAPTER = Adapter(
    "musiccaps", read,
    {"audio_dir": "folder searched for <ytid>.wav / [<ytid>]-[...].wav (default: the root)"},
    "musiccaps-public.csv and the clips as <ytid>.wav anywhere below the root",
)
