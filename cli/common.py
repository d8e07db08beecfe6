"""What every subcommand shares: the stderr console, the stream options, exit codes, the
refusal to write over earlier results (`--overwrite`); what `mllm sft` and `mllm grpo` share:
`--config FILE` and `--print-config`; and what `mllm caption` and `mllm regress` share: loading
the model, `-o FILE --resume`.

Exit codes: 0 = every record done; 1 = some records failed (error records were written);
2 = the command could not run (bad options, unreadable input); 3 = training stopped because it
diverged (a non-finite loss or gradient norm); 130 = interrupted (Ctrl-C).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
import typing
from typing import Optional

import orjson
import typer
from typer.core import TyperOption
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from mllm.core.io.errors import StreamSummary, has_error
from mllm.core.io.records import (RecordStreamError, RecordWriter, check_output_is_not_input, count_records, output_format,
                                  partial_path, write_file)

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
OVERWRITE_HELP = ("Write over an existing output (without it, an existing -o FILE is refused, exit 2; "
                  "an input is never written over, even with it).")
RESUMABLE_OVERWRITE_HELP = ("Write over an existing -o FILE, or start over the FILE.partial a stopped run left (without it "
                            "both are refused, exit 2; --resume continues them). An input is never written over.")
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


def overwrite_option(help: str = OVERWRITE_HELP):
    """The `--overwrite` option (a fresh OptionInfo per command)."""
    return typer.Option(False, "--overwrite", help=help)


def refuse_overwrite(output: str | Path | None, *inputs: str | Path | None, overwrite: bool, kind: str = "file",
                     resume: bool = False, resumable: bool = False) -> None:
    """Exit 2, before anything is opened or computed, when writing `output` would replace earlier
    results without `overwrite`, or (even with it) destroy one of the `inputs`. The one rule of
    every command (docs/records.md, "Earlier results are never written over silently"):

    - kind "file" (-o FILE of records or a summary): an existing regular file is refused;
      /dev/null, pipes and stdout ('-' or None) are written as always. `resume` (caption and
      regress --resume) continues the file instead; for those (`resumable`) a FILE.partial left by
      a stopped run is refused too (--resume continues it, --overwrite starts over).
    - kind "folder" (`mllm synth OUT`): a folder that holds anything is refused.
    - kind "checkpoint" (sft/grpo -o RUN): an existing path is refused; `resume` means `output` is
      the run being resumed, which is continued. --overwrite replaces only a checkpoint folder or
      an empty folder: any other folder is refused even with it (a checkpoint is replaced whole).
    """
    if kind == "file" and resume and overwrite:
        raise fail("--resume continues -o FILE, --overwrite replaces it: give one")
    refuse_output_over_input(output, *inputs)
    if output is None or str(output) == "-":
        return
    path = Path(output)
    if kind == "folder":
        earlier = path.is_dir() and any(path.iterdir())
        what = f"{path} is not empty (an earlier corpus?)"
    elif kind == "checkpoint":
        target = path.resolve()
        for source in inputs:  # a folder replaced whole: no input may be it or lie inside it
            if source is not None and str(source) != "-" and Path(source).exists():
                if target == Path(source).resolve() or target in Path(source).resolve().parents:
                    raise fail(f"the output {path} is (or holds) the input {source}: writing it would destroy the "
                               "input; write to another folder")
        if resume:
            return
        earlier = path.exists() or path.is_symlink()
        what = f"{path} exists (an earlier run?)"
        if earlier and overwrite and not (path.is_dir() and not any(path.iterdir())):
            from mllm.core.model.checkpoint import read_checkpoint_config

            try:
                read_checkpoint_config(path)
            except (OSError, ValueError):
                raise fail(f"{path} exists and is not an mllm checkpoint: --overwrite replaces a checkpoint "
                           "folder (or an empty folder) only; choose another -o") from None
    else:
        if resume:
            return
        earlier = path.is_file()
        what = f"{path} exists"
        if resumable and not earlier and partial_path(path).is_file() and not overwrite:
            raise fail(f"{partial_path(path)} holds a stopped run's records: --resume continues it, "
                       "--overwrite starts over")
    if earlier and not overwrite:
        raise fail(f"{what}: --overwrite replaces it; or write elsewhere")


@contextmanager
def stream_errors() -> Iterator[None]:
    """Turn a stream-level failure (unreadable input) into a clear message and exit code 2."""
    try:
        yield
    except RecordStreamError as exc:
        raise fail(str(exc)) from None


def progress(disable: bool = False) -> Progress:
    """A Rich progress display on stderr (silent when stderr is not a terminal, or `disable`):
    done / total, elapsed and, when the task has a total (see record_total), the time left."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=disable,
    )


