"""Status-to-error mapping, redirects, and the API key never leaking into errors."""

from __future__ import annotations

import logging
import pickle
import traceback
from email.utils import formatdate

import pytest
from runinfra import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeploymentError,
    InsufficientCreditsError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunInfra,
    RunInfraAPIError,
    RunInfraConnectionError,
    RunInfraError,
    RunInfraRedirectError,
)
from sdk_servers import API_KEY, Exchange, ScriptedServer, error_handler, json_handler, sse_handler

MESSAGES = [{"role": "user", "content": "hi"}]


def _chat(client: RunInfra) -> None:
    client.chat.completions.create(model="m", messages=MESSAGES)


@pytest.mark.parametrize(
    ("status", "error", "cls", "expected_type"),
    [
        (400, {"message": "bad", "type": "invalid_request_error", "code": "unsupported_parameter",
               "param": "dimensions"}, BadRequestError, "invalid_request_error"),
        (401, {"message": "no key", "type": "auth_error"}, AuthenticationError, "auth_error"),
        (403, {"message": "no", "type": "byoc_plan_required"}, PermissionDeniedError, "byoc_plan_required"),
        (403, {"message": "no"}, PermissionDeniedError, "permission_denied"),
        (404, {"message": "gone", "type": "model_not_found"}, ModelNotFoundError, "model_not_found"),
        (404, {"message": "route", "type": "not_found_error"}, NotFoundError, "not_found_error"),
        (409, {"message": "busy", "type": "idempotency_key_in_use"}, ConflictError, "idempotency_key_in_use"),
        (413, {"message": "big", "type": "invalid_request_error", "code": "request_too_large"},
         BadRequestError, "invalid_request_error"),
        (422, {"message": "reused", "type": "idempotency_key_reused"}, ConflictError, "idempotency_key_reused"),
        (422, {"message": "bad", "type": "invalid_request_error"}, BadRequestError, "invalid_request_error"),
        (500, {"message": "boom", "type": "deployment_error"}, DeploymentError, "deployment_error"),
        (504, {"message": "slow"}, DeploymentError, "deployment_error"),
    ],
)  # fmt: skip
def test_status_maps_to_typed_error(
    server: ScriptedServer, client: RunInfra, status: int, error: dict, cls: type, expected_type: str
) -> None:
    server.on("POST", "/v1/chat/completions", error_handler(status, error))
    with pytest.raises(cls) as caught:
        _chat(client)
    raised = caught.value
    assert isinstance(raised, RunInfraAPIError)
    assert raised.status_code == status
    assert raised.type == expected_type
    assert raised.request_id == "req_err"
    assert raised.code == error.get("code")
    assert raised.param == error.get("param")
    assert raised.message == error["message"]
    assert "req_err" in str(raised)


def test_402_carries_credit_fields(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/chat/completions", error_handler(402, {
        "message": "top up", "type": "insufficient_credits", "current_balance_cents": 1.5,
        "required_cents": 3, "topup_url": "https://x/topup"}))  # fmt: skip
    with pytest.raises(InsufficientCreditsError) as caught:
        _chat(client)
    assert (caught.value.current_balance_cents, caught.value.required_cents) == (1.5, 3)
    assert caught.value.topup_url == "https://x/topup"


def test_429_carries_retry_after_seconds(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/chat/completions", error_handler(429, {"message": "slow down", "type": "rate_limit_error"},
                                                             headers={"Retry-After": "120"}))  # fmt: skip
    with pytest.raises(RateLimitError) as caught:
        _chat(client)
    assert caught.value.retry_after_seconds == 120.0
    now = formatdate(usegmt=True)
    server.on("POST", "/v1/chat/completions", error_handler(429, {"message": "slow"}, headers={"Retry-After": now}))
    with pytest.raises(RateLimitError) as caught:
        _chat(client)
    assert caught.value.retry_after_seconds is not None
    assert 0 <= caught.value.retry_after_seconds <= 1


def test_503_carries_retry_after_seconds(server: ScriptedServer, client: RunInfra) -> None:
    busy = error_handler(503, {"message": "busy", "type": "deployment_error"}, headers={"Retry-After": "7"})
    server.on("POST", "/v1/chat/completions", busy)
    with pytest.raises(DeploymentError) as caught:
        _chat(client)
    assert caught.value.retry_after_seconds == 7.0


def test_error_without_json_body(server: ScriptedServer, client: RunInfra) -> None:
    def html(exchange: Exchange) -> None:
        exchange.respond(502, b"<html>bad gateway</html>", content_type="text/html", request_id=None)

    server.on("POST", "/v1/chat/completions", html)
    with pytest.raises(DeploymentError) as caught:
        _chat(client)
    assert caught.value.request_id is None
    assert "bad gateway" in caught.value.message


