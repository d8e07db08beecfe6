"""Model arguments (core/model/sources.py): paths that do not exist and hub ids that cannot be had
fail at once with a message that says why; a hub id in the local cache loads offline; weights are
safetensors only, and a pickle-only, truncated or empty weights file is exit 2 naming it.

No hub can be reached here, so "the hub" is HF_ENDPOINT pointed at a local port: a closed one
(connection refused: no network) or a small HTTP server that counts the requests it gets.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoFeatureExtractor  # noqa: F401 - imported once here, not inside a timing
from typer.testing import CliRunner

import encoder_models
from mllm.cli.main import app
from mllm.core.encoders import EncoderError, load_encoder
from mllm.core.infer.audio_text_models import audio_text_model_type
from mllm.core.io.tensors import encode_tensor
from mllm.core.model import load_llm
from mllm.core.model import sources
from mllm.core.model.sources import ModelSourceError, check_model_folder, looks_like_path, resolve_model
from tiny_llm import build_tiny_llm
from tiny_qwen2_audio import build_tiny_qwen2_audio

runner = CliRunner()
# Seconds: a failure that used to wait through huggingface_hub's retries (1+2+4+8+8 = 23 s of sleep
# alone) must come well under this, even on a loaded 2-core machine.
FAST = 10.0
REVISION = "0123456789abcdef0123456789abcdef01234567"


def invoke(*args, expect):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    return result


def said(result) -> str:
    return " ".join(result.output.split())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def no_hub(tmp_path, monkeypatch) -> Path:
    """No network to the hub (HF_ENDPOINT refuses connections), offline mode not set, an empty
    hub cache under HF_HOME; returns the cache folder."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    sources._probe.cache_clear()  # the answer is kept per endpoint for the process; a port may come again
    return tmp_path / "hf-home" / "hub"


@pytest.fixture()
def counting_hub(no_hub, monkeypatch):
    """HF_ENDPOINT answered by a local HTTP server; the list holds the paths it was asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's name
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield asked
    server.shutdown()
    server.server_close()


def put_in_cache(cache: Path, repo_id: str, build) -> Path:
    """A model saved in the hub cache layout: models--owner--name/snapshots/<rev>/ and refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = build(repo / "snapshots" / REVISION)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def pickle_only(folder: Path) -> Path:
    """The same model with its weights as pytorch_model.bin (a torch pickle) and no safetensors."""
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    return folder


def truncate(file: Path, keep: float = 0.5) -> Path:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])
    return file


@pytest.fixture()
def clips(tmp_path) -> Path:
    rate = 16000
    t = np.arange(rate) / rate
    soundfile.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    path = tmp_path / "clips.jsonl"
    message = [{"role": "user", "content": "<audio> Describe the music."}]
    path.write_bytes(orjson.dumps({"id": "a", "audio": str(tmp_path / "a.wav"), "messages": message}) + b"\n")
    return path


# ------------------------------------------------------------------ what counts as a path


@pytest.mark.parametrize("spec, path", [
    ("./x", True), ("../x", True), ("~/x", True), ("/abs/model", True), (".", True), ("a/b/c", True),
    ("owner/name/", True), ("SmolLM2.Q4_1.gguf", True), ("dir\\model", True),
    ("openai/whisper-base", False), ("models/whisper-base", False), ("gpt2", False),
])
def test_looks_like_path(spec, path):
    assert looks_like_path(spec) is path


def test_a_missing_path_fails_without_asking_the_hub(counting_hub, tmp_path):
    for spec in ("./missing", str(tmp_path / "missing"), "a/b/c", "trailing/", "x.gguf", "~/no-such-model-here"):
        with pytest.raises(ModelSourceError, match="no such model folder or file") as error:
            resolve_model(spec, option="--encoder")
        assert spec in str(error.value) and "--encoder" in str(error.value)
    assert counting_hub == []
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"")
    with pytest.raises(ModelSourceError, match="a file, not a model folder"):
        resolve_model(str(file))
    with pytest.raises(ModelSourceError, match="not a Hugging Face hub id"):
        resolve_model("two words")


def test_an_existing_folder_wins_over_the_hub_id_form(counting_hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "whisper-base").mkdir(parents=True)
    assert resolve_model("models/whisper-base") == "models/whisper-base"
    assert counting_hub == []


def test_online_a_hub_id_is_passed_on_after_one_probe(counting_hub):
    assert resolve_model("owner/model-a") == "owner/model-a"
    assert resolve_model("owner/model-b") == "owner/model-b"
    assert counting_hub == ["/"]  # the endpoint is asked once per process, not once per model


# ------------------------------------------------------------------ offline: fast, and the cache still works


def test_offline_mode_fails_fast_for_an_uncached_hub_id(no_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelSourceError) as error:
        resolve_model("openai/whisper-base", option="--encoder")
    assert time.perf_counter() - start < FAST
    message = str(error.value)
    assert "hub id" in message and "HF_HUB_OFFLINE=1" in message and "local model folder" in message
    assert str(no_hub) in message  # where it looked


