"""Which instruction tasks a record supports, and the structured answer of each.

A record's music values come from `labels` (ground truth) and `features` (analysis), with the same
field names (docs/records.md). By default `labels` wins and `features` fills what labels lack;
`prefer="features"` turns that round. Each instruction record says which one gave its answer
(`source.labels_from`).

    task (family)   needs                        answer                          eval-mir kind
    key             key                          {"key": "A minor"}              key
    tempo           tempo_bpm                    {"tempo_bpm": 120.0}            tempo
    meter           meter                        {"meter": "4"}                  classification
    beats           beats                        {"beats": [0.5, 1.0, ...]}      beats
    downbeats       downbeats                    {"downbeats": [...]}            downbeats
    chords          chords                       {"chords": [[0.0, 2.0, "C:maj"], ...]}  chords
    genre           genre (one label)            {"genre": "rock"}               classification
    genres          genres (list)                {"genres": ["rock", "pop"]}     tagging
    instruments     instruments (list)           {"instruments": [...]}          tagging
    moods           moods (list)                 {"moods": [...]}                tagging
    tags            tags (list)                  {"tags": [...]}                 tagging
    regression      every numeric field with a declared scale; the task is the field's name
                    (arousal, valence, energy, ...)   {"arousal": 5.2} + `scale` [1, 9]  regression
    arousal_class   arousal_class (high/low)     {"arousal_class": "high"}       classification
    valence_class   valence_class (positive/negative)                            classification
    quadrant        quadrant (Q1-Q4)             {"quadrant": "Q2"}              classification
    caption         caption, else composed from the other values (mir_qa.py)   {"caption": "..."}
    mir_qa          LLark-style questions from the metadata (mir_qa.py)
    qa              question-answer pairs in `labels.qa` (MusicQA), or generated (generator.py)

Numbers are rounded as the answer text states them (tempo 1 decimal, times 2, numeric values 1
on scales at least 2 wide, else 2), so the structured answer equals what a parser reads from the
text. A record that lacks a task's values is skipped for that task with a reason; a value that is
there but cannot be read (a key "H minor", a chord "Xyz") is an error of the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mllm.core.evaluation.kinds import KINDS, Context
from mllm.core.evaluation.tasks import DEFAULT_SCALES
from mllm.core.instructions import templates as tpl
from mllm.core.io.errors import RecordError
from mllm.core.parse.chords import to_harte
from mllm.core.parse.key import find_key
from mllm.core.parse.labels import LabelSet
from mllm.core.parse.tempo import HIGHEST_BPM, LOWEST_BPM
from mllm.core.parse.times import read_times

__all__ = ["FAMILIES", "Target", "Skip", "MusicValues", "family_targets", "reads_back"]

FAMILIES = (
    "key", "tempo", "meter", "beats", "downbeats", "chords", "genre", "genres", "instruments", "moods", "tags",
    "regression", "arousal_class", "valence_class", "quadrant", "caption", "mir_qa", "qa",
)
LIST_FAMILIES = ("genres", "instruments", "moods", "tags")
# Closed label sets of the emotion classes (MERGE quadrants mapped as in adapters/merge.py).
CLASS_LABELS = {
    "arousal_class": ("high", "low"),
    "valence_class": ("positive", "negative"),
    "quadrant": ("Q1", "Q2", "Q3", "Q4"),
}
# Numeric fields that have their own task or are not attributes to rate.
NOT_RATED = frozenset(("duration", "tempo_bpm", "meter", "key_confidence", "start", "end"))
ABOUT = {"arousal": " (how calm or energetic it feels)", "valence": " (how negative or positive it feels)"}


class Skip(Exception):
    """The record lacks what a task needs; the message is the reason counted in the summary."""


@dataclass
class Target:
    """One task's answer for a record, ready to be phrased."""

    task: str  # the record's `task` ("arousal" for a regression target)
    templates: str  # key of templates.QUESTIONS / ANSWERS
    answer: Any  # the structured answer
    fill: dict[str, str]  # values as the phrasings write them
    kind: str | None = None  # eval-mir kind, written as `task_type`
    labels_from: str | None = None  # "labels" or "features"
    fields: dict[str, Any] = field(default_factory=dict)  # extra fields of the record (e.g. scale)
    check: Callable[[str], bool] | None = None  # True when the answer text reads back to `answer`
    answer_text: str | None = None  # a fixed answer text (captions, dataset QA) ...
    answer_id: str | None = None  # ... and its provenance ("caption/given", "qa/dataset")
    question_text: str | None = None  # a fixed question (dataset QA)


