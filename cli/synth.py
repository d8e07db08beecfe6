"""`mllm synth`: render a labelled corpus of music (generated pieces and music21 scores) to a folder."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import soundfile
import typer

from mllm.cli.common import (ALLOW_ERRORS_HELP, FORMAT_HELP, fail, finish, overwrite_option, progress, refuse_overwrite,
                             set_threads, stream_errors, threads_option)
from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordWriter
from mllm.core.synth.corpus import SOURCES, SynthOptions, synthesize
from mllm.core.synth.pieces import DEFAULT_METERS
from mllm.core.synth.render import RENDERERS, RenderError, choose_renderer
from mllm.core.synth.styles import METERS, STYLE_NAMES

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def _names(text: str, allowed, option: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise fail(f"{option}: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(allowed)}")
    return names


def _tempo_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise fail(f"--tempo-range takes LOW,HIGH in whole BPM (e.g. 60,180), got {text!r}") from None
    return low, high


def command(
    out: Path = typer.Argument(..., help="Folder to write: OUT/audio/*.wav and OUT/manifest.jsonl. A folder that holds anything is refused unless --overwrite."),
    n: int = typer.Option(100, "--n", help="Number of clips."),
    seconds: float = typer.Option(10.0, "--seconds", help="Length of every clip (a score shorter than this gives a shorter clip)."),
    sample_rate: int = typer.Option(22050, "--sample-rate", help="Sample rate of the audio files (Hz)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same labels and the same audio bytes."),
    source: str = typer.Option("generated", "--source", help=f"{' | '.join(SOURCES)}: generated pieces, Bach chorales from music21's corpus, or both."),
    scores_fraction: float = typer.Option(0.25, "--scores-fraction", help="With --source both: the share of clips that are scores."),
    styles: str = typer.Option(",".join(STYLE_NAMES), "--styles", help="Styles of generated pieces, comma-separated."),
    meters: str = typer.Option(",".join(DEFAULT_METERS), "--meters", help=f"Time signatures of generated pieces, from {', '.join(METERS)}."),
    tempo_range: str = typer.Option("60,180", "--tempo-range", help="LOW,HIGH: tempi are drawn inside this range (BPM)."),
    renderer: str = typer.Option("auto", "--renderer", help=f"{' | '.join(RENDERERS)}: auto is tinysoundfont, else FluidSynth when on PATH."),
    soundfont: Optional[Path] = typer.Option(None, "--soundfont", help="A General MIDI .sf2 file (default: TimGM6mb.sf2 from pretty_midi)."),
    subtype: str = typer.Option("PCM_16", "--subtype", help=f"WAV sample format: {', '.join(SUBTYPES)}."),
    midi: bool = typer.Option(False, "--midi", help="Also write each clip's MIDI to OUT/midi/."),
    workers: int = typer.Option(1, "--workers", help="Processes rendering in parallel (the output order stays fixed)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Manifest path (default OUT/manifest.jsonl; .parquet for Parquet)."),
    output_format: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    overwrite: bool = overwrite_option("Write into a folder OUT that is not empty (and over an existing -o FILE): files of the same names are replaced, nothing else is removed. Without it a non-empty OUT is refused (exit 2)."),
    stdout: bool = typer.Option(True, "--stdout/--no-stdout", help="Also write the manifest records to stdout, for a pipeline."),
    allow_errors: bool = typer.Option(False, "--allow-errors", help=ALLOW_ERRORS_HELP),
    threads: Optional[int] = threads_option(),
) -> None:
    """Render a labelled corpus: audio files plus a manifest with exact labels.

    Generated pieces (seven styles, the 24 keys in turn, General MIDI instruments and drums) and Bach chorales from music21's corpus, rendered through a soundfont.

    Each record has `audio` (absolute path), `labels` (tempo, beats, downbeats, meter, key, chords, instruments, genre, caption, energy and brightness on 1-9) and `synth` (how it was made). The records go to OUT/manifest.jsonl and to stdout.

    Examples:

        mllm synth corpus/ --n 200 --seconds 10 --no-stdout

        mllm synth corpus/ --n 400 --source both --workers 2 | mllm extract-features > features.jsonl

        mllm synth chorales/ --n 50 --source scores --sample-rate 16000 --midi --no-stdout

        mllm synth corpus/ --n 200 --seed 1 --no-stdout --overwrite     # render corpus/ again, over the earlier one
    """
    set_threads(threads, workers=workers)
    if n < 0:
        raise fail(f"--n must be >= 0, got {n}")
    if workers < 1:
        raise fail(f"--workers must be >= 1, got {workers}")
    if subtype not in SUBTYPES or not soundfile.check_format("WAV", subtype):
        raise fail(f"--subtype must be one of {', '.join(SUBTYPES)}, got {subtype!r}")
    if out.exists() and not out.is_dir():
        raise fail(f"OUT must be a folder, and {out} is a file")
    refuse_overwrite(out, overwrite=overwrite, kind="folder")
    if output is not None:
        refuse_overwrite(output, overwrite=overwrite)
    try:
        options = SynthOptions(
            seconds=seconds, sample_rate=sample_rate, seed=seed, source=source, scores_fraction=scores_fraction,
            styles=_names(styles, STYLE_NAMES, "--styles"), meters=_names(meters, tuple(METERS), "--meters"),
            tempo_range=_tempo_range(tempo_range), renderer=choose_renderer(renderer),
            soundfont=str(soundfont) if soundfont else None, subtype=subtype, write_midi=midi,
        )
    except (ValueError, RenderError) as exc:
        raise fail(str(exc)) from None
    if soundfont is not None and not soundfont.is_file():
        raise fail(f"--soundfont: no such file: {soundfont}")
    manifest = output or str(out / "manifest.jsonl")
    summary = StreamSummary("synth")
    with ExitStack() as stack, stream_errors():
        out.mkdir(parents=True, exist_ok=True)
        writers = [stack.enter_context(RecordWriter(manifest, output_format))]
        if stdout and manifest != "-":
            writers.append(stack.enter_context(RecordWriter("-")))
        with progress() as bar:
            task = bar.add_task(f"rendering ({options.renderer})", total=n)
            try:
                for record in synthesize(out, n, options, workers=workers):
                    summary.records_in += 1
                    summary.note(record, new_failure="error" in record)
                    for writer in writers:
                        writer.write(record)
                    bar.advance(task)
            except ValueError as exc:
                raise fail(str(exc)) from None
    finish(summary, allow_errors)
