"""POST /audio/transcriptions: a multipart upload, forwarded byte-exact to upstream deployments."""

from __future__ import annotations

import struct
from typing import Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.auth import KeyRecord
from runinfra_gateway.backends.base import TranscriptionInput
from runinfra_gateway.billing import Usage, reported_seconds
from runinfra_gateway.params import check_fields
from runinfra_gateway.pipeline_table import Pipeline
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.charging import Reply, run_charged
from runinfra_gateway.v1.multipart import parse_form
from runinfra_gateway.v1.scope import resolve_deployment

__all__ = ["audio_seconds", "transcriptions"]


def audio_seconds(result: dict[str, Any], upload: bytes) -> float:
    """Audio length: the engine's ``duration`` or ``usage.seconds``, else a WAV header's, else 0."""
    usage = result.get("usage")
    candidates = (result.get("duration"), usage.get("seconds") if isinstance(usage, dict) else None)
    for value in candidates:
        seconds = reported_seconds(value)
        if seconds is not None:
            return seconds
    if upload[:4] == b"RIFF" and upload[8:12] == b"WAVE" and len(upload) >= 44:
        byte_rate = int(struct.unpack_from("<I", upload, 28)[0])
        if byte_rate:
            return max(0, len(upload) - 44) / byte_rate
    return 0.0


async def transcriptions(
    state: GatewayState, call: Call, key: KeyRecord, pipeline: Pipeline | None, raw: bytes
) -> None:
    call.operation = "audio.transcriptions"
    form = parse_form(raw, call.headers.get(b"content-type"))
    runtime = resolve_deployment(state, key, pipeline, form.fields.get("model"), "audio.transcriptions")
    call.deployment_id = runtime.id
    check_fields({**form.fields, "file": ""}, runtime.allowed["audio.transcriptions"], runtime.id)
    if not form.file:
        raise errors.invalid_request("'file' is required and must not be empty.", code="missing_field", param="file")
    response_format = form.fields.get("response_format", "json")
    if response_format not in ("json", "verbose_json"):
        raise errors.invalid_request("'response_format' must be 'json' or 'verbose_json'.", param="response_format")
    upload = TranscriptionInput(
        file=form.file,
        filename=form.filename,
        file_content_type=form.file_content_type,
        fields=form.fields,
        raw_body=raw,
        raw_content_type=(call.headers.get(b"content-type") or b"").decode("latin-1"),
    )
    estimate_body = {"file_size_bytes": len(form.file), "prompt": form.fields.get("prompt", "")}

    async def work() -> Reply:
        assert runtime.backend is not None
        result = await runtime.backend.transcribe(upload)
        if not isinstance(result.get("text"), str):
            raise errors.deployment_error(f"Deployment {runtime.id!r} returned no transcript text.")
        seconds = audio_seconds(result, form.file or b"")
        shaped = result if response_format == "verbose_json" else {"text": result["text"]}
        return Reply(orjson.dumps(shaped), b"application/json", Usage(audio_seconds=seconds))

    await run_charged(state, call, runtime, "audio.transcriptions", estimate_body, raw, work)
