"""Best-of-N: of each id's samples, keep the best by a numeric field (`mllm rerank`).

    caption --samples 8 | score --reward task | rerank --by reward.total     # one record per id
    rerank --by logprob_mean --keep-all                                       # all 8, each with `rank`

Conventions
-----------
- A *group* is a run of consecutive records with the same `id`, as `mllm caption --samples N`
  writes an id's samples and as every stage keeps them (records in order). An id met again after
  its run has ended is refused: the later run comes out as error records (sort by id first).
- `by` is a field path: `reward.total` is `record["reward"]["total"]`. Its value must be a number
  (int or float, not a boolean, not NaN; +-inf are ordered). Higher is better, or lower with
  `lowest`.
- Ties go to the smaller `sample` index (records without an integer `sample`: the earlier record
  of the group), so the result does not depend on anything but the records.
- Each ranked record gets `rank` (1 = the best) and `rerank` = {"by", "best" ("highest" or
  "lowest"), "of": the samples ranked}.

Records in and out
------------------
- best (default): one record per group: the best sample. A group that holds an earlier error
  record (a sample that failed upstream) comes out as that error record, untouched; a group in
  which a sample lacks the field (or it is not a number) comes out as one error record naming the
  record, its sample and the field. The best of the others is not taken: it would look complete
  when it is not.
- keep_all: every record: the ranked ones in rank order, then the group's error records
  (upstream ones untouched, those lacking the field as fresh error records) in input order.
- With `split`, records of other splits pass through untouched (each its own group of one, not
  ranked); a group of one in the split is ranked as any other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from mllm.core.io.errors import Record, RecordError, StreamSummary, has_error, with_error
from mllm.core.io.splits import in_split

__all__ = ["STAGE", "field_value", "rerank_records"]

STAGE = "rerank"
MISSING = object()


def field_value(record: Record, path: str) -> float:
    """The number at `path` (dots go into nested objects); RecordError naming the record, its
    `sample` and the field when it is missing or not a number."""
    value: object = record
    for part in path.split("."):
        value = value.get(part, MISSING) if isinstance(value, dict) else MISSING
        if value is MISSING:
            break
    sample = f" (sample {record['sample']})" if "sample" in record else ""
    where = f"record {record.get('id')!r}{sample}"
    if value is MISSING:
        hint = ""
        if "split" in record and "sample" not in record:  # e.g. passed through by `caption --samples --split test`
            hint = f" (split {record['split']!r}, not sampled: rank one split with --split, as the sampling did)"
        raise RecordError(f"{where} has no field {path!r} to rank by{hint}", path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{where}: field {path!r} is {type(value).__name__} {value!r}, not a number", path)
    if math.isnan(value):
        raise RecordError(f"{where}: field {path!r} is NaN", path)
    return float(value)


def _groups(records: Iterable[Record], split: str | None) -> Iterator[tuple[list[Record], bool]]:
    """(group, repeated): runs of consecutive records with one id (records of other splits alone);
    `repeated` when the id had a run before."""
    seen: set = set()
    group: list[Record] = []
    for record in records:
        key = record.get("id")
        if not in_split(record, split):
            if group:
                yield group, group[0].get("id") in seen
                seen.add(group[0].get("id"))
                group = []
            yield [record], False
            continue
        if group and key != group[0].get("id"):
            yield group, group[0].get("id") in seen
            seen.add(group[0].get("id"))
            group = []
        group.append(record)
    if group:
        yield group, group[0].get("id") in seen


def _rank(group: list[Record], by: str, lowest: bool) -> tuple[list[Record], list[Record]]:
    """(the ranked records, each with `rank`, best first; the failures in input order: upstream
    error records untouched, records without a number at `by` as fresh error records) of a group."""
    scored, failures = [], []
    for position, record in enumerate(group):
        if has_error(record):
            failures.append(record)
            continue
        try:
            value = field_value(record, by)
        except RecordError as exc:
            failures.append(with_error(record, STAGE, exc))
            continue
        sample = record.get("sample")
        tie = sample if isinstance(sample, int) and not isinstance(sample, bool) else math.inf
        scored.append(((value if lowest else -value), tie, position, record))
    scored.sort(key=lambda item: item[:3])
    info = {"by": by, "best": "lowest" if lowest else "highest", "of": len(scored)}
    ranked = [{**record, "rank": rank, "rerank": info} for rank, (*_, record) in enumerate(scored, start=1)]
    return ranked, failures


def rerank_records(records: Iterable[Record], by: str, *, lowest: bool = False, keep_all: bool = False,
                   split: str | None = None, summary: StreamSummary | None = None) -> Iterator[Record]:
    """The best record of each group (every record, ranked, with `keep_all`); the module docstring
    says what comes out of groups with failures."""
    for group, repeated in _groups(records, split):
        if summary is not None:
            summary.records_in += len(group)
        if len(group) == 1 and not in_split(group[0], split):
            out = group
        elif repeated:
            message = (f"id {group[0].get('id')!r} appears again after other ids: rerank takes an id's samples "
                       "as one run of consecutive records (as `mllm caption --samples` writes them); sort by id first")
            failed = [r if has_error(r) else with_error(r, STAGE, message) for r in group]
            out = failed if keep_all else failed[:1]
        else:
            ranked, failures = _rank(group, by, lowest)
            upstream = [r for r in failures if any(r is g for g in group)]
            out = ranked + failures if keep_all else (upstream or failures or ranked)[:1]
        for record in out:
            if summary is not None:
                summary.note(record, new_failure=has_error(record) and not any(r is record for r in group))
            yield record
