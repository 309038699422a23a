"""ONNX sentence embeddings: meaning, normalisation, dimensions, encodings, bad input."""

from __future__ import annotations

import base64

import numpy as np
from runinfra_gateway.backends.embedded import EmbeddedBackend

from .conftest import Loop
from .helpers import expect_error


def _vectors(answer: dict[str, object]) -> np.ndarray:
    data = answer["data"]
    assert isinstance(data, list)
    assert [item["index"] for item in data] == list(range(len(data)))
    return np.array([item["embedding"] for item in data], dtype=np.float64)


def test_a_paraphrase_ranks_above_an_unrelated_sentence(loop: Loop, embedder: EmbeddedBackend) -> None:
    texts = [
        "The cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Interest rates rose sharply this quarter.",
    ]
    answer = loop.run(embedder.embeddings({"input": texts}))
    vectors = _vectors(answer)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert answer["object"] == "list"
    usage = answer["usage"]
    assert isinstance(usage, dict)
    assert usage["prompt_tokens"] == usage["total_tokens"] > 10


def test_batches_give_the_same_vectors_as_single_inputs(loop: Loop, embedder: EmbeddedBackend) -> None:
    texts = [f"sentence number {i} is about {'cats' if i % 2 else 'stocks'}" for i in range(70)]
    batched = _vectors(loop.run(embedder.embeddings({"input": texts})))
    single = _vectors(loop.run(embedder.embeddings({"input": texts[37]})))
    assert batched.shape == (70, 384)
    assert np.allclose(batched[37], single[0], atol=1e-4)


def test_dimensions_truncate_and_renormalise(loop: Loop, embedder: EmbeddedBackend) -> None:
    full = _vectors(loop.run(embedder.embeddings({"input": "hello world"})))[0]
    short = _vectors(loop.run(embedder.embeddings({"input": "hello world", "dimensions": 64})))[0]
    assert short.shape == (64,)
    assert abs(np.linalg.norm(short) - 1.0) < 1e-4
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-4)
    for bad in (385, 0, -1, "64", 1.5, True):
        error = expect_error(loop.run, embedder.embeddings({"input": "x", "dimensions": bad}))
        assert (error.status, error.code, error.param) == (400, "invalid_value", "dimensions")


def test_base64_is_little_endian_float32_of_the_same_vector(loop: Loop, embedder: EmbeddedBackend) -> None:
    floats = _vectors(loop.run(embedder.embeddings({"input": "hello world"})))[0]
    answer = loop.run(embedder.embeddings({"input": "hello world", "encoding_format": "base64"}))
    encoded = answer["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert decoded.shape == (384,)
    assert np.allclose(decoded, floats, atol=1e-6)
    error = expect_error(loop.run, embedder.embeddings({"input": "x", "encoding_format": "int8"}))
    assert error.param == "encoding_format"


def test_bad_inputs_are_400_naming_input(loop: Loop, embedder: EmbeddedBackend) -> None:
    for bad in (None, "", "   ", [], ["ok", ""], [[1, 2, 3]], [1, 2], {"text": "x"}, ["x"] * 2049, "word " * 400):
        error = expect_error(loop.run, embedder.embeddings({"input": bad}))
        assert (error.status, error.param) == (400, "input"), bad if not isinstance(bad, list) else len(bad)
    # The engine still answers after the refusals.
    assert _vectors(loop.run(embedder.embeddings({"input": "still here"}))).shape == (1, 384)