def record_total(source: str, skip: int = 0, shard: tuple[int, int] | None = None) -> int | None:
    """The progress bar's total for records read from `source` (a file: its records, those of
    `shard` (i, n) alone, less `skip` already done); None for stdin, or when no bar is drawn
    (stderr is not a terminal: the file is not read twice for nothing)."""
    if not console.is_terminal:
        return None
    total = count_records(source)
    if total is None:
        return None
    if shard is not None:
        total = len(range(shard[0], total, shard[1]))
    return max(0, total - skip)


def finish(summary: StreamSummary, allow_errors: bool) -> None:
    """Print the summary on stderr and exit with the code the counts call for."""
    style = "red" if summary.failed else "green"
    console.print(f"[{style}]{summary.describe()}[/]", highlight=False, soft_wrap=True)
    for line in summary.first_errors:
        console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    if summary.failed and not allow_errors:
        raise typer.Exit(EXIT_RECORDS_FAILED)
    raise typer.Exit(EXIT_OK)


# ---- shared by `mllm sft` and `mllm grpo`: --config FILE, --print-config --------------------

CONFIG_HELP = ("Read options from this YAML (.yaml, .yml) or TOML (.toml) file: keys are the option names (batch-size "
               "or batch_size), values what the option takes; options on the command line win. Unknown keys and values "
               "of the wrong type are refused (exit 2). Not in a file: --resume, --extend-to.")
PRINT_CONFIG_HELP = ("Print the options this command would run with (the file's, then the command line's) as YAML that "
                     "--config reads back, and exit without reading records or loading a model.")
# Options a config file does not hold: the file itself, and what names a run to continue (on the command line only).
# (--overwrite too: whether to replace earlier results is said on the command line, each time).
NOT_IN_CONFIG = ("config_file", "show_config", "resume", "extend_to", "overwrite", "help")


def config_option():
    return typer.Option(None, "--config", is_eager=True, callback=_read_config_file, help=CONFIG_HELP,
                        show_default=False)


def print_config_option():
    return typer.Option(False, "--print-config", help=PRINT_CONFIG_HELP)


def _config_params(command) -> dict:
    """The options of a (typer) command that a config file can hold, by name."""
    return {p.name: p for p in command.params if isinstance(p, TyperOption) and p.name not in NOT_IN_CONFIG}


def _option_type(param: TyperOption):
    """What a config file may give the option `param`: the Python type it is declared with
    (Optional[X] is X or null; anything that is not a number or a flag takes text)."""
    from mllm.core.config import OptionType  # PyYAML only where a command takes --config

    annotation = param.type_descriptor.annotation
    kinds = [t for t in typing.get_args(annotation) if t is not type(None)] or [annotation]
    kind = kinds[0] if len(kinds) == 1 and kinds[0] in (bool, int, float) else str
    return OptionType(bool if param.is_flag else kind, param.default is None)


