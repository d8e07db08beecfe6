"""`mllm build-pairs`: preference pairs and MOS-style records with known answers, from a labelled corpus."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, INPUT_HELP, console, fail, finish, overwrite_option, progress, record_total,
                             refuse_overwrite, set_threads, stream_errors, threads_option)
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter, read_records


def command(
    input: str = typer.Argument(..., help=INPUT_HELP + " Clips with `audio` and `labels` (caption, tempo_bpm, key, instruments): the manifest of `mllm synth`."),
    out: Path = typer.Argument(..., help="Folder to write: OUT/audio/*.wav (every version of every clip), OUT/pairs.jsonl, OUT/mos.jsonl. A folder that holds anything is refused unless --overwrite."),
    per_clip: int = typer.Option(2, "--per-clip", help="Alignment pairs per clip: its caption, itself against that many mismatching clips of its split."),
    kinds: str = typer.Option("noise,clip,detune", "--kinds", help="Degradations for the musicality pairs (each clip takes one, in turn): noise, clip, detune."),
    min_tempo_change: float = typer.Option(0.2, "--min-tempo-change", help="An alignment negative's tempo differs from the caption's by at least this fraction."),
    fractions: str = typer.Option("0.6,0.2,0.2", "--split-fractions", help="TRAIN,VALID,TEST shares for clips without a `split` (by a hash of `track`)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the negatives, the sides, the kinds and the noise."),
    overwrite: bool = overwrite_option("Write into a folder OUT that is not empty: files of the same names are replaced, nothing else is removed. Without it a non-empty OUT is refused (exit 2)."),
    stdout: bool = typer.Option(True, "--stdout/--no-stdout", help="Also write the pair records to stdout, for a pipeline."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Make preference pairs with known answers from a labelled corpus: caption alignment and musicality at known degradation levels.

    Alignment pairs: a clip's caption with the clip itself (preferred) against a clip of the same
    split with another key, a tempo at least 20 % away and other instruments. Musicality pairs: a
    clip rendered clean against the same clip degraded by noise (SNR 30-0 dB), clipping or
    detuning (15-50 cents) at levels 1-4, and each level against the next, the less degraded
    preferred. Each pair has `axis`, `prompt`, `audio`, `audio_b`, `preference` (a or b, the side
    a seeded coin flip) and `split` (the clip's, else drawn from a hash of its track; pairs never
    cross splits). OUT/mos.jsonl holds one record per version of each clip with `system` (clean,
    level-1 ... level-4) and a stand-in `musicality` of 5 - level: a known ranking of systems for
    per-system correlation. These are constructed labels, not human judgements (docs/reward.md).
    A clip that cannot be used is an error record naming the field (exit 1); the others go on.

    Examples:

        mllm synth corpus/ --n 100 --seconds 4 --no-stdout && mllm build-pairs corpus/manifest.jsonl pairs/ --no-stdout

        mllm build-pairs corpus/manifest.jsonl pairs/ --kinds noise,clip --per-clip 3 | mllm train-reward - -o runs/rm
    """
    set_threads(threads)
    from mllm.core.instructions.splits import SplitError, parse_fractions
    from mllm.core.reward_model.pairs import STAGE, PairOptions, build_pairs

    if out.exists() and not out.is_dir():
        raise fail(f"OUT must be a folder, and {out} is a file")
    refuse_overwrite(out, input, overwrite=overwrite, kind="folder")
    try:
        options = PairOptions(per_clip=per_clip, kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
                              min_tempo_change=min_tempo_change, fractions=parse_fractions(fractions), seed=seed)
    except (ValueError, SplitError) as exc:
        raise fail(str(exc)) from None
    summary = StreamSummary(STAGE)
    with ExitStack() as stack, stream_errors():
        with progress() as bar:
            task = bar.add_task("degrading clips", total=record_total(input))
            built = build_pairs(read_records(input), out, options, note=lambda n: bar.update(task, completed=n))
        summary.records_in = built.clips
        writers = [stack.enter_context(RecordWriter(str(out / "pairs.jsonl")))]
        if stdout:
            writers.append(stack.enter_context(RecordWriter("-")))
        for record in built.pairs:
            summary.note(record, new_failure="error" in record and record["error"].get("stage") == STAGE)
            for writer in writers:
                writer.write(record)
        with RecordWriter(str(out / "mos.jsonl")) as writer:
            for record in built.mos:
                writer.write(record)
    counts = {}
    for record in built.pairs:
        counts[record.get("axis", "error")] = counts.get(record.get("axis", "error"), 0) + 1
    made = ", ".join(f"{n} {axis} pairs" for axis, n in counts.items()) or "no pairs"
    console.print(f"{built.clips} clips -> {made}, {len(built.mos)} MOS records in {out}", highlight=False, soft_wrap=True)
    finish(summary, allow_errors)
