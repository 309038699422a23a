"""Multipart and raw-audio input paths refuse malformed input with typed 400s, and charge nothing."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from .conftest import Stack


def _post(stack: Stack, path: str, body: bytes, content_type: str | None, key: str) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(stack.gateway.base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {key}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    try:
        connection.request("POST", "/v1" + path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _form(fields: dict[str, str], file: bytes | None, boundary: str = "b0undary") -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    if file is not None:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                "Content-Type: audio/wav\r\n\r\n").encode() + file + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = "multipart/form-data; boundary=b0undary"


def _plus_field(form: bytes, name: str, value: str) -> bytes:
    """``form`` with one more field before its closing boundary (a name it already has, say)."""
    extra = f'--b0undary\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return form.replace(b"--b0undary--", extra + b"--b0undary--")


@pytest.mark.parametrize(
    ("body", "content_type", "code", "param"),
    [
        (_form({"model": "sphinx"}, b"RIFF...."), "application/json", "unsupported_media_type", None),
        (_form({"model": "sphinx"}, b"RIFF...."), "multipart/form-data", "invalid_value", None),
        (b"--b0undary\r\nthis is not a part", MULTIPART, "invalid_value", None),
        (_form({"model": "sphinx"}, None), MULTIPART, "missing_field", "file"),
        (_form({"model": "sphinx"}, b""), MULTIPART, "missing_field", "file"),
        (_form({"model": "sphinx", "response_format": "srt"}, b"RIFF...."), MULTIPART, "invalid_value",
         "response_format"),
        (_form({"model": "sphinx", "surprise": "1"}, b"RIFF...."), MULTIPART,
         "unsupported_parameter", "surprise"),
        (_form({"model": "sphinx"}, b"RIFF....").replace(b"sphinx", b"sph\xffinx"), MULTIPART, "invalid_value",
         "model"),
        (_plus_field(_form({"model": "sphinx"}, b"RIFF...."), "model", "sphinx"), MULTIPART, "invalid_value",
         "model"),
        (_form({"model": "sphinx", "prompt": "word " * 20_000}, b"RIFF...."), MULTIPART, "invalid_value", "prompt"),
        # An array field repeats by design; this deployment does not take it, and says so by name.
        (_plus_field(_form({"model": "sphinx", "timestamp_granularities[]": "word"}, b"RIFF...."),
                     "timestamp_granularities[]", "segment"),
         MULTIPART, "unsupported_parameter", "timestamp_granularities[]"),
    ],
)
def test_bad_transcription_uploads(stack: Stack, body: bytes, content_type: str, code: str,
                                   param: str | None) -> None:
    workspace_id, key = stack.new_key(credits_cents=10)
    status, payload = _post(stack, "/audio/transcriptions", body, content_type, key)
    assert status == 400, payload
    assert payload["error"]["code"] == code
    if param is not None:
        assert payload["error"]["param"] == param
    assert stack.admin("GET", f"/workspaces/{workspace_id}/credits")["balance_cents"] == 10


def test_a_form_of_a_hundred_thousand_parts_is_refused_at_the_limit(stack: Stack) -> None:
    # 6 MB of empty fields: refused at the 65th part, before the parser holds the event loop for them all.
    workspace_id, key = stack.new_key(credits_cents=10)
    fields = b"".join(b'--b0undary\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n\r\n' % i
                      for i in range(100_000))
    status, payload = _post(stack, "/audio/transcriptions", fields + _form({"model": "sphinx"}, b"RIFF...."),
                            MULTIPART, key)
    assert status == 400, payload
    assert payload["error"]["message"] == "The multipart body has more than 64 parts."
    assert stack.admin("GET", f"/workspaces/{workspace_id}/credits")["balance_cents"] == 10


def test_unknown_model_in_a_form_is_404(stack: Stack) -> None:
    _, key = stack.new_key(credits_cents=10)
    status, payload = _post(stack, "/audio/transcriptions", _form({"model": "nope"}, b"RIFF"), MULTIPART, key)
    assert status == 404
    assert payload["error"]["type"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"RIFF....WAVE", "application/json", "unsupported_media_type"),
        (b"RIFF....WAVE", None, "unsupported_media_type"),
        (b"", "audio/wav", "missing_field"),
        (b"definitely not audio", "audio/wav", None),
    ],
)
def test_bad_voice_pipeline_bodies(stack: Stack, body: bytes, content_type: str | None, code: str | None) -> None:
    status, payload = _post(stack, "/voice/pipeline", body, content_type, stack.pipeline_key)
    assert status == 400, payload
    assert payload["error"]["type"] == "invalid_request_error"
    if code is not None:
        assert payload["error"]["code"] == code


def test_the_pipeline_route_needs_a_pipeline(stack: Stack) -> None:
    status, payload = _post(stack, "/pipeline", b"RIFF", "audio/wav", stack.key)
    assert status == 404
    assert payload["error"]["type"] == "not_found_error"
