"""Records with labels and/or features -> instruction records, streaming.

    builder = InstructionBuilder(BuildOptions(tasks=("key", "tempo"), per_task=2, seed=0))
    for record in records:
        for instruction in builder.build(record):     # one input -> several instruction records
            ...

Each instruction record is the input record (every field passed through) with:

    id        "<input id>#<task>-<n>"
    task      "key", "tempo", "arousal", "caption", "mir_qa", "qa", ... (eval-mir's names)
    task_type the eval-mir kind, for the tasks eval-mir scores (it names a numeric field's kind)
    messages  [{"role": "user", "content": "<audio>\\n<question>"}, {"role": "assistant", "content": "<answer>"}]
    answer    the structured answer ({"key": "A minor"}; a free-text answer for `qa`)
    scale     [low, high] for numeric tasks
    split     train / valid / test
    source    {"dataset", "template", "seed", "generator", "record", "labels_from", "split_from"}

There is no system turn, and the audio placeholder `<audio>` stands once, at the start of the
user turn (a dataset question that holds it has it removed). Phrasings are drawn per (seed, input
id, task) with their own random stream, so a record's instructions do not depend on the other
records or their order. `--per-task N` gives N records per (excerpt, task), each with another
question phrasing (another question type for mir_qa). Every answer is checked to read back to
its structured value, read as eval-mir reads it (tasks.reads_back: the task's kind in
core.evaluation.kinds), before it is written; a phrasing that
does not is not used, and when none does the task is skipped for that record and counted.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mllm.core.instructions import templates as tpl
from mllm.core.instructions.generator import GeneratorError, QaGenerator
from mllm.core.instructions.splits import LeakageCheck, SplitRule
from mllm.core.instructions.tasks import FAMILIES, MusicValues, Skip, Target, family_targets
from mllm.core.io.errors import Record, RecordError, StreamSummary, has_error, with_error
from mllm.core.io.records import RecordWriter, output_format

__all__ = ["STAGE", "BuildOptions", "InstructionBuilder", "build_stream", "write_instructions"]

STAGE = "build-instructions"


@dataclass
class BuildOptions:
    tasks: tuple[str, ...] | None = None  # families or numeric field names; None = every family
    per_task: int = 1
    seed: int = 0
    prefer: str = "labels"  # labels | features: which source wins when both have a value
    split_rule: SplitRule = field(default_factory=SplitRule)
    scales: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    dataset_questions: bool = True  # use a record's own `questions[task]` (CMI-Bench) when present
    leakage: str = "path"  # path | content | off
    generator: QaGenerator | None = None


def _rng(seed: int, record_id: str, task: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{record_id}\x00{task}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _question(text: str) -> str:
    return text.replace(tpl.AUDIO_PLACEHOLDER, "").strip()


def messages(question: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"{tpl.AUDIO_PLACEHOLDER}\n{_question(question)}"},
        {"role": "assistant", "content": answer},
    ]


class InstructionBuilder:
    def __init__(self, options: BuildOptions):
        if options.per_task < 1:
            raise ValueError("per_task must be >= 1")
        if options.prefer not in ("labels", "features"):
            raise ValueError(f"prefer must be labels or features, got {options.prefer!r}")
        if options.leakage not in ("path", "content", "off"):
            raise ValueError(f"leakage must be path, content or off, got {options.leakage!r}")
        self.options = options
        self.families = options.tasks or FAMILIES
        self.leakage = LeakageCheck(by_content=options.leakage == "content")
        self.built: Counter = Counter()  # task -> instruction records
        self.skipped: dict[str, Counter] = defaultdict(Counter)  # family -> reason -> records
        self.family_built: Counter = Counter()  # family (as asked) -> instruction records

    # -- one record

    def build(self, record: Record) -> list[Record]:
        """The instruction records of one input record; raises for a record that cannot be read."""
        audio = record.get("audio")
        if not isinstance(audio, str) or not audio:
            raise RecordError("record has no 'audio' field (the path of the excerpt the questions are about)", "audio")
        split, split_from = self.options.split_rule(record)
        values = MusicValues(record, self.options.prefer)
        context = {"split": split, "split_from": split_from, "counts": Counter()}
        out: list[Record] = []
        for family in self.families:
            rng = _rng(self.options.seed, record["id"], family)
            try:
                targets = family_targets(
                    family, values, record, rng=rng, scales=self.options.scales, count=self.options.per_task
                )
            except Skip as skip:
                if not (family == "qa" and self.options.generator is not None):
                    self.skipped[family][str(skip)] += 1
                continue
            for target in targets:
                made = self._phrase(record, family, target, rng, context)
                if not made:
                    self.skipped[family]["no phrasing reads back to the answer"] += 1
                self.family_built[family] += len(made)
                out.extend(made)
        if self.options.generator is not None and "qa" in self.families:
            generated = self._generate(record, context)
            self.family_built["qa"] += sum(not has_error(r) for r in generated)
            out.extend(generated)
        if out and self.options.leakage != "off":
            self.leakage.add(audio, split, record["id"])
        return out

    def _questions(self, record: Record, family: str, target: Target, rng: random.Random) -> list[tuple[str, str]]:
        if target.question_text is not None:
            return [(target.answer_id or "dataset", target.question_text)]
        own = record.get("questions")
        if self.options.dataset_questions and isinstance(own, Mapping):
            text = own.get(target.task) or own.get(family)
            if isinstance(text, str) and text.strip():
                return [("dataset", text)]
        phrasings = tpl.QUESTIONS[target.templates]
        count = 1 if family == "mir_qa" else min(self.options.per_task, len(phrasings))
        return [(p.id, p.render(target.fill)) for p in rng.sample(phrasings, count)]

    def _answer(self, target: Target, rng: random.Random) -> tuple[str, str] | None:
        if target.answer_text is not None:
            return target.answer_id or "given", target.answer_text
        phrasings = list(tpl.ANSWERS[target.templates])
        rng.shuffle(phrasings)
        for phrasing in phrasings:
            text = phrasing.render(target.fill)
            if target.check is None or target.check(text):
                return phrasing.id, text
        return None

    def _phrase(self, record: Record, family: str, target: Target, rng: random.Random, context: dict) -> list[Record]:
        made = []
        for question_id, question in self._questions(record, family, target, rng):
            answer = self._answer(target, rng)
            if answer is None:
                return []
            answer_id, answer_text = answer
            made.append(self._record(record, target, question, answer_text, f"{question_id},{answer_id}", context))
        return made

    def _record(self, record: Record, target: Target, question: str, answer: str, template: str,
                context: dict, generator: dict | None = None) -> Record:
        n = context["counts"][target.task]
        context["counts"][target.task] += 1
        self.built[target.task] += 1
        out = dict(record)
        out.pop("error", None)
        out["id"] = f"{record['id']}#{target.task}-{n}"
        out["task"] = target.task
        if target.kind:
            out["task_type"] = target.kind
        out["messages"] = messages(question, answer)
        out["answer"] = target.answer
        out.update(target.fields)
        out["split"] = context["split"]
        out["source"] = {
            "dataset": record.get("dataset"),
            "template": template,
            "seed": self.options.seed,
            "generator": generator,
            "record": record["id"],
            "labels_from": target.labels_from,
            "split_from": context["split_from"],
        }
        return out

    def _generate(self, record: Record, context: dict) -> list[Record]:
        generator = self.options.generator
        try:
            pairs = generator.generate(record, seed=self.options.seed)
        except GeneratorError as exc:
            failed = with_error(record, STAGE, exc)
            failed["id"] = f"{record['id']}#qa-generated"
            return [failed]
        template = f"generator/{generator.config.family}"
        made = []
        for pair in pairs:
            target = Target("qa", "qa", pair.answer, {}, None, None)
            made.append(self._record(record, target, pair.question, pair.answer, template, context, generator.provenance))
        if not pairs:
            self.skipped["qa"]["every generated pair was filtered"] += 1
        return made

    # -- the report

    def report_lines(self) -> list[str]:
        """People-facing counts: records per task, skips with their reasons, tasks asked that gave nothing."""
        lines = [f"{task}: {n} instruction records" for task, n in sorted(self.built.items())]
        for family, reasons in sorted(self.skipped.items()):
            text = ", ".join(f"{reason} x{n}" for reason, n in reasons.most_common(4))
            if not self.family_built[family]:
                if family in (self.options.tasks or ()):
                    lines.append(f"warning: task {family!r} produced no instruction record ({text})")
                    continue
                if all(reason.startswith("no ") for reason in reasons):
                    continue  # every task by default: a corpus without genres is not news
            lines.append(f"{family}: skipped {sum(reasons.values())} records ({text})")
        if self.options.generator is not None:
            lines.append(self.options.generator.describe())
        return lines


def build_stream(records: Iterable[Record], builder: InstructionBuilder, summary: StreamSummary) -> Iterator[Record]:
    """Instruction records of a stream; an input that failed upstream or here is one error record."""
    for record in records:
        summary.records_in += 1
        if has_error(record):
            # An annotation row the adapter could not read failed here; other errors came from upstream.
            summary.note(record, new_failure=record["error"].get("stage") == STAGE)
            yield record
            continue
        try:
            made = builder.build(record)
        except Exception as exc:  # noqa: BLE001 - any failure of one record is that record's error
            made = [with_error(record, STAGE, exc)]
        for out in made:
            summary.note(out, new_failure=has_error(out))
            yield out


def write_instructions(records: Iterable[Record], dest: str, fmt: str | None, builder: InstructionBuilder) -> bool:
    """Write `records` to `dest` ('-' = stdout) only if the leakage check passes at the end.

    A file is written as `<dest>.partial` (memory stays flat) and renamed to `dest` when no audio
    sits in two splits; otherwise the partial file is deleted and `dest` is left as it was. For
    stdout the records are staged in a temporary file and copied out once the check has passed.
    Returns whether they were written.
    """
    if dest != "-":
        writer = RecordWriter(dest, fmt)
        with writer:
            for record in records:
                writer.write(record)
            if not builder.leakage.ok:
                writer.abandon()
        return builder.leakage.ok
    with tempfile.TemporaryDirectory(prefix="mllm-instructions-") as folder:
        staged = Path(folder) / f"staged.{output_format(dest, fmt)}"
        with RecordWriter(staged, fmt) as writer:
            for record in records:
                writer.write(record)
        if not builder.leakage.ok:
            return False
        with open(staged, "rb") as handle:
            shutil.copyfileobj(handle, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return True