def test_control_characters_from_the_server_are_made_inert(server: ScriptedServer, client: RunInfra) -> None:
    # A hostile or broken server's error text must not clear the terminal, colour it, forge a log line or
    # reorder what is shown (bidi override) where the error is printed; .body keeps the exact text.
    hostile = "denied\x1b[2J\x1b[31m\nINFO payment accepted\u202edesrever\x07\x9b"
    server.on("POST", "/v1/chat/completions", error_handler(400, {"message": hostile}, request_id="req_\x1b[0m"))
    with pytest.raises(BadRequestError) as caught:
        _chat(client)
    error = caught.value
    expected = "denied\\x1b[2J\\x1b[31m INFO payment accepted\\u202edesrever\\x07\\x9b"
    assert error.message == expected
    assert str(error) == f"{expected} (request_id=req_\\x1b[0m)"
    assert error.body == {"error": {"message": hostile}}

    def plain(exchange: Exchange) -> None:
        exchange.respond(502, b"<html>\r\n<b>bad\x1b]0;owned\x07 gateway</b>\r\n</html>", content_type="text/html",
                         request_id=None)

    server.on("POST", "/v1/chat/completions", plain)
    with pytest.raises(DeploymentError) as plain_error:
        _chat(client)
    assert plain_error.value.message == (
        "the gateway answered HTTP 502: <html>  <b>bad\\x1b]0;owned\\x07 gateway</b>  </html>")


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # Python's JSON decoder recurses once per level


def test_json_nested_too_deep_is_a_typed_error(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/chat/completions",
              lambda exchange: exchange.respond(200, DEEP_JSON, content_type="application/json"))
    with pytest.raises(RunInfraError) as caught:
        _chat(client)
    assert caught.value.type == "invalid_response"

    deep_error = b'{"error": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001
    server.on("POST", "/v1/chat/completions",
              lambda exchange: exchange.respond(400, deep_error, content_type="application/json"))
    with pytest.raises(BadRequestError) as refused:
        _chat(client)
    assert refused.value.status_code == 400


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(server: ScriptedServer, client: RunInfra, status: int) -> None:
    server.on("POST", "/v1/chat/completions", json_handler({}, status, headers={"Location": "https://evil.example/x"}))
    server.on("POST", "/x", json_handler({"hijacked": True}))
    with pytest.raises(RunInfraRedirectError) as caught:
        _chat(client)
    assert caught.value.status_code == status
    assert "evil.example" in caught.value.message
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]


def _assert_no_secret(error: BaseException) -> None:
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    texts = [str(error), repr(error), rendered, repr(getattr(error, "body", None)), repr(error.__dict__)]
    for text in texts:
        assert API_KEY not in text
    assert error.__context__ is None
    assert error.__cause__ is None


def test_echoed_key_is_redacted_from_errors(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/chat/completions", error_handler(401, {
        "message": f"bad key Bearer {API_KEY}", "type": "auth_error", "param": API_KEY,
        "topup_url": API_KEY}))  # fmt: skip
    with pytest.raises(AuthenticationError) as caught:
        _chat(client)
    _assert_no_secret(caught.value)
    assert "[REDACTED]" in caught.value.message
    assert caught.value.param == "[REDACTED]"


def test_echoed_key_in_a_garbage_status_line_is_redacted(server: ScriptedServer, client: RunInfra) -> None:
    def garbage(exchange: Exchange) -> None:
        exchange.send_raw(f"HTTP/1.1 banana {API_KEY}\r\n".encode() * 2)
        exchange.drop()

    server.on("POST", "/v1/chat/completions", garbage)
    with pytest.raises(RunInfraConnectionError) as caught:
        _chat(client)
    _assert_no_secret(caught.value)


def test_echoed_key_in_success_body_is_redacted(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/chat/completions", json_handler({"echo": API_KEY}))
    result = client.chat.completions.create(model="m", messages=MESSAGES)
    assert API_KEY not in repr(result)


def test_key_is_absent_from_client_reprs(server: ScriptedServer, client: RunInfra) -> None:
    for text in (repr(client), str(client), repr(client._core), repr(vars(client))):
        assert API_KEY not in text
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_malformed_key_is_refused_without_echo() -> None:
    with pytest.raises(RunInfraError) as caught:
        RunInfra(api_key="sk bad key\n")
    assert "sk bad key" not in str(caught.value)
    with pytest.raises(RunInfraError):
        RunInfra(api_key="   ")
    with pytest.raises(RunInfraError):
        RunInfra()


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch, server: ScriptedServer) -> None:
    monkeypatch.setenv("RUNINFRA_API_KEY", API_KEY)
    server.on("GET", "/v1/models", json_handler({"object": "list", "data": []}))
    RunInfra(base_url=server.url).models.list()
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_errors_accept_the_0_2_0_constructor_spellings() -> None:
    error = RateLimitError("slow", status=429, error_type="rate_limit_error", retry_after_seconds=1.0)
    assert (error.status, error.status_code, error.type) == (429, 429, "rate_limit_error")
    assert error.retry_after_seconds == 1.0
    local = RunInfraError("bad option", error_type="invalid_request_options")
    assert (local.status, local.status_code, local.type) == (0, None, "invalid_request_options")
    with pytest.raises(TypeError):
        RunInfra(API_KEY)  # type: ignore[misc]  # keyword-only, as in 0.2.0