class MusicValues:
    """The record's music values, `labels` before `features` (or the other way round)."""

    def __init__(self, record: Mapping[str, Any], prefer: str = "labels"):
        order = ("labels", "features") if prefer == "labels" else ("features", "labels")
        self.sources: list[tuple[str, Mapping[str, Any]]] = []
        for name in order:
            value = record.get(name)
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise RecordError(f"field {name!r} must be an object of music values, got {type(value).__name__}", name)
            self.sources.append((name, value))

    def get(self, name: str) -> tuple[Any, str | None]:
        for source, values in self.sources:
            value = values.get(name)
            if value is not None and value != "" and value != []:
                return value, source
        return None, None

    def need(self, name: str) -> tuple[Any, str]:
        value, source = self.get(name)
        if source is None:
            raise Skip(f"no {name}")
        return value, source

    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for _, values in self.sources:
            seen.update(dict.fromkeys(values))
        return list(seen)


def _bad(source: str, name: str, message: str) -> RecordError:
    return RecordError(f"field '{source}.{name}': {message}", source)


# ---------------------------------------------------------------- readers of single values


def read_key_value(value: Any, source: str) -> str:
    found = find_key(value) if isinstance(value, str) else None
    if found is None:
        raise _bad(source, "key", f"not a key: {value!r} (write it like \"A minor\")")
    if found.value.mode not in ("major", "minor"):
        raise Skip("key is neither major nor minor")
    return str(found.value)


def read_float(value: Any, source: str, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _bad(source, name, f"not a number: {value!r}") from None
    if not tpl.is_number(value):
        raise _bad(source, name, f"not a number: {value!r}")
    return float(value)


def read_time_list(value: Any, source: str, name: str) -> list[float]:
    if isinstance(value, str):
        times = read_times(value)
        if times is None:
            raise _bad(source, name, f"holds no times: {value[:60]!r}")
    elif isinstance(value, Sequence):
        times = [read_float(t, source, name) for t in value]
    else:
        raise _bad(source, name, f"must be a list of times in seconds, got {type(value).__name__}")
    return sorted({tpl.rounded(t, tpl.TIME_DECIMALS) for t in times if t >= 0})


def read_chord_rows(value: Any, source: str) -> list[list]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _bad(source, "chords", f"must be a list of [start, end, chord], got {type(value).__name__}")
    rows = []
    for row in value:
        if isinstance(row, Mapping):
            row = (row.get("start"), row.get("end"), row.get("chord") or row.get("label"))
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != 3:
            raise _bad(source, "chords", f"each chord must be [start, end, chord], got {row!r}")
        label = to_harte(str(row[2]))
        if label is None:
            raise _bad(source, "chords", f"{row[2]!r} is not a chord")
        start = tpl.rounded(read_float(row[0], source, "chords"), tpl.TIME_DECIMALS)
        end = tpl.rounded(read_float(row[1], source, "chords"), tpl.TIME_DECIMALS)
        if end > start >= 0:  # rows shorter than the written precision are dropped
            rows.append([start, end, label])
    return sorted(rows)


def read_label_list(value: Any, source: str, name: str) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Sequence):
        raise _bad(source, name, f"must be a list of labels, got {type(value).__name__}")
    labels = [str(v).strip() for v in value if str(v).strip()]
    return list(dict.fromkeys(labels))


# ---------------------------------------------------------------- read-back checks


@lru_cache(maxsize=4096)
def _label_set(labels: tuple[str, ...]) -> LabelSet:
    return LabelSet.of(labels)


def reads_back(kind: str, task: str, text: str, answer: Mapping[str, Any], *,
               scale: tuple[float, float] | None = None, labels: Sequence[str] | None = None) -> bool:
    """True when eval-mir reads `text` back to `answer`: the check every phrasing must pass, made
    by the task kind eval-mir scores with (core.evaluation.kinds). Label tasks are read against
    `labels`, else the answer's own labels."""
    registered = KINDS[kind]
    label_set = None
    if registered.labelled:
        (value,) = answer.values()
        label_set = _label_set(tuple(labels or ([value] if isinstance(value, str) else value)))
    return registered.reads_back(text, answer, Context(task, label_set=label_set, scale=scale))


