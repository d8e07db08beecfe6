"""Scoring captions: records in, per-item scores and a corpus summary out.

    source = open_result_input("captions.jsonl", stack, purpose="caption")   # core.evaluation.inputs
    summary = evaluate(source, CaptionOptions(metrics=("bleu", "rouge", "cider"), split="test"), write=writer.write)

A record holds a candidate caption (`response`) and one or several references (`reference`, a
string or a list of strings; else `answer`, else `caption`). Both are tokenised
(core.metrics.captions.tokenize) and scored with the chosen metrics; the summary gives each
metric at corpus level with a 95 % bootstrap interval over items of that same corpus value, and
its mean over items.

Splits (core.io.splits): with `split` set, only the records of that split are scored; the others
pass through unscored (and, per item, unchanged). Without it every split is its own corpus:
the records of `test` and of `train` never share a figure, and each split gets its own block of
metrics in the summary (`splits`), named by the split and counting its items. Records without a
`split` form the block "no split".

Two passes: CIDEr weighs n-grams by their document frequency over the whole corpus (here: the
split), so no item can be scored before every item has been read. The first pass keeps only the
tokenised texts (never the records) and scores every split; with `--per-item`, a second pass
reads the records again and writes each one with its scores (stdin is spooled to a temporary file
for that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mllm.core.evaluation.inputs import ResultInput
from mllm.core.io.errors import Record, RecordError, StreamSummary, has_error, with_error
from mllm.core.io.splits import record_split, split_label
from mllm.core.metrics import caption_resources as resources
from mllm.core.metrics import captions as metrics
from mllm.core.metrics.bootstrap import bootstrap_intervals
from mllm.core.options import check_integer, check_number

STAGE = "eval-caption"
METRIC_GROUPS = ("bleu", "meteor", "rouge", "rouge1", "cider", "bertscore")
DEFAULT_METRICS = ("bleu", "meteor", "rouge", "cider")
METEOR_BACKENDS = ("auto", "jar", "nltk")
TOKENIZER = "mllm regex: NFKC, lowercase, letter/digit runs (inner ' and - kept, inner . , between digits kept), punctuation dropped"


@dataclass
class CaptionOptions:
    metrics: tuple[str, ...] = DEFAULT_METRICS
    candidate_fields: tuple[str, ...] = ("response",)
    reference_fields: tuple[str, ...] = ("reference", "answer", "caption")  # first present wins
    meteor: str = "auto"  # auto (jar when Java exists, else nltk) | jar | nltk
    bertscore_model: str | None = None
    bertscore_layer: int | None = None
    bertscore_batch_size: int = 32
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    split: str | None = None  # score only the records of this split (None: every split, each apart)


def check_options(options: CaptionOptions) -> CaptionOptions:
    """Validate the metric choice and find what it needs, before any record is read.

    Returns the options with `meteor` resolved to "jar" or "nltk". Raises ValueError for a bad
    choice and MissingResource when a metric cannot run here (exit 2 in the CLI).
    """
    check_integer("--bootstrap", options.n_resamples, minimum=0)
    check_number("--confidence", options.confidence, above=0, below=1)
    if options.bertscore_layer is not None:
        check_integer("--bertscore-layer", options.bertscore_layer)
    if options.split is not None and not options.split.strip():
        raise ValueError("--split needs a split name, e.g. --split test")
    unknown = [m for m in options.metrics if m not in METRIC_GROUPS]
    if unknown or not options.metrics:
        raise ValueError(f"--metrics: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(METRIC_GROUPS)}")
    if options.meteor not in METEOR_BACKENDS:
        raise ValueError(f"--meteor must be one of {', '.join(METEOR_BACKENDS)}, got {options.meteor!r}")
    if "bertscore" in options.metrics and not options.bertscore_model:
        raise ValueError("BERTScore needs --bertscore-model PATH (a local folder holding the model; nothing is downloaded)")
    if "bertscore" in options.metrics:
        try:
            import bert_score  # noqa: F401
        except ImportError as exc:
            raise resources.MissingResource(f"{metrics.BERTSCORE_HELP} ({exc})") from exc
        metrics.check_bertscore_model(options.bertscore_model)  # a local folder with readable safetensors
    meteor = options.meteor
    if "meteor" in options.metrics:
        if meteor == "auto":
            meteor = "jar" if resources.java_path() else "nltk"
        if meteor == "jar" and resources.java_path() is None:
            raise resources.MissingResource(resources.JAVA_HELP)
        if meteor == "nltk":
            try:
                resources.load_wordnet()
            except resources.MissingResource as exc:
                if options.meteor == "auto":  # neither backend: say what each one needs
                    raise resources.MissingResource(f"{resources.JAVA_HELP}\n{exc}") from None
                raise
    return CaptionOptions(**{**options.__dict__, "meteor": meteor})


# ---------------------------------------------------------------- reading one record


def _first_field(record: Mapping[str, Any], fields: Sequence[str], what: str) -> tuple[str, Any]:
    for name in fields:
        if record.get(name) is not None:
            return name, record[name]
    if len(fields) == 1:
        missing = f"field {fields[0]!r} is missing or null"
    else:
        missing = f"none of the fields {', '.join(repr(f) for f in fields)} is set"
    raise RecordError(f"record {record.get('id')!r} has no {what}: {missing}", field=fields[0])


def caption_pair(record: Mapping[str, Any], options: CaptionOptions) -> tuple[str, list[str]]:
    """(candidate, references) of a record, as raw text; RecordError names the field at fault.

    A reference may be a string, a list of strings, or a dict holding `caption` (the form of an
    instruction record's `answer`). An empty candidate is a valid (poor) answer; an empty
    reference cannot be scored against and is an error.
    """
    name, candidate = _first_field(record, options.candidate_fields, "candidate caption")
    if not isinstance(candidate, str):
        raise RecordError(f"record {record.get('id')!r}: field {name!r} must be a string, got {type(candidate).__name__}", field=name)
    name, value = _first_field(record, options.reference_fields, "reference caption")
    if isinstance(value, dict) and "caption" in value:
        value = value["caption"]
    references = [value] if isinstance(value, str) else value
    if not isinstance(references, list) or not references or not all(isinstance(r, str) for r in references):
        raise RecordError(
            f"record {record.get('id')!r}: field {name!r} must be a string or a non-empty list of strings, got {value!r:.80}",
            field=name,
        )
    for index, reference in enumerate(references):
        if not metrics.tokenize(reference):
            where = f"{name!r}" if len(references) == 1 else f"{name!r} (reference {index + 1} of {len(references)})"
            raise RecordError(f"record {record.get('id')!r}: field {where} holds no words", field=name)
    return candidate, references


# ---------------------------------------------------------------- the corpus


@dataclass
class CaptionCorpus:
    """What the first pass keeps: tokenised texts and each item's split (raw texts too when
    BERTScore needs them)."""

    candidates: list[str] = field(default_factory=list)
    references: list[list[str]] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)  # each item's `split` (None: it has none)
    raw_candidates: list[str] = field(default_factory=list)
    raw_references: list[list[str]] = field(default_factory=list)

    def add(self, candidate: str, references: list[str], keep_raw: bool, split: str | None = None) -> None:
        self.candidates.append(metrics.tokenize(candidate))
        self.references.append([metrics.tokenize(r) for r in references])
        self.splits.append(split)
        if keep_raw:
            self.raw_candidates.append(candidate)
            self.raw_references.append(references)

    def rows_by_split(self) -> dict[str | None, np.ndarray]:
        """Split -> the indices of its items, splits in the order they first appear."""
        rows: dict[str | None, list[int]] = {}
        for index, split in enumerate(self.splits):
            rows.setdefault(split, []).append(index)
        return {split: np.array(indices, dtype=int) for split, indices in rows.items()}

    def __len__(self) -> int:
        return len(self.candidates)


@dataclass
class CorpusScores:
    """Per-item scores (name -> (n,) array, items in corpus order), and the per-item counts from
    which BLEU and METEOR 1.5 are aggregated over any set of items."""

    items: dict[str, np.ndarray] = field(default_factory=dict)
    bleu_counts: np.ndarray | None = None  # (n, 10), metrics.Bleu.counts
    meteor_counts: np.ndarray | None = None  # (n, 7), metrics.Meteor.counts (the jar only)


def score_corpus(corpus: CaptionCorpus, options: CaptionOptions, note: Callable[[str], None] = lambda _: None) -> CorpusScores:
    """Every chosen metric on every item (definitions: core.metrics.captions).

    One pass over all items for the metrics whose item scores depend on the item alone (one Java
    process for METEOR 1.5, one model load for BERTScore); CIDEr, whose document frequencies come
    from the corpus, is scored split by split, so an item's CIDEr is that of its split's corpus.
    """
    scores = CorpusScores()
    cands, refs = corpus.candidates, corpus.references
    if "bleu" in options.metrics:
        note("BLEU")
        result = metrics.bleu(cands, refs)
        for k in range(4):
            scores.items[f"bleu_{k + 1}"] = result.items[:, k]
        scores.bleu_counts = result.counts
    if "meteor" in options.metrics:
        if options.meteor == "jar":
            note("METEOR 1.5 (java)")
            result = metrics.meteor_jar(cands, refs)
            scores.items["meteor"], scores.meteor_counts = result.items, result.counts
        else:
            note("METEOR (nltk)")
            wordnet = resources.load_wordnet()
            scores.items["meteor"] = np.array([metrics.meteor_nltk(c, r, wordnet) for c, r in zip(cands, refs)])
    if "rouge" in options.metrics:
        note("ROUGE-L")
        values = np.array([metrics.rouge_l(c, r) for c, r in zip(cands, refs)]).reshape(-1, 3)
        scores.items["rouge_l_f"], scores.items["rouge_l_recall"] = values[:, 2], values[:, 1]
        scores.items["rouge_l_precision"] = values[:, 0]
    if "rouge1" in options.metrics:
        note("ROUGE-1")
        values = np.array([metrics.rouge_1(c, r) for c, r in zip(cands, refs)]).reshape(-1, 3)
        for column, name in enumerate(("precision", "recall", "f")):
            scores.items[f"rouge_1_{name}"] = values[:, column]
    if "cider" in options.metrics:
        note("CIDEr")
        scores.items["cider"] = np.zeros(len(corpus))
        for rows in corpus.rows_by_split().values():
            _, scores.items["cider"][rows] = metrics.cider([cands[i] for i in rows], [refs[i] for i in rows])
    if "bertscore" in options.metrics:
        note("BERTScore")
        precision, recall, f1 = metrics.bertscore(
            corpus.raw_candidates, corpus.raw_references, options.bertscore_model,
            layer=options.bertscore_layer, batch_size=options.bertscore_batch_size,
        )
        scores.items.update(bertscore_precision=precision, bertscore_recall=recall, bertscore_f1=f1)
    return scores


def _mean_over_items(*values: np.ndarray) -> np.ndarray:
    return np.stack([v.mean(axis=-1) for v in values])  # k arrays (..., n) -> (k, ...)


def _meteor_statistic(*counts: np.ndarray) -> np.ndarray:
    return metrics.corpus_meteor_statistic(*counts)[None]  # (...) -> (1, ...)


def corpus_statistics(scores: CorpusScores, rows: np.ndarray) -> list[tuple[list[str], Callable[..., np.ndarray], list[np.ndarray]]]:
    """How each metric's corpus value is computed from the items `rows`: (names, statistic, data).

    BLEU: corpus BLEU from the items' summed counts; METEOR 1.5: the jar's aggregate from the
    items' summed counts; every other metric: the mean over items. `statistic(*data)` is the value;
    the bootstrap resamples the items of `data` and recomputes the same statistic.
    """
    statistics = []
    if scores.bleu_counts is not None:
        names = [f"bleu_{k + 1}" for k in range(scores.bleu_counts.shape[1] // 2 - 1)]
        statistics.append((names, metrics.corpus_bleu_statistic, list(scores.bleu_counts[rows].T)))
    if scores.meteor_counts is not None:
        statistics.append((["meteor"], _meteor_statistic, list(scores.meteor_counts[rows].T)))
    aggregated = {name for names, _, _ in statistics for name in names}
    means = [name for name in scores.items if name not in aggregated]
    if means:
        statistics.append((means, _mean_over_items, [scores.items[name][rows] for name in means]))
    return statistics


def summarise(scores: CorpusScores, options: CaptionOptions, rows: np.ndarray | None = None, split: str | None = None) -> dict[str, dict[str, Any]]:
    """Per metric over the items `rows` (default: all) of one split: the corpus value, a
    percentile bootstrap interval of that same value, the mean over items, the split and n.

    Every interval resamples the items and recomputes the statistic that gives `value`
    (corpus_statistics), so `interval_of` is always "value". CIDEr's item scores keep the
    document frequencies of the full split.
    """
    if rows is None:
        rows = np.arange(len(next(iter(scores.items.values()), ())))
    boot = {"n_resamples": options.n_resamples, "confidence": options.confidence, "seed": options.seed}
    values, intervals = {}, {}
    for names, statistic, data in corpus_statistics(scores, rows):
        if len(rows):
            values.update(zip(names, (float(v) for v in statistic(*data))))
            intervals.update(zip(names, bootstrap_intervals(statistic, data, **boot)))
    out: dict[str, dict[str, Any]] = {}
    for name, item_values in scores.items.items():
        interval = intervals.get(name)
        out[name] = {
            "value": values.get(name, float("nan")),
            "low": interval.low if interval else float("nan"),
            "high": interval.high if interval else float("nan"),
            "mean_of_items": float(np.mean(item_values[rows])) if len(rows) else float("nan"),
            "interval_of": "value",
            "split": split,
            "n": int(len(rows)),
        }
    return out


# ---------------------------------------------------------------- input files


# ---------------------------------------------------------------- the command's work


OUTSIDE, OTHER_TASK, FAILED, ITEM = "outside", "other_task", "failed", "item"


def _mir_task(record: Record) -> str | None:
    """The record's task when eval-mir scores it (key, tempo, genre, ...: a task kind of
    core/evaluation/kinds.py, by name or `task_type`), else None: a file of mixed instruction
    records goes to both commands, each scoring its own."""
    from mllm.core.evaluation.kinds import KIND_OF_TASK, KINDS

    task, task_type = record.get("task"), record.get("task_type")
    if isinstance(task_type, str) and task_type in KINDS:
        return task if isinstance(task, str) else task_type
    if isinstance(task, str) and task.lower() in KIND_OF_TASK:
        return task
    return None


def read_item(record: Record, options: CaptionOptions) -> tuple[str, Record, tuple[str, list[str]] | None]:
    """What one record is to the evaluation, the same in both passes: (kind, record, pair).

    OUTSIDE: not of `options.split`, passed through untouched; OTHER_TASK: a task eval-mir scores
    (key, tempo, ...), passed through untouched; FAILED: failed upstream (passed
    through) or here (the error record is returned; a non-text `split` is one); ITEM: to score,
    with its (candidate, references).
    """
    if options.split is not None and record.get("split") != options.split:
        return OUTSIDE, record, None
    if has_error(record):
        return FAILED, record, None
    if _mir_task(record) is not None:
        return OTHER_TASK, record, None
    try:
        record_split(record)
    except ValueError as exc:
        return FAILED, with_error(record, STAGE, RecordError(f"record {record.get('id')!r}: {exc}", field="split")), None
    try:
        return ITEM, record, caption_pair(record, options)
    except RecordError as exc:
        return FAILED, with_error(record, STAGE, exc), None


def _split_of(record: Record) -> str | None:
    """The split a record is counted under (None when it has none, or one that is not text)."""
    split = record.get("split")
    return split if isinstance(split, str) else None


def evaluate(
    source: ResultInput,
    options: CaptionOptions,
    *,
    write: Callable[[Record], None] | None = None,
    summary: StreamSummary | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Score every record of `source` (of `options.split` when set) and return the summary; with
    `write`, also write every record (in order, records in = records out) with its scores in
    `eval`, as an error record, or untouched when it is of another split.

    The summary has one block per split scored (`splits`: label -> counts and metrics; each
    split its own corpus), and `metrics` at the top when exactly one split was scored. With
    `options.split` set and no record of it, that split's block is there with 0 items.
    `options` must have been through check_options (METEOR backend resolved).
    """
    corpus = CaptionCorpus()
    keep_raw = "bertscore" in options.metrics
    n_records = 0
    blocks: dict[str | None, dict[str, int]] = {}  # split -> {"n_records", "n_failed"}
    outside: dict[str, int] = {}  # split label -> records of other splits, not scored
    other_tasks: dict[str, int] = {}  # task -> records eval-mir scores, not scored here
    note("reading")
    for record in source.records():
        n_records += 1
        kind, out, pair = read_item(record, options)
        if summary is not None:
            summary.records_in += 1
            summary.note(out, new_failure=out is not record)
        split = _split_of(record)
        if kind == OUTSIDE:
            outside[split_label(split)] = outside.get(split_label(split), 0) + 1
            continue
        if kind == OTHER_TASK:
            task = _mir_task(record)
            other_tasks[task] = other_tasks.get(task, 0) + 1
            continue
        block = blocks.setdefault(split, {"n_records": 0, "n_failed": 0})
        block["n_records"] += 1
        if kind == FAILED:
            block["n_failed"] += 1
        else:
            corpus.add(*pair, keep_raw, split)
    if not blocks:  # nothing of the split asked for, or an empty input: one empty block says so
        blocks[options.split] = {"n_records": 0, "n_failed": 0}
    scores = score_corpus(corpus, options, note)
    if write is not None:
        note("writing")
        _write_items(source, options, scores, write)
    rows = corpus.rows_by_split()
    splits = {}
    for split, block in blocks.items():
        block_rows = rows.get(split, np.zeros(0, dtype=int))
        splits[split_label(split)] = {
            "split": split, **block, "n_scored": int(len(block_rows)),
            "metrics": summarise(scores, options, block_rows, split),
        }
    result: dict[str, Any] = {
        "input": source.path,
        "split": options.split,
        "n_records": n_records,
        "n_scored": len(corpus),
        "n_failed": sum(block["n_failed"] for block in splits.values()),
        "n_scored_by_split": {label: block["n_scored"] for label, block in splits.items()},
        "not_scored": {"other_splits": outside, "other_tasks": other_tasks},
        "tokenizer": TOKENIZER,
        "meteor_backend": _meteor_name(options),
        "bootstrap": {
            "n_resamples": options.n_resamples, "confidence": options.confidence, "seed": options.seed,
            "method": "percentile bootstrap over items of the value itself (BLEU and METEOR 1.5: the corpus "
                      "aggregate recomputed from the resampled items' counts; the others: the mean over items)",
        },
        "splits": splits,
    }
    if len(splits) == 1:
        result["metrics"] = next(iter(splits.values()))["metrics"]
    if source.cmi_bench:
        result["cmi_bench_task"] = source.cmi_bench_task
    return result


def _meteor_name(options: CaptionOptions) -> str | None:
    if "meteor" not in options.metrics:
        return None
    return "METEOR 1.5 jar (pycocoevalcap, -l en -norm)" if options.meteor == "jar" else "NLTK meteor_score (WordNet 3.0)"


def _write_items(source: ResultInput, options: CaptionOptions, scores: CorpusScores, write: Callable[[Record], None]) -> None:
    """Second pass: every record again, with `eval` = {scores, n_references, split}, its error, or
    untouched (another split, or a task eval-mir scores)."""
    names = list(scores.items)
    index = 0
    for record in source.records():
        kind, out, pair = read_item(record, options)
        if kind != ITEM:
            write(out)
            continue
        item_scores = {name: float(scores.items[name][index]) for name in names}
        write({**record, "eval": {"scores": item_scores, "n_references": len(pair[1])}})
        index += 1
