"""The retry policy as a value, and retries over a real socket: what is replayed, what never is."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import pytest
from runinfra import (
    AuthenticationError,
    ConflictError,
    DeploymentError,
    InsufficientCreditsError,
    RunInfra,
    RunInfraConnectionError,
)
from runinfra._retry import Retry, parse_retry_after
from sdk_servers import API_KEY, Exchange, ScriptedServer, error_handler, json_handler

MESSAGES = [{"role": "user", "content": "hi"}]
BUSY = error_handler(503, {"message": "busy", "type": "deployment_error"})
OK_CHAT = json_handler({"id": "c", "choices": []})


def test_retry_value_object() -> None:
    retry = Retry(total=2, backoff_base_seconds=0.25)
    assert retry.is_retry(True, 503)
    assert not retry.is_retry(False, 503)
    for status in (408, 409, 429, 500, 502, 503, 504):
        assert retry.is_retry(True, status)
    for status in (400, 401, 402, 403, 404, 422, 501):
        assert not retry.is_retry(True, status)
    assert not retry.is_retry(True, 409, "idempotency_replay_unavailable")
    assert retry.get_backoff_time() == 0.25
    following = retry.increment()
    assert following is not retry
    assert retry.retries_done == 0
    assert following.get_backoff_time() == 0.5
    assert following.increment().exhausted
    assert not following.increment().is_retry(True, 503)
    assert Retry(100, 1.0, 50).get_backoff_time() == 8.0
    assert Retry(2, 0.0).get_backoff_time() == 0.0


def test_parse_retry_after() -> None:
    now = 1_000_000_000.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("60") == 60.0
    assert parse_retry_after("61") is None  # unreasonable: fall back to backoff
    assert parse_retry_after("-1") is None
    assert parse_retry_after("1.5") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now=now) == 10.0
    assert parse_retry_after(formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert parse_retry_after(formatdate(now + 600, usegmt=True), now=now) is None
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST", now=now) is None
    assert parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT", now=now) is None


def _client(server: ScriptedServer, **kw: object) -> RunInfra:
    options = {"max_retries": 2, "retry_base_seconds": 0.0, "timeout_seconds": 5.0}
    options.update(kw)
    return RunInfra(api_key=API_KEY, base_url=server.url, **options)  # type: ignore[arg-type]


def _create_keyed(client: RunInfra, operation: str, key: str) -> Any:
    """A chat completion or a response (``operation``) sent with an idempotency key."""
    options = {"idempotency_key": key}
    if operation == "chat":
        return client.chat.completions.create(model="m", messages=MESSAGES, request_options=options)
    return client.responses.create(model="m", input="hi", request_options=options)


def test_get_is_retried_with_the_same_client_request_id(server: ScriptedServer) -> None:
    server.on("GET", "/v1/models", BUSY, BUSY, json_handler({"object": "list", "data": []}))
    assert _client(server).models.list()["data"] == []
    assert len(server.requests) == 3
    assert len({r.headers["x-client-request-id"] for r in server.requests}) == 1


def test_retries_are_bounded(server: ScriptedServer) -> None:
    server.on("GET", "/v1/models", BUSY)
    with pytest.raises(DeploymentError):
        _client(server, max_retries=1).models.list()
    assert len(server.requests) == 2


def test_post_without_idempotency_key_is_sent_once(server: ScriptedServer) -> None:
    server.on("POST", "/v1/chat/completions", BUSY, OK_CHAT)
    with pytest.raises(DeploymentError):
        _client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert len(server.requests) == 1


@pytest.mark.parametrize("operation", ["chat", "responses"])
def test_replay_safe_post_with_idempotency_key_is_retried(server: ScriptedServer, operation: str) -> None:
    path = "/v1/chat/completions" if operation == "chat" else "/v1/responses"
    server.on("POST", path, BUSY, json_handler({"id": "x"}, headers={"X-RunInfra-Idempotent-Replay": "true"}))
    result = _create_keyed(_client(server), operation, "key-1")
    assert result["_idempotent_replay"] is True
    assert [r.headers["idempotency-key"] for r in server.requests] == ["key-1", "key-1"]


def test_non_replay_safe_operations_are_sent_once_even_with_a_key(server: ScriptedServer) -> None:
    for path in ("/v1/embeddings", "/v1/images/generations", "/v1/audio/speech", "/v1/audio/transcriptions"):
        server.on("POST", path, BUSY)
    server.on("POST", "/v1/chat/completions", BUSY)
    server.on("POST", "/v1/responses", BUSY)
    server.on("POST", "/v1/pipe_1/pipeline", BUSY)
    client = _client(server)
    piped = _client(server, pipeline_id="pipe_1")
    options = {"idempotency_key": "k"}
    calls = [
        lambda: client.embeddings.create(model="e", input="x", request_options=options),
        lambda: client.images.generate(model="i", prompt="x", request_options=options),
        lambda: client.audio.speech.create(model="t", input="x", voice="v", request_options=options),
        lambda: client.audio.transcriptions.create(model="w", file=b"x", request_options=options),
        lambda: client.chat.completions.create(model="m", messages=MESSAGES, stream=True, request_options=options),
        lambda: client.responses.create(model="m", input="x", stream=True, request_options=options),
        lambda: piped.voice.pipeline.create(audio=b"RIFF", request_options=options),
    ]
    for call in calls:
        with pytest.raises(DeploymentError):
            call()
    assert len(server.requests) == len(calls)


@pytest.mark.parametrize(
    ("status", "error", "cls"),
    [
        (401, {"type": "auth_error", "message": "x"}, AuthenticationError),
        (402, {"type": "insufficient_credits", "message": "x"}, InsufficientCreditsError),
        (409, {"type": "idempotency_replay_unavailable", "message": "x"}, ConflictError),
    ],
)
def test_never_retried(server: ScriptedServer, status: int, error: dict, cls: type) -> None:
    server.on("POST", "/v1/responses", error_handler(status, error), OK_CHAT)
    with pytest.raises(cls):
        _client(server).responses.create(model="m", input="x", request_options={"idempotency_key": "k"})
    assert len(server.requests) == 1


def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    limited = error_handler(429, {"type": "rate_limit_error", "message": "x"}, headers={"Retry-After": "1"})
    server.on("GET", "/v1/models", limited, json_handler({"data": []}))
    started = time.monotonic()
    _client(server, retry_base_seconds=0.0).models.list()
    assert 0.9 <= time.monotonic() - started < 3


def test_unreasonable_retry_after_falls_back_to_backoff(server: ScriptedServer) -> None:
    limited = error_handler(429, {"type": "rate_limit_error", "message": "x"}, headers={"Retry-After": "3600"})
    far = formatdate(time.time() + 3600, usegmt=True)
    date_limited = error_handler(429, {"message": "x"}, headers={"Retry-After": far})
    server.on("GET", "/v1/models", limited, date_limited, json_handler({"data": []}))
    started = time.monotonic()
    _client(server, retry_base_seconds=0.01).models.list()
    assert time.monotonic() - started < 1
    assert len(server.requests) == 3


def test_transport_failure_retried_for_get_not_for_plain_post(server: ScriptedServer) -> None:
    def drop(exchange: Exchange) -> None:
        exchange.drop()

    server.on("GET", "/v1/models", drop, json_handler({"data": []}))
    assert _client(server).models.list()["data"] == []
    server.on("POST", "/v1/embeddings", drop, json_handler({"data": []}))
    with pytest.raises(RunInfraConnectionError):
        _client(server).embeddings.create(model="e", input="x")
    assert [r.path for r in server.requests].count("/v1/embeddings") == 1


def test_per_request_max_retries_zero(server: ScriptedServer) -> None:
    server.on("GET", "/v1/models", BUSY, json_handler({"data": []}))
    with pytest.raises(DeploymentError):
        _client(server).models.list(request_options={"maxRetries": 0})
    assert len(server.requests) == 1


@pytest.mark.parametrize("operation", ["chat", "responses"])
def test_replay_safe_post_with_idempotency_key_is_retried_after_a_dropped_connection(
    server: ScriptedServer, operation: str
) -> None:
    def drop(exchange: Exchange) -> None:
        exchange.drop()

    path = "/v1/chat/completions" if operation == "chat" else "/v1/responses"
    server.on("POST", path, drop, json_handler({"id": "x"}))
    result = _create_keyed(_client(server), operation, "key-2")
    assert result["id"] == "x"
    assert [r.headers["idempotency-key"] for r in server.requests] == ["key-2", "key-2"]
    assert server.requests[0].body == server.requests[1].body


def test_key_in_use_is_retried_and_key_reused_is_not(server: ScriptedServer) -> None:
    in_use = error_handler(409, {"type": "idempotency_key_in_use", "message": "in flight"})
    server.on("POST", "/v1/responses", in_use, json_handler({"id": "r"}))
    client = _client(server)
    assert client.responses.create(model="m", input="x", request_options={"idempotency_key": "k"})["id"] == "r"
    assert len(server.requests) == 2
    reused = error_handler(422, {"type": "idempotency_key_reused", "message": "other body"})
    server.on("POST", "/v1/responses", reused, json_handler({"id": "r"}))
    with pytest.raises(ConflictError) as caught:
        client.responses.create(model="m", input="y", request_options={"idempotency_key": "k"})
    assert caught.value.type == "idempotency_key_reused"
    assert len(server.requests) == 3
