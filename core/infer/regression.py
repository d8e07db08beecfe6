"""`mllm regress --method llm`: ask a MusicLLM for each numeric target on its scale, read the number.

For each target (arousal, valence, ...) and its scale the model is asked the emotion paper's
question, from build-instructions' templates (core/instructions/templates.py):

    "How would you rate the arousal (how calm or energetic it feels) of this music on a scale from 1 to 9?"

The answer is read by the regression kind eval-mir scores with (core.evaluation.kinds: the
number after the target's name, scale mentions and echoed example scores left out), so regress
and eval-mir read one response the same way; then clipped to the scale. Written fields:

    prediction   {"arousal": 6.5, "valence": None, "parse_ok": {"arousal": true, "valence": false}}
    response     {"arousal": "I would assign a 6.5 ...", "valence": "calm"}   the raw answers
    regression   {"arousal": {"read": "6.5", "clipped": false}, "valence": {"read": null, "clipped": false}}

`parse_ok` says per target whether a number was read (None = not read), and eval-mir reads it per
target: an unread valence does not drop the arousal read from the same record. An unparsed answer
stays visible in `response`. The target name `task` stands for the record's own `task`
(instruction records ask one thing each).
Scales: `scales[name]` (from --scale NAME=LOW,HIGH), else the record's `scale` when its `task` is
that target, else DEFAULT_SCALES (arousal, valence, energy, brightness: 1-9).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from mllm.core.evaluation.kinds import KINDS, Context
from mllm.core.evaluation.tasks import DEFAULT_SCALES, record_scale
from mllm.core.infer.generation import Generate, Prompt, answer_records, prompt_audio
from mllm.core.instructions import templates as tpl
from mllm.core.instructions.tasks import ABOUT
from mllm.core.io.errors import Record, StreamSummary
from mllm.core.model.chat import AUDIO_PLACEHOLDER

__all__ = ["STAGE", "DEFAULT_TARGETS", "question", "read_value", "target_scale", "regress_records"]

STAGE = "regress"
DEFAULT_TARGETS = ("arousal", "valence")
OWN_TASK = "task"  # in `targets`: the record's own `task`
REGRESSION = KINDS["regression"]


def question(name: str, scale: tuple[float, float]) -> str:
    """The emotion paper's question for `name` on `scale` (the first regression phrasing)."""
    fill = {"name": name.replace("_", " "), "about": ABOUT.get(name, ""),
            "low": tpl.format_number(scale[0], 2), "high": tpl.format_number(scale[1], 2)}
    return tpl.QUESTIONS["regression"][0].render(fill)


def read_value(text: str, name: str, scale: tuple[float, float], question: str | None = None,
               ) -> tuple[float | None, str | None, bool]:
    """(value clipped to the scale or None, the text read, whether it was clipped)."""
    reading = REGRESSION.read_answer("response", text, None, Context(name, scale=scale, question=question))
    if not reading.parse_ok:
        return None, None, False
    low, high = scale
    value = min(max(reading.value, low), high)
    return value, reading.matched, value != reading.value


def target_scale(record: Mapping, name: str, scales: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    if name in scales:
        return tuple(scales[name])
    if record.get("task") == name:
        return record_scale(record, name, None)
    return record_scale({}, name, DEFAULT_SCALES.get(name.lower()))


def regress_records(records: Iterable[Record], generate: Generate, *, targets: tuple[str, ...] = DEFAULT_TARGETS,
                    scales: Mapping[str, tuple[float, float]] | None = None, batch_size: int = 8,
                    summary: StreamSummary | None = None, split: str | None = None) -> Iterator[Record]:
    """Every record with `prediction`, `response` and `regression` added (see the module docstring);
    with `split`, records of other splits pass through untouched."""
    scales = dict(scales or {})

    def names(record: Record) -> list[str]:
        out = []
        for name in targets:
            if name == OWN_TASK:
                name = record.get("task")
                if not isinstance(name, str) or not name:
                    raise KeyError(f"record {record.get('id')!r} has no 'task' (asked for with --targets task)")
            if name not in out:
                out.append(name)
        return out

    def questions(record: Record) -> list[Prompt]:
        audio = prompt_audio(record, generate)  # read once, shared by the record's questions
        return [Prompt([{"role": "user", "content": f"{AUDIO_PLACEHOLDER}\n{question(name, target_scale(record, name, scales))}"}],
                       audio) for name in names(record)]

    def finish(record: Record, answers: list[str]) -> Record:
        prediction, details = {}, {}
        asked = names(record)
        for name, text in zip(asked, answers):
            scale = target_scale(record, name, scales)
            value, read, clipped = read_value(text, name, scale, question(name, scale))
            prediction[name] = value
            details[name] = {"read": read, "clipped": clipped}
        prediction["parse_ok"] = {name: prediction[name] is not None for name in asked}
        return {**record, "prediction": prediction, "response": dict(zip(asked, answers)), "regression": details}

    return answer_records(records, questions, finish, generate, batch_size=batch_size, stage=STAGE, summary=summary,
                          split=split)
