"""POST /audio/speech: encoded audio with its real Content-Type."""

from __future__ import annotations

from typing import Any

from runinfra_gateway import errors
from runinfra_gateway.billing import Usage
from runinfra_gateway.params import check_fields
from runinfra_gateway.registry import DeploymentRuntime
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.charging import Reply, run_charged
from runinfra_gateway.v1.request import JsonRequest

__all__ = ["speech"]

_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


def _check(body: dict[str, Any], runtime: DeploymentRuntime) -> None:
    text = body.get("input")
    if text is None:
        raise errors.invalid_request("'input' is required.", code="missing_field", param="input")
    if not isinstance(text, str) or not text.strip():
        raise errors.invalid_request("'input' must be a non-empty string.", param="input")
    voice = body.get("voice")
    if voice is None and body.get("ref_audio") is None:
        raise errors.invalid_request("'voice' (or 'ref_audio' with 'ref_text') is required.", code="missing_field",
                                     param="voice")
    if voice is not None:
        if not isinstance(voice, str) or not voice:
            raise errors.invalid_request("'voice' must be a non-empty string.", param="voice")
        if runtime.voices and voice not in runtime.voices:
            raise errors.invalid_request(
                f"Voice {voice[:60]!r} is not offered by {runtime.id!r}; it offers: {', '.join(runtime.voices)}.",
                param="voice",
            )
    response_format = body.get("response_format")
    if response_format is not None and response_format not in _FORMATS:
        raise errors.invalid_request(f"'response_format' must be one of {', '.join(_FORMATS)}.",
                                     param="response_format")


async def speech(state: GatewayState, call: Call, request: JsonRequest) -> None:
    body = request.body
    runtime = request.deployment(state, "audio.speech")
    check_fields(body, runtime.allowed["audio.speech"], runtime.id)
    _check(body, runtime)
    backend_body = {**body, "response_format": body.get("response_format") or "mp3"}

    async def work() -> Reply:
        assert runtime.backend is not None
        audio = await runtime.backend.speech(backend_body)
        usage = Usage(characters=len(body["input"]))
        return Reply(audio.content, audio.content_type.encode("latin-1"), usage)

    await run_charged(state, call, runtime, "audio.speech", body, request.raw, work)
