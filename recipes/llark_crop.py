"""LLark's 25 s crop as a record stage: records in on stdin, the same records out with `start`/`end`.

    python recipes/llark_crop.py < instructions.jsonl > instructions.cropped.jsonl

LLark (appendix, preprocessing, applied to every dataset of its study): a track shorter than 60 s
keeps its first 25 s (or all of it); a longer one keeps [30, 55) with probability 0.8, else [0, 25).
The rule is `mllm.core.audio.llark_crop`, seeded per track (the record's `track`, else its
`audio` path), so the key and tempo questions of one track hear the same excerpt and reruns give
the same crops. Records that already have `start`/`end`, have no `audio`, or carry an `error` pass
through unchanged; a file that cannot be read becomes an error record (stage "llark-crop"), as
every mllm stage does, and the script exits 1.

No mllm subcommand applies this rule (encode and caption use `start`/`end` when a record has them),
hence this script.
"""

from __future__ import annotations

import sys

from mllm.core.audio import AudioError, audio_info, llark_crop
from mllm.core.io.errors import make_error
from mllm.core.io.records import RecordWriter, read_records


def crop(record: dict) -> dict:
    if "error" in record or "audio" not in record or "start" in record or "end" in record:
        return record
    try:
        duration = audio_info(record["audio"]).duration
    except AudioError as exc:
        return {**record, "error": make_error("llark-crop", exc)}
    start, end = llark_crop(duration, key=str(record.get("track") or record["audio"]))
    return {**record, "start": start, "end": end}


def main() -> int:
    failed = 0
    with RecordWriter("-") as out:
        for record in read_records("-"):
            record = crop(record)
            failed += "error" in record
            out.write(record)
    if failed:
        print(f"llark-crop: {failed} records failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