def _checker(kind: str, task: str, answer: Mapping[str, Any], **context) -> Callable[[str], bool]:
    return lambda text: reads_back(kind, task, text, answer, **context)


# ---------------------------------------------------------------- families


def key_targets(values: MusicValues, **_) -> list[Target]:
    value, source = values.need("key")
    key = read_key_value(value, source)
    answer = {"key": key}
    return [Target("key", "key", answer, {"key": key}, "key", source, check=_checker("key", "key", answer))]


def tempo_targets(values: MusicValues, **_) -> list[Target]:
    value, source = values.need("tempo_bpm")
    tempo = tpl.rounded(read_float(value, source, "tempo_bpm"), tpl.TEMPO_DECIMALS)
    if not LOWEST_BPM <= tempo <= HIGHEST_BPM:
        raise Skip(f"tempo outside {LOWEST_BPM:g}-{HIGHEST_BPM:g} BPM")
    answer = {"tempo_bpm": tempo}
    fill = {"tempo": tpl.format_number(tempo, tpl.TEMPO_DECIMALS)}
    return [Target("tempo", "tempo", answer, fill, "tempo", source, check=_checker("tempo", "tempo", answer))]


def meter_targets(values: MusicValues, **_) -> list[Target]:
    value, source = values.need("meter")
    meter = read_float(value, source, "meter")
    if meter != int(meter) or not 1 <= meter <= 32:
        raise _bad(source, "meter", f"must be a whole number of beats per bar, got {value!r}")
    label = str(int(meter))
    answer = {"meter": label}
    check = _checker("classification", "meter", answer, labels=[str(n) for n in range(1, 33)])
    return [Target("meter", "meter", answer, {"meter": label}, "classification", source, check=check)]


def _list_targets(name: str, read: Callable, fill: Callable[[list], dict[str, str]], kind: str) -> Callable[..., list[Target]]:
    def targets(values: MusicValues, **_) -> list[Target]:
        value, source = values.need(name)
        items = read(value, source, name)
        if not items:
            raise Skip(f"no {name}")
        answer = {name: items}
        return [Target(name, name, answer, fill(items), kind, source, check=_checker(kind, name, answer))]

    return targets


def times_targets(name: str) -> Callable[..., list[Target]]:
    return _list_targets(name, read_time_list, lambda times: {"times": tpl.format_times(times)}, name)


def chord_targets(values: MusicValues, **_) -> list[Target]:
    value, source = values.need("chords")
    rows = read_chord_rows(value, source)
    if not rows:
        raise Skip("no chords")
    answer = {"chords": rows}
    fill = {"chords_from_to": tpl.format_chords_from_to(rows), "chords_spans": tpl.format_chords_spans(rows)}
    return [Target("chords", "chords", answer, fill, "chords", source, check=_checker("chords", "chords", answer))]


def single_label_targets(name: str, kind: str = "classification") -> Callable[..., list[Target]]:
    def targets(values: MusicValues, **_) -> list[Target]:
        value, source = values.need(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str) or not value.strip():
            raise _bad(source, name, f"must be one label, got {value!r}")
        label = value.strip()
        allowed = CLASS_LABELS.get(name)
        if allowed is not None and label not in allowed:
            raise _bad(source, name, f"must be one of {', '.join(allowed)}, got {label!r}")
        answer = {name: label}
        check = _checker(kind, name, answer, labels=allowed)
        return [Target(name, name, answer, {"label": label}, kind, source, check=check)]

    return targets


def label_list_targets(name: str) -> Callable[..., list[Target]]:
    return _list_targets(name, read_label_list, lambda labels: {"labels": tpl.format_labels(labels)}, "tagging")