def test_errors_pickle_with_their_fields() -> None:
    error = RateLimitError("slow", type="rate_limit_error", status_code=429, request_id="r", retry_after_seconds=2.0)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.message, copy.type, copy.status_code, copy.request_id, copy.retry_after_seconds) == (
        "slow", "rate_limit_error", 429, "r", 2.0
    )  # fmt: skip


def test_key_echoed_in_response_headers_is_redacted(
    server: ScriptedServer, client: RunInfra, caplog: pytest.LogCaptureFixture
) -> None:
    # x-request-id and Content-Type are server text like the body: an echoed key must not reach
    # an error's str/repr, a result, a stream, an AudioResponse or a log line through them.
    caplog.set_level(logging.DEBUG, logger="runinfra")
    echo = f"req-{API_KEY}"
    server.on("POST", "/v1/chat/completions", error_handler(401, {"message": "no", "type": "auth_error"},
                                                             request_id=echo))  # fmt: skip
    with pytest.raises(AuthenticationError) as caught:
        _chat(client)
    _assert_no_secret(caught.value)
    assert caught.value.request_id == "req-[REDACTED]"

    server.on("GET", "/v1/models", json_handler({"data": []}, request_id=echo))
    assert client.models.list()["_request_id"] == "req-[REDACTED]"

    server.on("POST", "/v1/audio/speech",
              lambda ex: ex.respond(200, b"RIFF", content_type=f"audio/wav; k={API_KEY}", request_id=echo))
    audio = client.audio.speech.create(model="t", input="x", voice="v")
    assert API_KEY not in repr(audio)

    server.on("POST", "/v1/responses",
              lambda ex: ex.respond(200, b"{}", content_type=f"text/{API_KEY}", request_id=echo))
    with pytest.raises(RunInfraError) as not_a_stream:
        client.responses.create(model="m", input="x", stream=True)
    _assert_no_secret(not_a_stream.value)

    def short(exchange: Exchange) -> None:
        exchange.send_raw(f"HTTP/1.1 200 OK\r\nx-request-id: {echo}\r\nContent-Length: 9\r\n\r\n{{".encode())
        exchange.drop()

    server.on("GET", "/v1/models", short)
    with pytest.raises(RunInfraConnectionError) as cut:
        client.models.list()
    _assert_no_secret(cut.value)
    assert API_KEY not in "\n".join(record.getMessage() for record in caplog.records)


def _escaped(template: str) -> bytes:
    """``template`` with each ``KEY`` the API key written as JSON escapes (it decodes to the key)."""
    return template.replace("KEY", "".join(f"\\u{ord(char):04x}" for char in API_KEY)).encode()


def test_key_echoed_with_json_escapes_is_redacted(server: ScriptedServer, client: RunInfra) -> None:
    # Redacting the raw bytes misses a key the server wrote with JSON escapes; it decodes to the key.
    raw_error = _escaped('{"error": {"message": "bad key KEY", "type": "auth_error", "code": "KEY",'
                         ' "param": "KEY", "extra": ["KEY"]}}')
    server.on("POST", "/v1/chat/completions", lambda ex: ex.respond(401, raw_error, request_id="req_e"))
    with pytest.raises(AuthenticationError) as caught:
        _chat(client)
    _assert_no_secret(caught.value)
    assert caught.value.param == "[REDACTED]"

    raw_ok = _escaped('{"id": "c", "echo": {"KEY": ["KEY"]}}')
    server.on("POST", "/v1/chat/completions", lambda ex: ex.respond(200, raw_ok))
    result = client.chat.completions.create(model="m", messages=MESSAGES)
    assert API_KEY not in repr(result)
    assert result["echo"] == {"[REDACTED]": ["[REDACTED]"]}

    frames = _escaped('data: {"delta": "KEY"}\n\n'
                      'data: {"error": {"message": "KEY", "type": "deployment_error", "param": "KEY"}}\n\n')
    server.on("POST", "/v1/chat/completions", sse_handler(frames))
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert next(stream) == {"delta": "[REDACTED]"}
    with pytest.raises(DeploymentError) as in_stream:
        next(stream)
    _assert_no_secret(in_stream.value)
