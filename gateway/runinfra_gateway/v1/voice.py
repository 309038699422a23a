"""POST /{pipeline_id}/pipeline: raw audio in, transcript + reply text + reply audio out.

The three stages run on the pipeline's own deployments (speech-to-text, LLM,
text-to-speech) through the engines owner's orchestration; the request holds
the sum of the three stages' upper bounds and is charged each stage's price
of what it actually used.
"""

from __future__ import annotations

from typing import Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.auth import KeyRecord
from runinfra_gateway.billing import Usage, reported_count, reported_seconds
from runinfra_gateway.pipeline_table import Pipeline
from runinfra_gateway.registry import DeploymentRuntime
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.charging import Reply, run_charged

__all__ = ["voice_pipeline"]

_STAGE_OPERATIONS = (
    ("speech_to_text", "audio.transcriptions"),
    ("llm", "chat.completions"),
    ("text_to_speech", "audio.speech"),
)


def _stage(state: GatewayState, pipeline: Pipeline, deployment_id: str, operation: str) -> DeploymentRuntime:
    runtime = state.registry.active(deployment_id)
    if runtime is None or operation not in runtime.operations:
        raise errors.deployment_error(
            f"Pipeline {pipeline.id!r} is not ready: its deployment {deployment_id!r} is not verified.",
            status=503,
            retry_after_seconds=5,
        )
    return runtime


def _usage(value: Any) -> Usage:
    if isinstance(value, Usage):
        return value
    if isinstance(value, dict):
        return Usage(
            input_tokens=reported_count(value.get("input_tokens") or value.get("prompt_tokens")) or 0,
            output_tokens=reported_count(value.get("output_tokens") or value.get("completion_tokens")) or 0,
            audio_seconds=reported_seconds(value.get("audio_seconds") or value.get("seconds")) or 0.0,
            characters=reported_count(value.get("characters")) or 0,
        )
    return Usage()


async def voice_pipeline(state: GatewayState, call: Call, key: KeyRecord, pipeline: Pipeline, raw: bytes) -> None:
    call.operation = "voice.pipeline"
    content_type = (call.headers.get(b"content-type") or b"").split(b";")[0].strip().lower()
    if not content_type.startswith(b"audio/"):
        raise errors.invalid_request("Send the audio as the body with 'Content-Type: audio/*'.",
                                     code="unsupported_media_type")
    if not raw:
        raise errors.invalid_request("The request body (the audio) is empty.", code="missing_field", param="file")
    stt = _stage(state, pipeline, pipeline.speech_to_text, "audio.transcriptions")
    llm = _stage(state, pipeline, pipeline.llm, "chat.completions")
    tts = _stage(state, pipeline, pipeline.text_to_speech, "audio.speech")
    call.deployment_id = llm.id
    hold = (
        stt.prices.estimate_microcents("audio.transcriptions", {"file_size_bytes": len(raw)})
        + llm.prices.estimate_microcents("chat.completions", {"messages": [{"role": "user", "content": ""}]})
        + tts.prices.estimate_microcents("audio.speech", {"input": "x" * 4096})
    )

    async def work() -> Reply:
        from runinfra_gateway.pipeline import run_voice_pipeline

        assert stt.backend is not None
        assert llm.backend is not None
        assert tts.backend is not None
        envelope, stage_usage = await run_voice_pipeline(
            stt.backend,
            llm.backend,
            tts.backend,
            raw,
            content_type.decode("latin-1"),
            stt_model=stt.id,
            llm_model=llm.id,
            tts_model=tts.id,
        )
        usages = {name: _usage(value) for name, value in dict(stage_usage).items()}
        cost = sum(
            runtime.prices.charge_microcents(operation, usages.get(stage, Usage()))
            for (stage, operation), runtime in zip(_STAGE_OPERATIONS, (stt, llm, tts), strict=True)
        )
        total = Usage(
            input_tokens=sum(u.input_tokens for u in usages.values()),
            output_tokens=sum(u.output_tokens for u in usages.values()),
            audio_seconds=sum(u.audio_seconds for u in usages.values()),
            characters=sum(u.characters for u in usages.values()),
        )
        return Reply(orjson.dumps(envelope), b"application/json", total, cost_microcents=cost)

    await run_charged(state, call, llm, "voice.pipeline", {}, raw, work, hold_microcents=hold)