def test_no_network_fails_fast_for_an_uncached_hub_id(no_hub):
    start = time.perf_counter()
    with pytest.raises(ModelSourceError, match="the hub cannot be reached") as error:
        resolve_model("models/whisper-base", option="--encoder")  # owner/name form, no such folder
    assert time.perf_counter() - start < FAST
    assert "no such local folder" in str(error.value)


def test_a_cached_hub_id_loads_offline_through_the_cli(no_hub, clips, tmp_path, monkeypatch):
    snapshot = put_in_cache(no_hub, "tiny-org/whisper", encoder_models.whisper)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("tiny-org/whisper") == str(snapshot)
    result = invoke("encode", clips, "--encoder", "tiny-org/whisper", "--frame-rate", 0, expect=0)
    record = orjson.loads(result.stdout.splitlines()[0])
    assert record["encoder"] == "tiny-org/whisper"  # records name the model as given, not the snapshot
    from_folder = orjson.loads(invoke("encode", clips, "--encoder", snapshot, "--frame-rate", 0, expect=0).stdout)
    assert record["audio_embedding"] == from_folder["audio_embedding"]


def test_a_cached_llm_loads_when_the_hub_cannot_be_reached(no_hub):
    put_in_cache(no_hub, "tiny-org/chat", build_tiny_llm)
    start = time.perf_counter()
    model, tokenizer = load_llm("tiny-org/chat")
    assert time.perf_counter() - start < 30  # no hub retries (they took ~30 s); loading itself is quick
    assert model.config.hidden_size == 32 and tokenizer.chat_template


def test_encode_a_hub_id_offline_exits_2_fast(no_hub, clips, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    result = invoke("encode", clips, "--encoder", "openai/whisper-base", expect=2)
    assert time.perf_counter() - start < FAST
    assert "hub id" in said(result) and "offline mode is on" in said(result)


def test_encode_a_missing_folder_exits_2_fast(no_hub, clips):
    start = time.perf_counter()
    result = invoke("encode", clips, "--encoder", "./missing-model", expect=2)
    assert time.perf_counter() - start < FAST
    assert "./missing-model: no such model folder" in said(result)


def test_caption_an_uncached_hub_id_is_not_called_a_checkpoint(no_hub, clips):
    start = time.perf_counter()
    result = invoke("caption", clips, "--model", "Qwen/Qwen2-Audio-7B-Instruct", expect=2)
    assert time.perf_counter() - start < FAST
    text = said(result)
    assert "not a MusicLLM checkpoint" not in text
    assert "Qwen/Qwen2-Audio-7B-Instruct" in text and "hub id" in text and "cannot be reached" in text
    with pytest.raises(ValueError, match="hub id"):
        audio_text_model_type("Qwen/Qwen2-Audio-7B-Instruct")


def test_caption_a_cached_audio_text_model_offline(no_hub, clips, monkeypatch):
    put_in_cache(no_hub, "tiny-org/qwen2-audio", build_tiny_qwen2_audio)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("caption", clips, "--model", "tiny-org/qwen2-audio", "--max-new-tokens", 3, expect=0)
    assert isinstance(orjson.loads(result.stdout.splitlines()[0])["response"], str)


# ------------------------------------------------------------------ safetensors only


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory) -> Path:
    return encoder_models.whisper(tmp_path_factory.mktemp("whisper") / "whisper")


def copy(folder: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(folder, tmp_path / name))


def test_check_model_folder_names_what_is_wrong(whisper_folder, tmp_path):
    assert check_model_folder(whisper_folder) == whisper_folder
    pickled = pickle_only(copy(whisper_folder, tmp_path, "pickled"))
    with pytest.raises(ModelSourceError, match="pytorch_model.bin .*safetensors only") as error:
        check_model_folder(pickled)
    assert str(pickled) in str(error.value)
    for name, damage in [("truncated", truncate), ("empty", lambda f: truncate(f, 0.0))]:
        broken = copy(whisper_folder, tmp_path, name)
        damage(broken / "model.safetensors")
        with pytest.raises(ModelSourceError, match="not a readable safetensors file") as error:
            check_model_folder(broken)
        assert str(broken / "model.safetensors") in str(error.value)
    sharded = copy(whisper_folder, tmp_path, "sharded")
    (sharded / "model.safetensors").rename(sharded / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelSourceError, match="model-00002-of-00002.safetensors: listed in"):
        check_model_folder(sharded)
    (sharded / "config.json").unlink()
    with pytest.raises(ModelSourceError, match="no config.json"):
        check_model_folder(sharded)


def test_encode_refuses_a_pickle_only_folder(whisper_folder, clips, tmp_path):
    pickled = pickle_only(copy(whisper_folder, tmp_path, "pickled"))
    with pytest.raises(EncoderError, match="safetensors only"):
        load_encoder(str(pickled), device="cpu")
    result = invoke("encode", clips, "--encoder", pickled, expect=2)
    assert str(pickled) in said(result) and "pytorch_model.bin" in said(result)


