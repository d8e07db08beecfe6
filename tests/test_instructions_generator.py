"""QA generation against a local fake OpenAI-compatible server (http.server on 127.0.0.1 in a thread)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core.instructions.build import BuildOptions, InstructionBuilder, build_stream
from mllm.core.instructions.filters import banned_phrase
from mllm.core.instructions.generator import GeneratorConfig, GeneratorError, QaGenerator, chat_url, parse_pairs
from mllm.core.io.errors import StreamSummary

PAIRS = [
    {"question": "What is the tempo of this clip?", "answer": "It moves at about 120 BPM."},
    {"question": "Who is the artist of this song?", "answer": "I cannot say."},  # banned question
    {"question": "What key is it in?", "answer": "Based on the provided metadata, A minor."},  # banned answer
    {"question": "How would you describe the mood?", "answer": "Dark and tense, with a steady pulse."},
]


class FakeServer:
    """Answers POST /v1/chat/completions with the next planned reply: (status, content or body)."""

    def __init__(self):
        self.replies: list[tuple[int, str]] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, content = server.replies.pop(0) if server.replies else (200, json.dumps(PAIRS))
                payload = (
                    json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
                    if status == 200 else content
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


RECORD = {"id": "clip", "audio": "clip.wav", "dataset": "toy", "track": "t", "split": "train",
          "labels": {"genre": "metal", "key": "A minor"}, "features": {"tempo_bpm": 120.0}, "metadata": {"artist": "X"}}


def generator(server, **config) -> QaGenerator:
    return QaGenerator(GeneratorConfig(url=server.url, model="fake-model", backoff=0.0, **config))


def test_pairs_are_generated_and_llarks_banned_phrases_dropped(server, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "secret")
    qa = generator(server, api_key_env="TEST_KEY")
    pairs = qa.generate(RECORD, seed=5)
    assert [p.question for p in pairs] == ["What is the tempo of this clip?", "How would you describe the mood?"]
    assert qa.filtered == {"question: who is the artist": 1, "answer: metadata": 1}
    assert (qa.pairs_received, qa.pairs_kept, qa.requests) == (4, 2, 1)
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
    body = request["body"]
    assert body["model"] == "fake-model" and body["seed"] == 5
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    shown = json.loads(body["messages"][1]["content"])
    assert shown == [{"tempo_bpm": 120.0, "genre": "metal", "key": "A minor", "artist": "X"}]


def test_generated_pairs_become_qa_records_with_provenance(server):
    builder = InstructionBuilder(BuildOptions(tasks=("key", "qa"), generator=generator(server)))
    out = list(build_stream([RECORD], builder, StreamSummary("build-instructions")))
    assert [r["task"] for r in out] == ["key", "qa", "qa"]
    qa = out[1]
    assert qa["messages"] == [{"role": "user", "content": "<audio>\nWhat is the tempo of this clip?"},
                              {"role": "assistant", "content": "It moves at about 120 BPM."}]
    assert qa["answer"] == "It moves at about 120 BPM." and qa["id"] == "clip#qa-0" and out[2]["id"] == "clip#qa-1"
    assert qa["source"]["template"] == "generator/understanding"
    assert qa["source"]["generator"] == {"url": server.url + "/chat/completions", "model": "fake-model", "family": "understanding"}
    assert qa["split"] == "train"


def test_server_errors_are_retried_then_make_an_error_record(server):
    server.replies = [(500, "overloaded"), (503, "still overloaded")]
    qa = generator(server, retries=1)
    with pytest.raises(GeneratorError, match="HTTP 503"):
        qa.generate(RECORD)
    assert (qa.requests, qa.retried, qa.failed) == (2, 1, 1)
    server.replies = [(500, "overloaded")]
    assert len(generator(server, retries=1).generate(RECORD)) == 2  # the retry succeeds

    server.replies = [(500, "down")] * 3
    builder = InstructionBuilder(BuildOptions(tasks=("key", "qa"), generator=generator(server, retries=2)))
    summary = StreamSummary("build-instructions")
    out = list(build_stream([RECORD], builder, summary))
    assert [r["id"] for r in out] == ["clip#key-0", "clip#qa-generated"]
    assert out[1]["error"]["type"] == "GeneratorError" and summary.failed_here == 1


def test_client_errors_are_not_retried(server):
    server.replies = [(401, '{"error": "bad key"}')]
    qa = generator(server, retries=3)
    with pytest.raises(GeneratorError, match="HTTP 401"):
        qa.generate(RECORD)
    assert qa.requests == 1


def test_unreachable_endpoint_is_an_error():
    qa = QaGenerator(GeneratorConfig(url="http://127.0.0.1:9/v1", retries=0, timeout=2))
    with pytest.raises(GeneratorError):
        qa.generate(RECORD)


@pytest.mark.parametrize("content", [
    "```json\n" + json.dumps(PAIRS[:1]) + "\n```",
    "Here are the pairs:\n" + json.dumps(PAIRS[:1]) + "\nEnjoy!",
    json.dumps({"pairs": PAIRS[:1]}),
])
def test_replies_in_code_fences_prose_or_objects_are_read(content):
    assert [p.question for p in parse_pairs(content)] == ["What is the tempo of this clip?"]


@pytest.mark.parametrize("content", ["I cannot help with that.", "[]", json.dumps([{"q": "a"}])])
def test_replies_without_pairs_are_errors(content):
    with pytest.raises(GeneratorError):
        parse_pairs(content)


def test_banned_phrases_are_matched_case_blind_as_substrings():
    assert banned_phrase("What is the DURATION of the clip?", "30 s") == ("question", "duration")
    assert banned_phrase("Tempo?", "As an AI assistant, I do not hear audio.") == ("answer", "as an ai assistant, i do not")
    assert banned_phrase("Which instruments?", "Violin 2 plays the melody.") == ("answer", "violin 2")
    assert banned_phrase("Which instruments?", "A violin plays the melody.") is None


def test_chat_url_forms():
    assert chat_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h/api/v1/chat/completions") == "http://h/api/v1/chat/completions"


def test_cli_generates_through_the_endpoint(server, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps(RECORD) + "\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["build-instructions", str(tmp_path / "in.jsonl"), "--tasks", "qa", "--generator", server.url,
                                 "--generator-model", "fake-model", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["task"] for line in out.read_text().splitlines()] == ["qa", "qa"]
    assert "2 dropped by LLark's filter" in result.output
    server.replies = [(500, "down")] * 3
    result = runner.invoke(app, ["build-instructions", str(tmp_path / "in.jsonl"), "--tasks", "qa", "--generator", server.url,
                                 "--generator-retries", "0", "-o", str(tmp_path / "failed.jsonl")])
    assert result.exit_code == 1 and "GeneratorError" in result.output


runner = CliRunner()
