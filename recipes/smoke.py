"""What a recipe's smoke mode (MLLM_RECIPE_SMOKE=1) runs on instead of real data and real models.

    python recipes/smoke.py data DEST                  # tests/data's fixture datasets, with audio that decodes
    python recipes/smoke.py tiny-llm FOLDER FILE...    # a tiny random chat LLM whose tokenizer knows FILE's texts
    python recipes/smoke.py tiny-qwen2-audio FOLDER    # a tiny random Qwen2-Audio (tests/tiny_qwen2_audio.py)

`data` copies every fixture dataset of tests/data (the published layouts: annotation files as the
datasets ship them, tiny) into DEST/<name>/, under the same folder names the recipes expect of a
real DATA_DIR. The fixtures' audio files are empty placeholders, so each is replaced by a clip of
an `mllm synth` corpus rendered into DEST/synth/ (WAV bytes under the fixture's file name:
libsndfile reads them by content whatever the extension). The labels are the fixtures', the audio
is generated: the relation between them is arbitrary, which a smoke run does not need. DEAM has no
published split; DEST/deam/split/ gets song-id lists in Music2Emo's form (train.txt, val.txt,
test.txt) so the recipe's split_dir path is the one exercised.

The tiny models are random: a smoke run checks that the pipeline runs and scores the right items,
never what a model learns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "data"
AUDIO_SUFFIXES = {".wav", ".mp3", ".au", ".flac", ".ogg"}
# Music2Emo-style lists for the DEAM fixture's four songs with audio (2, 3, 4, 2001): two test songs,
# so that R2 and the correlations are defined on the smoke run's test split.
DEAM_SPLIT = {"train.txt": ["2", "3"], "val.txt": [], "test.txt": ["4", "2001"]}


def build_data(dest: Path, *, seconds: float = 4.0, sample_rate: int = 16000) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    for name in names:
        shutil.copytree(FIXTURES / name, dest / name, dirs_exist_ok=True)
    placeholders = sorted(p for p in dest.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                          and p.stat().st_size == 0)
    corpus = dest / "synth"
    if corpus.exists():
        shutil.rmtree(corpus)
    subprocess.run([os.environ.get("MLLM", "mllm"), "synth", str(corpus), "--n", "8", "--seconds", str(seconds), "--sample-rate",
                    str(sample_rate), "--no-stdout", "--threads", "1"], check=True)
    clips = sorted((corpus / "audio").glob("*.wav"))
    for i, path in enumerate(placeholders):
        shutil.copyfile(clips[i % len(clips)], path)
    split = dest / "deam" / "split"
    split.mkdir(exist_ok=True)
    for file, songs in DEAM_SPLIT.items():
        (split / file).write_text("".join(f"{song}\n" for song in songs))
    print(f"smoke data: {len(names)} fixture datasets in {dest}, {len(placeholders)} audio files from {corpus}",
          file=sys.stderr)


def build_tiny_llm(folder: Path, files: list[Path]) -> None:
    """mllm demo --fast's tiny Llama, its BPE learned from the messages of `files` (JSONL)."""
    from mllm.core.demo import build_tiny_llm as build

    with tempfile.TemporaryDirectory() as texts:
        for i, path in enumerate(files):
            with open(path, encoding="utf-8") as source, open(Path(texts) / f"{i}.jsonl", "w", encoding="utf-8") as out:
                for line in source:
                    record = json.loads(line)
                    out.write(json.dumps({"messages": record.get("messages", [])}) + "\n")
        build(str(folder), texts)


def build_tiny_qwen2_audio(folder: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_qwen2_audio import build_tiny_qwen2_audio as build

    build(folder)


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "data":
        build_data(Path(argv[1]))
    elif len(argv) >= 3 and argv[0] == "tiny-llm":
        build_tiny_llm(Path(argv[1]), [Path(p) for p in argv[2:]])
    elif len(argv) == 2 and argv[0] == "tiny-qwen2-audio":
        build_tiny_qwen2_audio(Path(argv[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
