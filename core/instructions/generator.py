"""Question-answer pairs from any OpenAI-compatible chat endpoint, filtered as LLark filters them.

    generator = QaGenerator(GeneratorConfig(url="http://127.0.0.1:8000/v1", model="gpt-4o-mini"))
    pairs = generator.generate(record, seed=0)       # [QaPair(question, answer), ...], banned ones removed

LLark (Gardner et al. 2024, Sec. 4.2 and appendix G.1) gives a chat model the clip's metadata as
raw JSON (dataset annotations plus tempo, key, beats and chords from analysis) under a system
prompt that describes the fields and the kind of questions wanted, asks for a JSON list of
{"question", "answer"} objects, and drops pairs with the phrases of its Table 9 (filters.py).
Two prompt families follow the paper's: "understanding" (factual questions about the music) and
"reasoning" (questions that combine several aspects or outside knowledge).

The request is a plain POST to `<url>/chat/completions` (the standard library's urllib: no new
dependency) with `model`, `messages`, `temperature` and `seed`. The API key, when the endpoint
needs one, is read from an environment variable (OPENAI_API_KEY by default) and sent as a Bearer
token; it is never written anywhere. Timeouts, connection errors, 429 and 5xx answers are retried
with a growing pause; other HTTP errors are not. A reply that holds no JSON list of pairs is a
GeneratorError, as is a request that still fails after the retries: the caller makes the record
an error record.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mllm.core.instructions.filters import banned_phrase
from mllm.core.options import check_integer, check_number

__all__ = ["GeneratorConfig", "GeneratorError", "QaPair", "QaGenerator", "chat_url", "metadata_for_prompt", "parse_pairs"]

FAMILIES = ("understanding", "reasoning")

_INTRO = (
    "You are an expert AI assistant that knows music production, musical structure, music history and "
    "music styles, and you are hearing a short clip of music. What you hear is described in the JSON list "
    "below, whose keys and values are metadata about the clip. Answer every question as if you were "
    "hearing the clip.\n\n"
    "The JSON may hold: genre/genres, instruments, moods, tags, caption (dataset annotations); "
    "tempo_bpm (beats per minute); key; meter (beats per bar); beats and downbeats (times in seconds); "
    "chords ([start, end, chord] in seconds, Harte notation); numeric attributes such as arousal or "
    "valence with their scale.\n\n"
    "Design a conversation between you and a person asking about this music, in the tone of an assistant "
    "who hears it.\n\n"
)
_RULES = (
    "Only include questions with definite answers from the JSON or your background knowledge. Do not ask "
    "about the artist, the title, the album or the length of the clip. Do not mention the name of the "
    "artist. Do not refer to the provided information: never use the word \"metadata\", and answer as an "
    "expert who is listening to the audio. If several answers are plausible, give all of them.\n\n"
    "Return a single JSON list of objects of the form "
    "{\"question\": \"<question text>\", \"answer\": \"<answer text>\"} and nothing else."
)
SYSTEM_PROMPTS = {
    "understanding": _INTRO + (
        "Ask factual questions about the musical characteristics and content: style and emotions, audio "
        "characteristics, harmony, instruments and vocals, tempo, genre, the order of events in the clip. "
        "Mix simple questions (\"Is there a saxophone?\", \"What is the approximate tempo in BPM?\") with "
        "complex ones (\"How would you describe the overall mood?\"), as diverse as possible.\n\n"
    ) + _RULES,
    "reasoning": _INTRO + (
        "Only ask questions that need reasoning about several aspects of the music or background knowledge: "
        "the order of events, similar styles, how a producer would create these sounds, how to change the "
        "music in a given way, in which situations people would listen to it, how a music professor would "
        "describe it. Do not ask questions a single field answers (\"What key is the song in?\"). Give "
        "detailed answers that explain musical concepts to a non-musician.\n\n"
    ) + _RULES,
}

# Record fields that never go into the prompt (paths, ids, bookkeeping, tensors, the answers of QA).
NOT_IN_PROMPT = frozenset(("qa", "questions", "backend"))
MAX_LIST_ITEMS = 64


class GeneratorError(RuntimeError):
    """The endpoint could not be reached, refused the request, or replied with no usable pairs."""


@dataclass(frozen=True)
class QaPair:
    question: str
    answer: str


@dataclass(frozen=True)
class GeneratorConfig:
    url: str
    model: str = "gpt-4o-mini"
    family: str = "understanding"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    retries: int = 2
    backoff: float = 1.0  # seconds before the first retry, doubled each time
    temperature: float = 0.7

    def __post_init__(self) -> None:
        check_number("--generator-timeout", self.timeout, above=0)
        check_integer("--generator-retries", self.retries, minimum=0)
        check_number("backoff", self.backoff, minimum=0)
        check_number("temperature", self.temperature, minimum=0)


def chat_url(url: str) -> str:
    """The chat-completions URL of an endpoint given as its base ("http://host:8000", ".../v1") or in full."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def _trim(value: Any) -> Any:
    if isinstance(value, list) and len(value) > MAX_LIST_ITEMS:
        return value[:MAX_LIST_ITEMS] + ["..."]
    return value


