"""What every subcommand shares: the stderr console, the stream options, exit codes; and what
`mllm caption` and `mllm regress` share: loading the model, `-o FILE --resume`.

Exit codes: 0 = every record done; 1 = some records failed (error records were written);
2 = the command could not run (bad options, unreadable input); 3 = training stopped because it
diverged (a non-finite loss or gradient norm); 130 = interrupted (Ctrl-C).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from mllm.core.io.errors import StreamSummary
from mllm.core.io.records import RecordStreamError, RecordWriter, check_output_is_not_input, output_format, write_file

# Everything meant for people goes to stderr; stdout carries data only.
console = Console(stderr=True)

EXIT_OK = 0
EXIT_RECORDS_FAILED = 1
EXIT_CANNOT_RUN = 2
EXIT_TRAINING_DIVERGED = 3
EXIT_INTERRUPTED = 130

INPUT_HELP = "Input records: a JSONL or Parquet file (detected from the bytes), or '-' for stdin."
OUTPUT_HELP = "Write records here instead of stdout; the format follows the extension (.parquet, .jsonl)."
FORMAT_HELP = "Output format: jsonl or parquet (default: from the -o extension, else jsonl)."
ALLOW_ERRORS_HELP = "Exit 0 even when some records failed (they are still written as error records)."
THREADS_HELP = ("Threads of torch, BLAS and numba (also $MLLM_THREADS). Default: $OMP_NUM_THREADS if set, else every "
                "core; idle threads sleep, so pipeline stages and jobs side by side share the cores (docs/threads.md).")
RESUME_HELP = ("With -o FILE (JSONL): continue a stopped run from FILE.partial (or complete FILE): records done are "
               "skipped, failed ones done again, the rest appended.")


def threads_option():
    """The `--threads` option of every command that computes (a fresh OptionInfo per command)."""
    return typer.Option(None, "--threads", help=THREADS_HELP, show_default=False)


def set_threads(threads: int | None, workers: int = 1) -> int:
    """Size torch/BLAS/numba thread pools for this command and its `workers` processes
    (core/threads.py); exit 2 on a bad count."""
    from mllm.core.threads import choose_threads, use_threads

    try:
        count = choose_threads(threads)
    except ValueError as exc:
        raise fail(str(exc)) from None
    use_threads(count, workers=max(1, workers))
    return count


def fail(message: str) -> typer.Exit:
    """Print a one-line error on stderr; `raise fail(...)` exits with code 2.

    The message is printed as it is (no Rich markup: "pip install 'mllm[meteor]'" keeps its brackets).
    """
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # one line: grep-able
    return typer.Exit(EXIT_CANNOT_RUN)


def name_value_pairs(values: list[str], option: str) -> dict[str, str]:
    """Repeated NAME=VALUE options as a dict; a malformed one exits with code 2."""
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise fail(f"{option} takes NAME=VALUE, got {value!r}")
        out[name.strip()] = rest.strip()
    return out


def finish_report(result: dict, *, output: str | None, per_item: bool, table, summary: StreamSummary, allow_errors: bool) -> None:
    """End of an evaluation command: the JSON summary (unless records were written per item),
    the Rich table on stderr when one is given, the counts, the exit code."""
    if not per_item:
        write_json(result, output)
    if table is not None:
        console.print(table)
    finish(summary, allow_errors)


def write_json(result: dict, output: str | None) -> None:
    """Write one JSON document (a command's summary) to `output` (by way of a partial file and a
    rename), or to stdout when None or '-'."""
    data = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)
    if output and output != "-":
        write_file(output, data)
    else:
        typer.get_binary_stream("stdout").write(data)


def refuse_output_over_input(output: str | None, *inputs: str | None) -> None:
    """Exit 2, before anything is opened, when the output (-o FILE, or stdout) is one of the inputs."""
    try:
        check_output_is_not_input(output, inputs)
    except RecordStreamError as exc:
        raise fail(str(exc)) from None


@contextmanager
def stream_errors() -> Iterator[None]:
    """Turn a stream-level failure (unreadable input) into a clear message and exit code 2."""
    try:
        yield
    except RecordStreamError as exc:
        raise fail(str(exc)) from None


def progress(disable: bool = False) -> Progress:
    """A Rich progress display on stderr (silent when stderr is not a terminal, or `disable`)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=disable,
    )


def finish(summary: StreamSummary, allow_errors: bool) -> None:
    """Print the summary on stderr and exit with the code the counts call for."""
    style = "red" if summary.failed else "green"
    console.print(f"[{style}]{summary.describe()}[/]", highlight=False, soft_wrap=True)
    for line in summary.first_errors:
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    if summary.failed and not allow_errors:
        raise typer.Exit(EXIT_RECORDS_FAILED)
    raise typer.Exit(EXIT_OK)


# ---- shared by `mllm caption` and `mllm regress` ----------------------------------------------


# The generation options `caption` and `regress` share (one definition, the same names and help).
def device_option():
    return typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto.")


def dtype_option():
    return typer.Option("float32", "--dtype", help="float32 or bfloat16 (float16 on GPU).")


def max_new_tokens_option(default: int):
    return typer.Option(default, "--max-new-tokens", min=1, help="Longest answer, in tokens.")


def sample_option():
    return typer.Option(False, "--sample/--greedy", help="Sample from the model (default: greedy decoding).")


def temperature_option():
    return typer.Option(1.0, "--temperature", help="Sampling temperature (with --sample).")


def top_p_option():
    return typer.Option(1.0, "--top-p", help="Nucleus sampling mass (with --sample; 1 = the full distribution).")


def split_option():
    return typer.Option(None, "--split", help="Answer only the records of this split (e.g. test); the others pass through untouched.")


def open_generator(model: str, device: str, dtype: str, max_new_tokens: int, sample: bool, temperature: float,
                   top_p: float, seed: int):
    """The model as a generator (shared with `mllm regress`); exits 2 when it cannot load."""
    from mllm.core.infer.generation import load_generator

    try:
        return load_generator(model, device=device, dtype=dtype, max_new_tokens=max_new_tokens, sample=sample,
                              temperature=temperature, top_p=top_p, seed=seed)
    except ValueError as exc:
        raise fail(str(exc)) from None


def resumed_ids(output: str | None, output_format_name: str | None, resume: bool) -> Counter:
    """With --resume: the ids already done in -o FILE, with counts (empty without it), after
    setting FILE.partial up for appending (core/infer/resume.py); exits 2 on a bad combination."""
    from mllm.core.infer.resume import prepare_resume

    if not resume:
        return Counter()
    if not output or output == "-":
        raise fail("--resume needs -o FILE: the ids already written are read from it")
    if output_format(output, output_format_name) != "jsonl":
        raise fail("--resume appends to JSONL output only")
    try:
        done, retried = prepare_resume(output)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    again = f"; {retried} error records are done again" if retried else ""
    console.print(f"resume: {sum(done.values())} records already in {output}{again}", highlight=False)
    return done


def open_output(stack: ExitStack, output: str | None, output_format_name: str | None, resume: bool):
    """`write(record)` to -o FILE / stdout for caption and regress. A file is written as FILE.partial,
    flushed per record (a stop loses at most the batch being generated) and kept after a failure,
    so that --resume continues it; with --resume it is appended to."""
    return stack.enter_context(RecordWriter(output or "-", output_format_name, append=resume, keep_partial=True,
                                            flush_each=True)).write
