"""Scoring captions: records in, per-item scores and a corpus summary out.

    source = open_input("captions.jsonl", stack, cmi_bench=None)
    summary = evaluate(source, CaptionOptions(metrics=("bleu", "rouge", "cider")), write=writer.write)

A record holds a candidate caption (`response`) and one or several references (`reference`, a
string or a list of strings; else `answer`, else `caption`). Both are tokenised
(core.metrics.captions.tokenize) and scored with the chosen metrics; the summary gives each
metric at corpus level with a 95 % bootstrap interval over items, and its mean over items.

Two passes: CIDEr weighs n-grams by their document frequency over the whole corpus, so no item
can be scored before every item has been read. The first pass keeps only the tokenised texts
(never the records) and scores the corpus; with `--per-item`, a second pass reads the records
again and writes each one with its scores (stdin is spooled to a temporary file for that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mllm.core.evaluation.cmi_bench import CmiBenchError, looks_like_cmi_bench, read_cmi_bench, task_from_file_name
from mllm.core.io.errors import Record, RecordError, StreamSummary, has_error, with_error
from mllm.core.io.records import read_records, spool_stdin
from mllm.core.metrics import captions as metrics
from mllm.core.metrics.bootstrap import bootstrap_intervals
from mllm.core.options import check_integer, check_number

STAGE = "eval-caption"
METRIC_GROUPS = ("bleu", "meteor", "rouge", "cider", "bertscore")
DEFAULT_METRICS = ("bleu", "meteor", "rouge", "cider")
METEOR_BACKENDS = ("auto", "jar", "nltk")
CMI_BENCH_CAPTION_TASKS = ("MusicCaps", "SDD")
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


def check_options(options: CaptionOptions) -> CaptionOptions:
    """Validate the metric choice and find what it needs, before any record is read.

    Returns the options with `meteor` resolved to "jar" or "nltk". Raises ValueError for a bad
    choice and metrics.MissingResource when a metric cannot run here (exit 2 in the CLI).
    """
    check_integer("--bootstrap", options.n_resamples, minimum=0)
    check_number("--confidence", options.confidence, above=0, below=1)
    if options.bertscore_layer is not None:
        check_integer("--bertscore-layer", options.bertscore_layer)
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
            raise metrics.MissingResource(f"{metrics.BERTSCORE_HELP} ({exc})") from exc
        metrics.check_bertscore_model(options.bertscore_model)  # a local folder with readable safetensors
    meteor = options.meteor
    if "meteor" in options.metrics:
        if meteor == "auto":
            meteor = "jar" if metrics.java_path() else "nltk"
        if meteor == "jar" and metrics.java_path() is None:
            raise metrics.MissingResource(metrics.JAVA_HELP)
        if meteor == "nltk":
            try:
                metrics.load_wordnet()
            except metrics.MissingResource as exc:
                if options.meteor == "auto":  # neither backend: say what each one needs
                    raise metrics.MissingResource(f"{metrics.JAVA_HELP}\n{exc}") from None
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
    """What the first pass keeps: tokenised texts only (raw texts too when BERTScore needs them)."""

    candidates: list[str] = field(default_factory=list)
    references: list[list[str]] = field(default_factory=list)
    raw_candidates: list[str] = field(default_factory=list)
    raw_references: list[list[str]] = field(default_factory=list)

    def add(self, candidate: str, references: list[str], keep_raw: bool) -> None:
        self.candidates.append(metrics.tokenize(candidate))
        self.references.append([metrics.tokenize(r) for r in references])
        if keep_raw:
            self.raw_candidates.append(candidate)
            self.raw_references.append(references)

    def __len__(self) -> int:
        return len(self.candidates)


@dataclass
class CorpusScores:
    """Per-item scores (name -> (n,) array) and corpus values (name -> float)."""

    items: dict[str, np.ndarray] = field(default_factory=dict)
    corpus: dict[str, float] = field(default_factory=dict)
    bleu_counts: np.ndarray | None = None


def score_corpus(corpus: CaptionCorpus, options: CaptionOptions, note: Callable[[str], None] = lambda _: None) -> CorpusScores:
    """Every chosen metric on every item, and at corpus level (definitions: core.metrics.captions).

    Corpus level: BLEU from counts summed over items; METEOR 1.5 the jar's aggregate; CIDEr,
    ROUGE-L, NLTK METEOR and BERTScore the mean over items.
    """
    scores = CorpusScores()
    cands, refs = corpus.candidates, corpus.references
    if "bleu" in options.metrics:
        note("BLEU")
        result = metrics.bleu(cands, refs)
        for k in range(4):
            scores.items[f"bleu_{k + 1}"] = result.items[:, k]
            scores.corpus[f"bleu_{k + 1}"] = float(result.corpus[k])
        scores.bleu_counts = result.counts
    if "meteor" in options.metrics:
        if options.meteor == "jar":
            note("METEOR 1.5 (java)")
            scores.corpus["meteor"], scores.items["meteor"] = metrics.meteor_jar(cands, refs)
        else:
            note("METEOR (nltk)")
            wordnet = metrics.load_wordnet()
            scores.items["meteor"] = np.array([metrics.meteor_nltk(c, r, wordnet) for c, r in zip(cands, refs)])
    if "rouge" in options.metrics:
        note("ROUGE-L")
        values = np.array([metrics.rouge_l(c, r) for c, r in zip(cands, refs)]).reshape(-1, 3)
        scores.items["rouge_l_f"], scores.items["rouge_l_recall"] = values[:, 2], values[:, 1]
    if "cider" in options.metrics:
        note("CIDEr")
        scores.corpus["cider"], scores.items["cider"] = metrics.cider(cands, refs)
    if "bertscore" in options.metrics:
        note("BERTScore")
        precision, recall, f1 = metrics.bertscore(
            corpus.raw_candidates, corpus.raw_references, options.bertscore_model,
            layer=options.bertscore_layer, batch_size=options.bertscore_batch_size,
        )
        scores.items.update(bertscore_precision=precision, bertscore_recall=recall, bertscore_f1=f1)
    for name, values in scores.items.items():
        scores.corpus.setdefault(name, float(np.mean(values)) if len(values) else float("nan"))
    return scores


def _mean_over_items(*values: np.ndarray) -> np.ndarray:
    return np.stack([v.mean(axis=-1) for v in values])  # k arrays (..., n) -> (k, ...)


def summarise(scores: CorpusScores, options: CaptionOptions) -> dict[str, dict[str, Any]]:
    """Per metric: value (corpus level), mean over items, and a percentile bootstrap interval.

    BLEU's interval resamples the items' counts and recomputes corpus BLEU; the others resample
    the per-item scores and take their mean. CIDEr's item scores keep the document frequencies
    of the full corpus. METEOR 1.5's value is the jar's aggregate, its interval that of the mean
    over items (`interval_of` says which).
    """
    out: dict[str, dict[str, Any]] = {}
    boot = {"n_resamples": options.n_resamples, "confidence": options.confidence, "seed": options.seed}
    intervals = {}
    if scores.bleu_counts is not None and len(scores.bleu_counts):
        bleu_intervals = bootstrap_intervals(metrics.corpus_bleu_statistic, list(scores.bleu_counts.T), **boot)
        intervals.update({f"bleu_{k + 1}": interval for k, interval in enumerate(bleu_intervals)})
    means = [name for name in scores.items if not name.startswith("bleu_")]
    if means and len(scores.items[means[0]]):
        mean_intervals = bootstrap_intervals(_mean_over_items, [scores.items[name] for name in means], **boot)
        intervals.update(zip(means, mean_intervals))
    for name, values in scores.items.items():
        interval = intervals.get(name)
        mean = float(np.mean(values)) if len(values) else float("nan")
        out[name] = {
            "value": scores.corpus[name],
            "low": interval.low if interval else float("nan"),
            "high": interval.high if interval else float("nan"),
            "mean_of_items": mean,
            "interval_of": "mean_of_items" if name == "meteor" and options.meteor == "jar" else "value",
        }
    return out


# ---------------------------------------------------------------- input files


@dataclass
class CaptionInput:
    """A re-readable input: `records()` starts a new pass over it."""

    path: str
    records: Callable[[], Iterator[Record]]
    cmi_bench: bool
    cmi_bench_task: str | None = None


def open_input(path: str, stack: ExitStack, *, cmi_bench: bool | None = None) -> CaptionInput:
    """Prepare an input for two passes; CMI-Bench caption result files are detected when not told.

    A CMI-Bench file named after a task that is not captioning (e.g. `<model>_GS_key.jsonl`) is
    refused with a pointer to `mllm eval-mir`.
    """
    real = spool_stdin(stack) if path == "-" else path
    shown = "<stdin>" if path == "-" else path  # the name error messages give
    is_cmi = looks_like_cmi_bench(real) if cmi_bench is None else cmi_bench
    if not is_cmi:
        return CaptionInput(path, lambda: read_records(real, name=shown), False)
    try:
        task = task_from_file_name(path) if path != "-" else None
    except CmiBenchError:
        task = None  # a name that tells no task: fine, captions need none
    if task is not None and task not in CMI_BENCH_CAPTION_TASKS:
        raise CmiBenchError(
            f"{Path(path).name} is a CMI-Bench {task} result file, not captioning "
            f"({', '.join(CMI_BENCH_CAPTION_TASKS)}): score it with `mllm eval-mir`"
        )
    return CaptionInput(path, lambda: read_cmi_bench(real, "caption", shown), True, task)


# ---------------------------------------------------------------- the command's work


def evaluate(
    source: CaptionInput,
    options: CaptionOptions,
    *,
    write: Callable[[Record], None] | None = None,
    summary: StreamSummary | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Score every record of `source` and return the summary; with `write`, also write every
    record (in order, records in = records out) with its scores in `eval`, or as an error record.

    `options` must have been through check_options (METEOR backend resolved).
    """
    corpus = CaptionCorpus()
    keep_raw = "bertscore" in options.metrics
    n_records = n_failed = 0
    note("reading")
    for record in source.records():
        n_records += 1
        failure = None  # the error record this stage makes of it, if any
        if not has_error(record):
            try:
                corpus.add(*caption_pair(record, options), keep_raw)
            except RecordError as exc:
                failure = with_error(record, STAGE, exc)
        n_failed += has_error(record) or failure is not None
        if summary is not None:
            summary.records_in += 1
            summary.note(failure or record, new_failure=failure is not None)
    scores = score_corpus(corpus, options, note)
    if write is not None:
        note("writing")
        _write_items(source, options, scores, write)
    result: dict[str, Any] = {
        "input": source.path,
        "n_records": n_records,
        "n_scored": len(corpus),
        "n_failed": n_failed,
        "tokenizer": TOKENIZER,
        "meteor_backend": _meteor_name(options),
        "bootstrap": {
            "n_resamples": options.n_resamples, "confidence": options.confidence, "seed": options.seed,
            "method": "percentile bootstrap over items (BLEU: corpus BLEU recomputed from resampled counts)",
        },
        "metrics": summarise(scores, options),
    }
    if source.cmi_bench:
        result["cmi_bench_task"] = source.cmi_bench_task
    return result


def _meteor_name(options: CaptionOptions) -> str | None:
    if "meteor" not in options.metrics:
        return None
    return "METEOR 1.5 jar (pycocoevalcap, -l en -norm)" if options.meteor == "jar" else "NLTK meteor_score (WordNet 3.0)"


def _write_items(source: CaptionInput, options: CaptionOptions, scores: CorpusScores, write: Callable[[Record], None]) -> None:
    """Second pass: every record again, with `eval` = {scores, n_references}, or its error."""
    names = list(scores.items)
    index = 0
    for record in source.records():
        if has_error(record):
            write(record)
            continue
        try:
            _, references = caption_pair(record, options)
        except RecordError as exc:
            write(with_error(record, STAGE, exc))
            continue
        item_scores = {name: float(scores.items[name][index]) for name in names}
        write({**record, "eval": {"scores": item_scores, "n_references": len(references)}})
        index += 1