def scale_of(name: str, record: Mapping[str, Any], scales: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The declared scale of a numeric field: --scale, the record's `scales`, or the default (1-9 for arousal...)."""
    if name in scales:
        return scales[name]
    declared = record.get("scales")
    if isinstance(declared, Mapping) and declared.get(name) is not None:
        value = declared[name]
        try:
            low, high = (float(v) for v in value)
        except (TypeError, ValueError):
            raise RecordError(f"field 'scales.{name}' must be [low, high], got {value!r}", "scales") from None
        if not low < high:
            raise RecordError(f"field 'scales.{name}' must have low < high, got {value!r}", "scales")
        return low, high
    return DEFAULT_SCALES.get(name)


def numeric_fields(values: MusicValues) -> list[str]:
    return [
        name for name in values.names()
        if name not in NOT_RATED and tpl.is_number(values.get(name)[0])
    ]


def regression_target(name: str, values: MusicValues, record: Mapping[str, Any],
                      scales: Mapping[str, tuple[float, float]]) -> Target:
    value, source = values.need(name)
    number = read_float(value, source, name)
    scale = scale_of(name, record, scales)
    if scale is None:
        raise Skip(f"{name} has no declared scale")
    decimals = tpl.number_decimals(scale)
    number = tpl.rounded(number, decimals)
    if not scale[0] <= number <= scale[1]:
        raise Skip(f"{name} outside its scale")
    text = tpl.format_number(number, decimals)
    display = name.replace("_", " ")
    fill = {
        "name": display, "about": ABOUT.get(name, ""), "value": text, "a": tpl.indefinite_article(text),
        "scale": tpl.scale_text(scale), "low": tpl.format_number(scale[0], 2), "high": tpl.format_number(scale[1], 2),
    }
    answer = {name: number}
    check = _checker("regression", name, answer, scale=scale)
    return Target(name, "regression", answer, fill, "regression", source, {"scale": list(scale)}, check=check)


def caption_targets(values: MusicValues, rng, **_) -> list[Target]:
    from mllm.core.instructions.mir_qa import compose_caption

    value, source = values.get("caption")
    if isinstance(value, str) and value.strip():
        caption = value.strip()
        template = "caption/given"
    else:
        caption, template, source = compose_caption(values, rng)
    target = Target("caption", "caption", {"caption": caption}, {"caption": caption}, None, source)
    target.answer_text, target.answer_id = caption, template
    return [target]


def qa_targets(values: MusicValues, **_) -> list[Target]:
    value, source = values.need("qa")
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _bad(source, "qa", "must be a list of {question, answer}")
    targets = []
    for pair in value:
        if not (isinstance(pair, Mapping) and isinstance(pair.get("question"), str) and isinstance(pair.get("answer"), str)):
            raise _bad(source, "qa", f"each pair must hold 'question' and 'answer' strings, got {pair!r:.80}")
        question, answer = pair["question"].strip(), pair["answer"].strip()
        if not question or not answer:
            continue
        target = Target("qa", "qa", answer, {}, None, source)
        target.question_text, target.answer_text, target.answer_id = question, answer, "qa/dataset"
        targets.append(target)
    if not targets:
        raise Skip("no question-answer pairs")
    return targets


SIMPLE_FAMILIES: dict[str, Callable[..., list[Target]]] = {
    "key": key_targets,
    "tempo": tempo_targets,
    "meter": meter_targets,
    "beats": times_targets("beats"),
    "downbeats": times_targets("downbeats"),
    "chords": chord_targets,
    "genre": single_label_targets("genre"),
    "genres": label_list_targets("genres"),
    "instruments": label_list_targets("instruments"),
    "moods": label_list_targets("moods"),
    "tags": label_list_targets("tags"),
    "arousal_class": single_label_targets("arousal_class"),
    "valence_class": single_label_targets("valence_class"),
    "quadrant": single_label_targets("quadrant"),
    "caption": caption_targets,
    "qa": qa_targets,
}


def family_targets(family: str, values: MusicValues, record: Mapping[str, Any], *, rng,
                   scales: Mapping[str, tuple[float, float]], count: int = 1) -> list[Target]:
    """Targets of one task family (or of one numeric field's name) for a record; raises Skip.

    `count` is how many mir_qa questions to draw (other families give one target per value).
    """
    if family in SIMPLE_FAMILIES:
        return SIMPLE_FAMILIES[family](values, rng=rng)
    if family == "mir_qa":
        from mllm.core.instructions.mir_qa import mir_qa_targets

        return mir_qa_targets(values, rng, count)
    if family == "regression":
        names = numeric_fields(values)
        targets, reasons = [], []
        for name in names:
            try:
                targets.append(regression_target(name, values, record, scales))
            except Skip as skip:
                reasons.append(str(skip))
        if not targets:
            raise Skip("; ".join(reasons) or "no numeric values")
        return targets
    return [regression_target(family, values, record, scales)]  # a numeric field named directly

