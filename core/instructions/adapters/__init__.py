"""Dataset adapters: read public datasets from a local folder in their published layouts into records with labels.

    records, report = read_dataset("deam", "data/DEAM")      # records stream lazily
    for record in records: ...
    print(report.describe())

Each adapter module's docstring gives the layout it reads and its decisions (splits, scales,
labels). Names: deam, merge, giantsteps-key, giantsteps-tempo, gtzan, mtg-jamendo, musiccaps,
musicqa, cmi-bench. A record whose audio file is missing is left out and counted unless
`keep_missing_audio` (adapters never decode audio; fixtures may hold empty files).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from mllm.core.instructions.adapters import cmi_bench, deam, giantsteps, gtzan, merge, mtg_jamendo, musiccaps, musicqa
from mllm.core.instructions.adapters.files import Adapter, AdapterError, AdapterReport
from mllm.core.io.errors import Record, has_error

__all__ = ["ADAPTERS", "AdapterError", "AdapterReport", "read_dataset"]

ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        deam.ADAPTER, merge.ADAPTER, giantsteps.KEY_ADAPTER, giantsteps.TEMPO_ADAPTER, gtzan.ADAPTER,
        mtg_jamendo.ADAPTER, musiccaps.ADAPTER, musicqa.ADAPTER, cmi_bench.ADAPTER,
    )
}


def read_dataset(name: str, root: str | Path, options: Mapping[str, str] | None = None, *,
                 keep_missing_audio: bool = False) -> tuple[Iterator[Record], AdapterReport]:
    """(records, report) of a dataset folder; AdapterError for an unknown name, option or layout.

    The layout is checked when the first record is asked for; call `next()` or iterate inside
    the caller's error handling.
    """
    adapter = ADAPTERS.get(name)
    if adapter is None:
        raise AdapterError(f"unknown dataset {name!r}; choose one of {', '.join(ADAPTERS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(adapter.options))
    if unknown:
        known = ", ".join(f"{k} ({v})" for k, v in adapter.options.items())
        raise AdapterError(f"dataset {name} has no option {', '.join(unknown)}; its options: {known}")
    folder = Path(root)
    if not folder.is_dir():
        raise AdapterError(f"--root {root}: not a folder")
    report = AdapterReport(name)

    def records() -> Iterator[Record]:
        for record in adapter.read(folder, options, report):
            if not has_error(record) and not keep_missing_audio and not Path(record["audio"]).is_file():
                report.missing_audio += 1
                continue
            report.records += 1
            yield record

    return records(), report
