"""`eval-mir --match embedding`: LLark's nearest-label matching with a local sentence-embedding model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

pytest.importorskip("sentence_transformers", reason="needs the embedding extra: pip install 'mllm[embedding]'")

from mllm.cli.main import app  # noqa: E402
from mllm.core.parse.label_embedding import EmbeddingMatcher, EmbeddingUnavailable, default_model_path  # noqa: E402
from mllm.core.parse.labels import LabelSet  # noqa: E402

DATA = Path(__file__).parent / "data" / "cmi_bench"
GTZAN = LabelSet.of(["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"])


@pytest.fixture(scope="module")
def matcher():
    try:
        default_model_path()
    except EmbeddingUnavailable as exc:
        pytest.skip(str(exc))
    return EmbeddingMatcher()


def test_descriptions_without_the_label_word_find_their_genre(matcher):
    assert matcher.nearest("Sounds like a smoky jazz club with a saxophone.", GTZAN).value == "jazz"
    assert matcher.nearest("An orchestra playing a symphony", GTZAN).value == "classical"
    assert matcher.nearest("", GTZAN) is None


def test_similarities_are_cosines(matcher):
    scores = matcher.similarities("rock music", GTZAN)
    assert scores.shape == (10,) and np.all(scores <= 1 + 1e-6) and np.all(scores >= -1 - 1e-6)
    label_vectors = matcher.embed(list(GTZAN.labels))
    assert np.allclose(np.linalg.norm(label_vectors, axis=1), 1, atol=1e-5)
    assert int(np.argmax(scores)) == GTZAN.labels.index("rock")


def test_eval_mir_match_embedding_gives_every_answer_a_label(matcher):
    runner = CliRunner()
    path = str(DATA / "testmodel_GTZAN.jsonl")
    text = runner.invoke(app, ["eval-mir", path, "--per-item", "--bootstrap", "0"])
    embedded = runner.invoke(app, ["eval-mir", path, "--per-item", "--bootstrap", "0", "--match", "embedding"])
    assert text.exit_code == 0 and embedded.exit_code == 0, embedded.output
    by_text = [orjson.loads(line) for line in text.stdout.splitlines()]
    by_embedding = [orjson.loads(line) for line in embedded.stdout.splitlines()]
    assert sum(r["eval"]["parse_ok"] for r in by_text) == 3  # two answers name none or several labels
    assert all(r["eval"]["parse_ok"] for r in by_embedding)  # LLark: every answer gets the nearest label
    labels_seen = LabelSet.of(["blues", "jazz", "pop", "rock"])  # the set inferred from the references
    for record in by_embedding:
        expected = matcher.nearest(record["response"], labels_seen).value
        assert record["prediction"]["genre"] == expected
    # answers that name exactly one label keep it
    assert [r["prediction"]["genre"] for r in by_embedding if r["response"] in ("jazz", "Pop.")] == ["jazz", "pop"]


def test_missing_model_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        app, ["eval-mir", str(DATA / "testmodel_GTZAN.jsonl"), "--match", "embedding", "--embedding-model", str(tmp_path / "nope")]
    )
    assert result.exit_code == 2 and "does not exist" in " ".join(result.output.split())