def metadata_for_prompt(record: Mapping[str, Any]) -> dict[str, Any]:
    """The values a prompt shows: labels over features, the dataset's metadata, declared scales."""
    merged: dict[str, Any] = {}
    for source in ("features", "labels"):  # labels last, so ground truth wins
        values = record.get(source)
        if isinstance(values, Mapping):
            merged.update({k: _trim(v) for k, v in values.items() if k not in NOT_IN_PROMPT and v is not None})
    metadata = record.get("metadata")
    if isinstance(metadata, Mapping):
        for key, value in metadata.items():
            merged.setdefault(key, _trim(value))
    if isinstance(record.get("scales"), Mapping):
        merged["scales"] = record["scales"]
    return merged


def _json_list(text: str) -> Any:
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start, end = text.find("["), text.rfind("]")
    if start >= 0 and end > start:
        try:
            return json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            pass
    raise GeneratorError(f"reply is not a JSON list of question-answer pairs: {text[:120]!r}")


def parse_pairs(text: str) -> list[QaPair]:
    """QA pairs out of a reply: a JSON list (bare, in a code fence, or inside prose) of
    {"question", "answer"} objects; an object holding such a list under any key is accepted too."""
    value = _json_list(text)
    if isinstance(value, Mapping):
        lists = [v for v in value.values() if isinstance(v, list)]
        value = lists[0] if lists else [value]
    if not isinstance(value, list):
        raise GeneratorError("reply is not a JSON list of question-answer pairs")
    pairs = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get("question"), str) and isinstance(item.get("answer"), str):
            question, answer = item["question"].strip(), item["answer"].strip()
            if question and answer:
                pairs.append(QaPair(question, answer))
    if not pairs:
        raise GeneratorError("reply holds no question-answer pairs")
    return pairs


@dataclass
class QaGenerator:
    config: GeneratorConfig
    requests: int = 0
    retried: int = 0
    failed: int = 0
    pairs_received: int = 0
    pairs_kept: int = 0
    filtered: Counter = field(default_factory=Counter)  # banned phrase -> pairs dropped

    def __post_init__(self) -> None:
        if self.config.family not in SYSTEM_PROMPTS:
            raise ValueError(f"unknown prompt family {self.config.family!r}; choose {', '.join(FAMILIES)}")
        self.url = chat_url(self.config.url)

    @property
    def provenance(self) -> dict[str, str]:
        return {"url": self.url, "model": self.config.model, "family": self.config.family}

    def request_body(self, record: Mapping[str, Any], seed: int) -> dict[str, Any]:
        metadata = json.dumps([metadata_for_prompt(record)], ensure_ascii=False, default=str)
        return {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPTS[self.config.family]},
                {"role": "user", "content": metadata},
            ],
            "temperature": self.config.temperature,
            "seed": seed,
        }

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode()
        pause = self.config.backoff
        for attempt in range(self.config.retries + 1):
            self.requests += 1
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:200].decode("utf-8", "replace")
                error = GeneratorError(f"{self.url}: HTTP {exc.code} {exc.reason}: {detail}")
                if exc.code != 429 and exc.code < 500:
                    raise error from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                error = GeneratorError(f"{self.url}: {getattr(exc, 'reason', exc)}")
            except json.JSONDecodeError as exc:
                raise GeneratorError(f"{self.url}: reply is not JSON ({exc})") from None
            if attempt < self.config.retries:
                self.retried += 1
                time.sleep(pause)
                pause *= 2
        raise error

    def generate(self, record: Mapping[str, Any], seed: int = 0) -> list[QaPair]:
        """The record's QA pairs after LLark's filter; raises GeneratorError."""
        try:
            reply = self._post(self.request_body(record, seed))
            try:
                content = reply["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise GeneratorError(f"{self.url}: reply has no choices[0].message.content") from None
            pairs = parse_pairs(content or "")
        except GeneratorError:
            self.failed += 1
            raise
        self.pairs_received += len(pairs)
        kept = []
        for pair in pairs:
            banned = banned_phrase(pair.question, pair.answer)
            if banned is None:
                kept.append(pair)
            else:
                self.filtered[f"{banned[0]}: {banned[1]}"] += 1
        self.pairs_kept += len(kept)
        return kept

    def describe(self) -> str:
        dropped = sum(self.filtered.values())
        text = (
            f"generator {self.config.model} at {self.url}: {self.requests} requests ({self.retried} retried, "
            f"{self.failed} records failed), {self.pairs_received} pairs, {dropped} dropped by LLark's filter, "
            f"{self.pairs_kept} kept"
        )
        if self.filtered:
            text += " (" + ", ".join(f"{phrase} x{n}" for phrase, n in self.filtered.most_common(5)) + ")"
        return text