def _read_config_file(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    """--config FILE (eager, so before every other option): the file's values become the command's
    defaults (click's `default_map`), so options on the command line override them. Exit 2 naming
    the file and the key when a key is unknown, a value has the wrong type or is out of range."""
    if not value or ctx.resilient_parsing:
        return value
    from mllm.core.config import ConfigError, read_config

    params = _config_params(ctx.command)
    try:
        values = read_config(value, {name: _option_type(p) for name, p in params.items()}, command=f"mllm {ctx.info_name}")
    except ConfigError as exc:
        raise fail(str(exc)) from None
    for name, item in values.items():
        if item is not None:
            try:  # ranges and choices, as the option itself checks them
                params[name].process_value(ctx, item)
            except typer.BadParameter as exc:
                raise fail(f"--config {value}: {name.replace('_', '-')!r}: {exc.format_message()}") from None
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return value


def chosen_options(ctx: typer.Context, *, file_defaults: bool = True) -> set[str]:
    """The options the user chose: given on the command line or in the --config file (not defaults).
    `file_defaults=False` leaves out a file's key whose value is the option's default (a printed
    config holds every option). (typer's ParameterSource is its own enum: compared by name.)"""
    params = {p.name: p for p in ctx.command.params}
    chosen = set()
    for name, value in ctx.params.items():
        source = getattr(ctx.get_parameter_source(name), "name", "DEFAULT")
        if source == "DEFAULT" or (source == "DEFAULT_MAP" and not file_defaults and value == params[name].default):
            continue
        chosen.add(name)
    return chosen


def command_options(ctx: typer.Context) -> dict:
    """Every option a config file can hold, with the value this command has (file, then command line)."""
    values = {name: ctx.params[name] for name in _config_params(ctx.command) if name in ctx.params}  # declared order
    return {name: str(value) if isinstance(value, Path) else value for name, value in values.items()}


def print_config(ctx: typer.Context) -> None:
    """--print-config: the command's options as YAML on stdout (read back by --config); exit 0."""
    from mllm.core.config import write_config

    typer.echo(write_config(command_options(ctx)), nl=False)
    raise typer.Exit(EXIT_OK)


def run_options(ctx: typer.Context, config) -> dict:
    """The options a training run uses, as a config file writes them (what its checkpoint keeps in
    options.yaml): the command's options, each that is a field of the resolved `config` (a resumed
    run's come from its checkpoint) taking the field's value; a list is written as the comma-separated
    text the option takes, '' stands for None where the option takes text, and the other way round."""
    types = {name: _option_type(p) for name, p in _config_params(ctx.command).items()}
    options = command_options(ctx)
    for name in options:
        if not hasattr(config, name):
            continue
        value = getattr(config, name)
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        if types[name].kind is str and value is None and not types[name].nullable:
            value = ""
        elif types[name].kind is str and value == "" and types[name].nullable:
            value = None
        options[name] = value
    return options


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
                   top_p: float, seed: int, samples: int = 0):
    """The model as a generator (shared with `mllm regress`), or with `samples` > 0 as a sampler of
    that many completions per prompt (`caption --samples`); exits 2 when it cannot load."""
    from mllm.core.infer.generation import load_generator

    try:
        return load_generator(model, device=device, dtype=dtype, max_new_tokens=max_new_tokens, sample=sample,
                              temperature=temperature, top_p=top_p, seed=seed, samples=samples)
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


@contextmanager
def cannot_run():
    """Bad options, an unreadable checkpoint, unusable records: a message and exit 2."""
    try:
        yield
    except (ValueError, KeyError, OSError) as exc:
        raise fail(str(exc)) from None


def without_error_records(records: list[dict], encoded: list[dict], allow_errors: bool, stage: str) -> list[dict]:
    """The records a training command (sft, grpo, train-reward: `stage`) trains on. Error records (in the input, or from encoding on the fly) stop the
    command before training with exit 1, naming the first few; with --allow-errors they are left out."""
    summary = StreamSummary(stage)
    for before, after in zip(records, encoded):
        summary.records_in += 1
        summary.note(after, new_failure=has_error(after) and not has_error(before))
    usable = [r for r in encoded if not has_error(r)]
    if not summary.failed:
        return usable
    if allow_errors:
        console.print(f"[yellow]--allow-errors: leaving out {summary.failed} error records of {len(encoded)}, "
                      f"training on {len(usable)}[/]", highlight=False)
    else:
        console.print(f"[red]{summary.failed} of {len(encoded)} records are error records: not training "
                      f"(--allow-errors trains on the other {len(usable)})[/]", highlight=False)
    for line in summary.first_errors:
        console.print(f"  {line}", highlight=False, markup=False)
    if not allow_errors:
        raise typer.Exit(EXIT_RECORDS_FAILED)
    return usable
