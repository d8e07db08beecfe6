"""MERGE (Louro et al. 2024): songs labelled with Russell's quadrants, audio/lyrics/bimodal subsets.

Layout read (the Zenodo archives unpacked; the root may be the subset folder itself):

    MERGE_Audio_Complete/                     (--dataset-option subset=audio_complete, the default;
                                               audio_balanced, bimodal_complete, bimodal_balanced)
        merge_audio_complete_metadata.csv     Song (Audio_Song in the bimodal subsets), Quadrant, Artist, Title, ...
        merge_audio_complete_av_values.csv    Song, Arousal, Valence  (optional)
        Q1/ Q2/ Q3/ Q4/<Song>.mp3              (bimodal subsets: audio/Q1/...)
        tvt_dataframes/tvt_70_15_15/tvt_70_15_15_{train,validate,test}_audio_complete.csv

Labels per song:
- `quadrant` Q1-Q4, and the classes it stands for on Russell's circumplex (the dataset's definition):
  Q1 = high arousal, positive valence; Q2 = high arousal, negative valence; Q3 = low arousal,
  negative valence; Q4 = low arousal, positive valence -> `arousal_class` high/low and
  `valence_class` positive/negative (three classification tasks).
- `arousal` and `valence` from the AV-values file when present, on the scale given by
  --dataset-option av_scale=LOW,HIGH (default 0,1, the range of the published values; check your
  copy). These feed the regression tasks in the emotion paper's form.
Split: the dataset's own train/validate/test lists, tvt_70_15_15 by default
(--dataset-option split=tvt_40_30_30, or split=none for a hashed split by song).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from mllm.core.instructions.adapters.files import (
    Adapter, AdapterError, AdapterReport, find_dir, find_one, first_existing, make_record, read_table, row_error,
)
from mllm.core.evaluation.tasks import TaskError, parse_scale
from mllm.core.io.errors import Record

QUADRANTS = {
    "Q1": ("high", "positive"),
    "Q2": ("high", "negative"),
    "Q3": ("low", "negative"),
    "Q4": ("low", "positive"),
}
SUBSETS = ("audio_complete", "audio_balanced", "bimodal_complete", "bimodal_balanced")
SPLIT_NAMES = {"train": "train", "validate": "valid", "test": "test"}


def _song_id(row: Mapping[str, str]) -> str:
    return row.get("Song") or row.get("Audio_Song") or ""


def _splits(base: Path, name: str) -> dict[str, str]:
    if name == "none":
        return {}
    folder = base / "tvt_dataframes" / name
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.csv")):
        split = next((s for word, s in SPLIT_NAMES.items() if f"_{word}_" in path.name), None)
        if split is None:
            continue
        for _, row in read_table(path):
            out[_song_id(row)] = split
    return out


def _scale(text: str) -> list[float]:
    try:
        return list(parse_scale(text))
    except TaskError as exc:
        raise AdapterError(f"av_scale: {exc}") from None


def read(root: Path, options: Mapping[str, str], report: AdapterReport) -> Iterator[Record]:
    subset = options.get("subset", "audio_complete")
    if subset not in SUBSETS:
        raise AdapterError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    folder_name = "MERGE_" + "_".join(word.capitalize() for word in subset.split("_"))
    base = find_dir(root, (folder_name,))
    if base is None:
        raise AdapterError(f"no {folder_name} folder under {root}")
    metadata_file = find_one(base, "*_metadata.csv", "MERGE metadata")
    av_files = sorted(base.glob("*_av_values.csv"))
    values = {_song_id(row): row for _, row in read_table(av_files[0])} if av_files else {}
    scale = _scale(options.get("av_scale", "0,1"))
    splits = _splits(base, options.get("split", "tvt_70_15_15"))
    if splits:
        report.notes.append(f"splits from tvt_dataframes/{options.get('split', 'tvt_70_15_15')}")
    audio_root = Path(options["audio_dir"]) if "audio_dir" in options else (base / "audio" if subset.startswith("bimodal") else base)
    for line, row in read_table(metadata_file):
        report.rows += 1
        song = _song_id(row)
        quadrant = row.get("Quadrant", "").upper()
        if not song or quadrant not in QUADRANTS:
            yield row_error("merge", song or f"line{line}", f"{metadata_file.name} line {line}", f"needs Song and Quadrant Q1-Q4, got {song!r}, {quadrant!r}")
            continue
        arousal_class, valence_class = QUADRANTS[quadrant]
        labels: dict = {"quadrant": quadrant, "arousal_class": arousal_class, "valence_class": valence_class}
        scales = None
        if song in values:
            try:
                labels["arousal"] = float(values[song]["Arousal"])
                labels["valence"] = float(values[song]["Valence"])
                scales = {"arousal": scale, "valence": scale}
            except (KeyError, ValueError) as exc:
                yield row_error("merge", song, av_files[0].name, f"no Arousal/Valence numbers ({exc})")
                continue
        audio = first_existing([audio_root / quadrant / f"{song}{suffix}" for suffix in (".mp3", ".wav")])
        metadata = {k: row[k] for k in ("Artist", "Title", "Moods", "Genres") if row.get(k)}
        yield make_record(
            "merge", song, audio, track=song, labels=labels, split=splits.get(song), scales=scales,
            metadata=metadata or None,
        )


ADAPTER = Adapter(
    "merge", read,
    {"audio_dir": "folder holding Q1..Q4/<Song>.mp3 (default: the subset folder)",
     "subset": f"one of {', '.join(SUBSETS)} (default audio_complete)",
     "split": "tvt_70_15_15 (default), tvt_40_30_30, or none",
     "av_scale": "LOW,HIGH of the Arousal/Valence values (default 0,1)"},
    "MERGE_<Subset>/merge_*_metadata.csv (+ *_av_values.csv, Q1..Q4/, tvt_dataframes/)",
)