def test_encode_refuses_a_truncated_safetensors_with_exit_2(whisper_folder, clips, tmp_path):
    broken = copy(whisper_folder, tmp_path, "broken")
    truncate(broken / "model.safetensors")
    result = invoke("encode", clips, "--encoder", broken, expect=2)
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert str(broken / "model.safetensors") in said(result) and "truncated" in said(result)


def test_llm_refuses_pickle_and_truncated_weights(tmp_path):
    folder = build_tiny_llm(tmp_path / "llm")
    truncate(copy(folder, tmp_path, "broken") / "model.safetensors", 0.1)
    with pytest.raises(ValueError, match="broken/model.safetensors: not a readable safetensors file"):
        load_llm(tmp_path / "broken")
    with pytest.raises(ValueError, match="safetensors only"):
        load_llm(pickle_only(folder))


@pytest.fixture()
def sft_records(tmp_path) -> Path:
    """Two instruction records with DSP-like embeddings, enough for sft to reach the LLM."""
    rng = np.random.default_rng(0)
    path = tmp_path / "instructions.jsonl"
    lines = []
    for index in range(2):
        lines.append(orjson.dumps({
            "id": f"r{index}", "split": "train", "encoder": "dsp", "frame_rate": 2.0, "layer": None,
            "audio_embedding": encode_tensor(rng.standard_normal((4, 8)).astype(np.float32)),
            "messages": [{"role": "user", "content": "<audio> What key is this music in?"},
                         {"role": "assistant", "content": "A minor"}],
        }))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_sft_llm_missing_or_pickled_exits_2(no_hub, sft_records, tmp_path):
    start = time.perf_counter()
    result = invoke("sft", sft_records, "--llm", "./missing-llm", "-o", tmp_path / "ckpt", "--steps", 1, expect=2)
    assert time.perf_counter() - start < FAST
    assert "./missing-llm: no such model folder" in said(result)
    pickled = pickle_only(build_tiny_llm(tmp_path / "llm"))
    result = invoke("sft", sft_records, "--llm", pickled, "-o", tmp_path / "ckpt", "--steps", 1, expect=2)
    assert "safetensors only" in said(result) and not (tmp_path / "ckpt").exists()


@pytest.fixture(scope="module")
def qwen2_audio_folder(tmp_path_factory) -> Path:
    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("qwen2audio") / "qwen2-audio")


def test_caption_refuses_pickle_and_truncated_weights(qwen2_audio_folder, clips, tmp_path):
    pickled = pickle_only(copy(qwen2_audio_folder, tmp_path, "pickled"))
    result = invoke("caption", clips, "--model", pickled, expect=2)
    assert "pytorch_model.bin" in said(result) and "safetensors only" in said(result)
    broken = copy(qwen2_audio_folder, tmp_path, "broken")
    truncate(broken / "model.safetensors")
    result = invoke("caption", clips, "--model", broken, expect=2)
    assert isinstance(result.exception, SystemExit)
    assert str(broken / "model.safetensors") in said(result)


def test_bertscore_refuses_a_pickle_only_model(tmp_path):
    pytest.importorskip("bert_score", reason="the bertscore extra is not installed")
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "calm", "piano"]))
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    BertModel(BertConfig(vocab_size=7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    pickle_only(folder)
    source = tmp_path / "captions.jsonl"
    source.write_bytes(orjson.dumps({"id": "a", "response": "calm piano", "reference": "calm piano"}) + b"\n")
    result = invoke("eval-caption", source, "--metrics", "bleu", "--bertscore-model", folder, expect=2)
    assert str(folder) in said(result) and "safetensors only" in said(result)


def test_embedding_model_from_the_cache_and_never_pickled(no_hub, tmp_path):
    pytest.importorskip("sentence_transformers", reason="needs the embedding extra")
    from mllm.core.parse.label_embedding import EmbeddingMatcher, EmbeddingUnavailable, default_model_path

    try:
        default = default_model_path()
    except EmbeddingUnavailable as exc:
        pytest.skip(str(exc))

    def linked(folder: Path) -> Path:  # the packaged model, its files linked, its weights copied
        folder.mkdir(parents=True)
        for item in default.iterdir():
            if item.name == "model.safetensors":
                shutil.copyfile(item, folder / item.name)
            else:
                (folder / item.name).symlink_to(item)
        return folder

    put_in_cache(no_hub, "sentence-transformers/all-MiniLM-L6-v2", linked)
    matcher = EmbeddingMatcher("sentence-transformers/all-MiniLM-L6-v2")  # no network: from the cache
    assert matcher.embed(["jazz"]).shape == (1, 384)
    with pytest.raises(EmbeddingUnavailable, match="not in the local cache"):
        EmbeddingMatcher("sentence-transformers/not-cached")
    pickled = pickle_only(linked(tmp_path / "pickled"))
    data = Path(__file__).parent / "data" / "cmi_bench" / "testmodel_GTZAN.jsonl"
    result = invoke("eval-mir", data, "--match", "embedding", "--embedding-model", pickled, expect=2)
    assert str(pickled) in said(result) and "safetensors only" in said(result)
