"""The enclave transforms, run directly (the sandboxed runs are in test_demo.py).

MiniLM-L6 in numpy is checked against the similarities sentence-transformers publishes for
all-MiniLM-L6-v2 (its README's quick-start: 0.6660, 0.1046, 0.1411), for determinism, and
for semantic sanity. The entity-resolution matcher is trained on generated records.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from enclave_data import people_jsonl

from agents.enclave.transforms import TRANSFORMS, embeddings, entity_resolution, get
from agents.enclave.transforms.minilm import DIMENSION, Encoder, erf

PUBLISHED = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}
SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


def test_minilm_matches_published_similarities(encoder: Encoder) -> None:
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (3, DIMENSION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    for (i, j), published in PUBLISHED.items():
        assert similarity[i, j] == pytest.approx(published, abs=6e-4)


def test_minilm_is_deterministic_and_batch_independent(encoder: Encoder) -> None:
    once = encoder.encode(SENTENCES)
    again = encoder.encode(SENTENCES)
    assert once.tobytes() == again.tobytes()
    alone = encoder.encode(SENTENCES[2:])
    # Padding to a longer batch must not change a sentence's embedding beyond float noise.
    assert np.allclose(alone[0], once[2], atol=1e-5)


def test_minilm_semantic_sanity(encoder: Encoder) -> None:
    anchor, paraphrase, unrelated = encoder.encode(
        [
            "A man is playing a guitar.",
            "Someone is strumming a guitar.",
            "The stock market fell sharply on Monday.",
        ]
    )
    assert anchor @ paraphrase > 0.6 > anchor @ unrelated + 0.4


def test_erf_approximation() -> None:
    xs = np.linspace(-4, 4, 81)
    exact = np.array([math.erf(x) for x in xs])
    assert np.max(np.abs(erf(xs) - exact)) < 2e-7


def test_embeddings_transform_writes_matrix_and_ids(tmp_path: Path) -> None:
    data = "\n".join(json.dumps({"id": f"s{i}", "text": t}) for i, t in enumerate(SENTENCES))
    embeddings.run({"ds": data.encode()}, {"batch_size": 2}, tmp_path)
    matrix = np.load(io.BytesIO((tmp_path / "embeddings.npy").read_bytes()))
    assert matrix.shape == (3, DIMENSION)
    assert json.loads((tmp_path / "ids.json").read_text()) == ["s0", "s1", "s2"]


def test_embeddings_rejects_malformed_lines() -> None:
    with pytest.raises(ValueError, match="line 2"):
        embeddings.parse_texts(b'"ok"\n{"no": "text"}\n')


def test_entity_resolution_learns_a_good_matcher(tmp_path: Path) -> None:
    entity_resolution.run({"people": people_jsonl()}, {}, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    model = json.loads((tmp_path / "model.json").read_text())
    assert metrics["holdout"]["pairs"] > 20 and metrics["holdout"]["positives"] > 3
    assert metrics["train"]["f1"] > 0.9
    assert metrics["holdout"]["f1"] > 0.85
    assert model["features"] == list(entity_resolution.FEATURES)
    weights = dict(zip(model["features"], model["weights"], strict=True))
    assert weights["email_exact"] > 0 and weights["name_trigram_jaccard"] > 0


def test_entity_resolution_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    entity_resolution.run({"people": people_jsonl()}, {}, first)
    entity_resolution.run({"people": people_jsonl()}, {}, second)
    for name in ("model.json", "metrics.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_entity_resolution_blocking_keeps_pairs_near_linear() -> None:
    records = entity_resolution.parse_records(people_jsonl(entities=80))
    pairs = entity_resolution.candidate_pairs(records)
    assert len(pairs) < len(records) * (len(records) - 1) / 2 / 3


def test_registry_names_and_unknown_transform() -> None:
    assert set(TRANSFORMS) == {"embeddings", "entity-resolution"}
    assert all(path.exists() for spec in TRANSFORMS.values() for path in spec.files())
    with pytest.raises(KeyError, match="unknown transform 'ocr'"):
        get("ocr")
