"""ONNX sentence embeddings: meaning, normalisation, dimensions, encodings, bad input."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from runinfra_gateway.backends.embedded import EmbeddedBackend
from runinfra_gateway.errors import GatewayError

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


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    loop: Loop, embedder: EmbeddedBackend
) -> None:
    import asyncio

    texts = [f"request {i} is about {'rivers' if i % 3 else 'taxes'}" for i in range(24)]
    alone = [_vectors(loop.run(embedder.embeddings({"input": t})))[0] for t in texts[:3]]
    batcher = embedder.engine.batcher
    batches_before, requests_before = batcher.batches, batcher.requests

    async def together() -> list[Any]:
        bodies: list[dict[str, Any]] = [{"input": t} for t in texts]
        bodies[5] = {"input": ["fine", "word " * 400]}  # one bad request among them
        return await asyncio.gather(*(embedder.embeddings(b) for b in bodies), return_exceptions=True)

    answers = loop.run(together())
    assert isinstance(answers[5], GatewayError)
    assert answers[5].param == "input"
    assert "input[1]" in answers[5].message
    good = [a for i, a in enumerate(answers) if i != 5]
    assert all(isinstance(a, dict) and len(a["data"]) == 1 for a in good)
    for i in range(3):
        assert np.allclose(_vectors(answers[i])[0], alone[i], atol=1e-4)
    assert answers[7]["usage"]["prompt_tokens"] == loop.run(embedder.embeddings({"input": texts[7]}))["usage"][
        "prompt_tokens"
    ]
    batches = batcher.batches - batches_before
    requests = batcher.requests - requests_before
    assert requests == len(texts) + 1
    assert batches < len(texts) // 2, (batches, requests)


def test_too_many_waiting_requests_is_503(loop: Loop, engines: Any) -> None:
    import asyncio

    small = engines.get("minilm-small-queue", engine="onnx_embeddings", queue_size=2)

    async def flood() -> list[Any]:
        return await asyncio.gather(
            *(small.embeddings({"input": ["a sentence to embed"] * 64}) for _ in range(12)), return_exceptions=True
        )

    answers = loop.run(flood())
    refused = [a for a in answers if isinstance(a, GatewayError)]
    served = [a for a in answers if isinstance(a, dict)]
    assert refused
    assert served
    assert all(e.status == 503 and e.headers["retry-after"] == "1" for e in refused)
    assert len(loop.run(small.embeddings({"input": "afterwards"}))["data"]) == 1
