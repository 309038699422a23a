"""Everything refused before the network: fields, options, aliases, headers, keys, extra_body."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict

import pytest
from runinfra import RunInfra, RunInfraError
from sdk_servers import API_KEY, ScriptedServer

MESSAGES = [{"role": "user", "content": "hi"}]


def _refused(server: ScriptedServer, call: Callable[[], Any], param: Any = ...) -> RunInfraError:
    with pytest.raises(RunInfraError) as caught:
        call()
    assert caught.value.type == "invalid_request_options"
    if param is not ...:
        assert caught.value.param == param
    assert server.requests == []
    assert server.connections == 0
    return caught.value


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model": "", "messages": MESSAGES}, "model"),
        ({"model": "  ", "messages": MESSAGES}, "model"),
        ({"model": 3, "messages": MESSAGES}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages"),
        ({"model": "m", "messages": [{"role": " "}]}, "messages"),
        ({"model": "m", "messages": MESSAGES, "temperature": math.nan}, "temperature"),
        ({"model": "m", "messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": True}, "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "stream": "yes"}, "stream"),
        ({"model": "m", "messages": MESSAGES, "stop": []}, "stop"),
        ({"model": "m", "messages": MESSAGES, "metadata": {"a": 1}}, "metadata"),
        ({"model": "m", "messages": MESSAGES, "stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "m", "messages": MESSAGES, "extra_body": {"model": "other"}}, "model"),
        ({"model": "m", "messages": MESSAGES, "extra_body": {"messages": []}}, "messages"),
        ({"model": "m", "messages": MESSAGES, "extra_body": "x"}, "extra_body"),
        ({"model": "m", "messages": MESSAGES, "extra_body": {"x": math.inf}}, None),
        ({"model": "m", "messages": [{"role": "user", "content": float("nan")}]}, None),
        ({"model": "m", "messages": [{"role": "user", "content": b"bytes"}]}, None),
    ],
)
def test_chat_fields(server: ScriptedServer, client: RunInfra, kwargs: Dict[str, Any], param: Any) -> None:
    _refused(server, lambda: client.chat.completions.create(**kwargs), param)


def test_other_operation_fields(server: ScriptedServer, client: RunInfra) -> None:
    cases = [
        (lambda: client.responses.create(model="m", input=""), "input"),
        (lambda: client.responses.create(model="m", input=[]), "input"),
        (lambda: client.responses.create(model="m", input=["text"]), "input"),  # type: ignore[list-item]
        (lambda: client.responses.create(model="m", input="x", extra_body={"input": "y"}), "input"),
        (lambda: client.embeddings.create(model="e", input=""), "input"),
        (lambda: client.embeddings.create(model="e", input=[]), "input"),
        (lambda: client.embeddings.create(model="e", input=["a", ""]), "input"),
        (lambda: client.embeddings.create(model="e", input="a", encoding_format="base64"), "encoding_format"),  # type: ignore[arg-type]
        (lambda: client.embeddings.create(model="e", input="a", dimensions=0), "dimensions"),
        (lambda: client.images.generate(model="i", prompt=""), "prompt"),
        (lambda: client.images.generate(model="i", prompt="x", n=0), "n"),
        (lambda: client.images.generate(model="i", prompt="x", response_format="png"), "response_format"),  # type: ignore[arg-type]
        (lambda: client.audio.speech.create(model="t", input="", voice="v"), "input"),
        (lambda: client.audio.speech.create(model="t", input="x"), "voice"),
        (lambda: client.audio.speech.create(model="t", input="x", voice="v", ref_audio="a"), "voice"),
        (lambda: client.audio.speech.create(model="t", input="x", ref_audio="a"), "ref_text"),
        (lambda: client.audio.speech.create(model="t", input="x", voice="v", response_format="ogg"), "response_format"),  # type: ignore[arg-type]
        (lambda: client.audio.speech.create(model="t", input="x", voice="v", speed=0), "speed"),
        (lambda: client.audio.transcriptions.create(model="w", file=b""), "file"),
        (lambda: client.audio.transcriptions.create(model="w", file="x"), "file"),  # type: ignore[arg-type]
        (lambda: client.audio.transcriptions.create(model="w", file=b"x", filename='a"b.wav'), "filename"),
        (lambda: client.audio.transcriptions.create(model="w", file=b"x", filename="a\r\nb.wav"), "filename"),
        (lambda: client.audio.transcriptions.create(model="w", file=b"x", filename="../x"), "filename"),
        (lambda: client.audio.transcriptions.create(model="w", file=b"x", content_type="audio"), "content_type"),
        (lambda: client.audio.transcriptions.create(model="w", file=b"x", content_type="a/b\r\nX: y"), "content_type"),
        (lambda: client.audio.transcriptions.create(model="w", file=b"x", response_format="text"), "response_format"),  # type: ignore[arg-type]
        (lambda: client.models.retrieve(""), "model"),
    ]
    for call, param in cases:
        _refused(server, call, param)


def test_unknown_direct_fields_fail_before_the_network(server: ScriptedServer, client: RunInfra) -> None:
    with pytest.raises(TypeError):
        client.chat.completions.create(model="m", messages=MESSAGES, temprature=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        client.audio.transcriptions.create(model="w", file=b"x", extra_body={"a": 1})  # type: ignore[call-arg]
    assert server.requests == []


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"timeout": 5}, "request_options"),
        ({"idempotencyKey": "a", "idempotency_key": "a"}, "idempotency_key"),
        ({"timeout_seconds": 1, "timeoutSeconds": 1}, "timeout_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": -1}, "timeout_seconds"),
        ({"timeout_seconds": math.inf}, "timeout_seconds"),
        ({"timeout_seconds": "5"}, "timeout_seconds"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"retry_base_seconds": -0.1}, "retry_base_seconds"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "   "}, "idempotency_key"),
        ({"idempotency_key": "x" * 256}, "idempotency_key"),
        ({"idempotency_key": "clé"}, "idempotency_key"),
        ({"idempotency_key": "a\r\nX-Evil: 1"}, "idempotency_key"),
        ({"idempotency_key": f"key-{API_KEY}"}, "idempotency_key"),
        ({"client_request_id": "a\nb"}, "client_request_id"),
        ({"headers": {"Authorization": "Bearer other"}}, "headers"),
        ({"headers": {"content-type": "text/plain"}}, "headers"),
        ({"headers": {"X-Client-Request-Id": "x"}}, "headers"),
        ({"headers": {"Idempotency-Key": "x"}}, "headers"),
        ({"headers": {"X-RunInfra-SDK": "x"}}, "headers"),
        ({"headers": {"X-RunInfra-SDK-Version": "x"}}, "headers"),
        ({"headers": {"Host": "x"}}, "headers"),
        ({"headers": {"Accept-Encoding": "gzip"}}, "headers"),
        ({"headers": {"Cookie": "x"}}, "headers"),
        ({"headers": {"Content-Length": "1"}}, "headers"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, "headers"),
        ({"headers": {"Connection": "close"}}, "headers"),
        ({"headers": {"Proxy-Authorization": "x"}}, "headers"),
        ({"headers": {"Api-Key": "x"}}, "headers"),
        ({"headers": {"X-API-Key": "x"}}, "headers"),
        ({"headers": {"X-Auth-Token": "x"}}, "headers"),
        ({"headers": {"X-Access-Token": "x"}}, "headers"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"X-App": "a\r\nInjected: 1"}}, "headers['X-App']"),
        ({"headers": {"X-App": 1}}, "headers['X-App']"),
        ({"headers": "X-App: 1"}, "headers"),
    ],
)
def test_request_options(server: ScriptedServer, client: RunInfra, options: Dict[str, Any], param: str) -> None:
    _refused(server, lambda: client.responses.create(model="m", input="x", request_options=options), param)  # type: ignore[arg-type]


def test_request_options_must_be_a_mapping(server: ScriptedServer, client: RunInfra) -> None:
    _refused(server, lambda: client.models.list(request_options=[("max_retries", 0)]), "request_options")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": math.nan}, "timeout_seconds"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.0}, "max_retries"),
        ({"retry_base_seconds": -1}, "retry_base_seconds"),
        ({"pipeline_id": "  "}, "pipeline_id"),
        ({"pipeline_id": 5}, "pipeline_id"),
        ({"transport": "http"}, "transport"),
    ],
)
def test_client_options(kwargs: Dict[str, Any], param: str) -> None:
    with pytest.raises(RunInfraError) as caught:
        RunInfra(api_key=API_KEY, **kwargs)
    assert caught.value.type == "invalid_request_options"
    assert caught.value.param == param


def test_camel_case_options_work(server: ScriptedServer, client: RunInfra) -> None:
    from sdk_servers import json_handler

    server.on("POST", "/v1/responses", json_handler({"id": "r"}))
    client.responses.create(
        model="m", input="x", request_options={"clientRequestId": "t-1", "idempotencyKey": "k", "timeoutSeconds": 2}
    )
    assert server.requests[0].headers["x-client-request-id"] == "t-1"
    assert server.requests[0].headers["idempotency-key"] == "k"
