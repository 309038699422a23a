"""Our SDK against the gateway: every operation it has, errors typed by the gateway's error table."""

from __future__ import annotations

import pytest
from runinfra import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    ModelNotFoundError,
    PermissionDeniedError,
    RunInfra,
)

from .conftest import Stack

MESSAGES = [{"role": "user", "content": "Name a fruit."}]


@pytest.fixture
def client(stack: Stack) -> RunInfra:
    return RunInfra(api_key=stack.key, base_url=stack.gateway.v1, max_retries=0)


def test_models_and_chat(client: RunInfra) -> None:
    models = {m["id"]: m for m in client.models.list()["data"]}
    assert models["minilm"]["operations"] == ["embeddings"]
    assert client.models.retrieve("smollm2")["id"] == "smollm2"
    completion = client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=4)
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["_request_id"].startswith("req_")  # type: ignore[typeddict-item]


def test_chat_stream_with_usage_and_request_id(client: RunInfra) -> None:
    stream = client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=4, stream=True,
                                            stream_options={"include_usage": True})
    events = list(stream)
    assert stream.request_id is not None
    assert stream.request_id.startswith("req_")
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["total_tokens"] > 0


def test_responses_with_idempotency_key_replays(client: RunInfra) -> None:
    options = {"idempotency_key": "sdk-e2e-1", "client_request_id": "sdk-trace-1"}
    first = client.responses.create(model="smollm2", input="Say hi", max_output_tokens=4,
                                    request_options=options)  # type: ignore[arg-type]
    second = client.responses.create(model="smollm2", input="Say hi", max_output_tokens=4,
                                     request_options=options)  # type: ignore[arg-type]
    assert first["id"] == second["id"]
    assert first["output_text"] == second["output_text"]
    events = list(client.responses.create(model="smollm2", input="Say hi", max_output_tokens=4, stream=True))
    assert events[-1]["type"] == "response.completed"


def test_embeddings_speech_transcription(client: RunInfra) -> None:
    vectors = client.embeddings.create(model="minilm", input=["a", "b"])
    assert len(vectors["data"]) == 2
    audio = client.audio.speech.create(model="flite", input="hello world", voice="slt", response_format="wav")
    assert audio.content[:4] == b"RIFF"
    assert audio.request_id is not None
    text = client.audio.transcriptions.create(model="sphinx", file=audio.content, filename="hello.wav")
    assert "hello" in text["text"].lower()


def test_voice_pipeline_on_a_pipeline_key(stack: Stack, client: RunInfra) -> None:
    speech = client.audio.speech.create(model="flite", input="what is the capital of france", voice="slt",
                                        response_format="wav")
    scoped = RunInfra(api_key=stack.pipeline_key, base_url=stack.gateway.v1, pipeline_id="voice", max_retries=0)
    result = scoped.voice.pipeline.create(audio=speech.content, mime_type="audio/wav")
    assert result["transcript"]
    assert result["response_text"]
    assert result["audio_base64"]
    assert result["content_type"].startswith("audio/")


def test_typed_errors(stack: Stack, client: RunInfra) -> None:
    with pytest.raises(ModelNotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=MESSAGES)
    assert missing.value.request_id
    with pytest.raises(BadRequestError) as unsupported:
        client.chat.completions.create(model="smollm2", messages=MESSAGES, logprobs=True)
    assert unsupported.value.param == "logprobs"
    with pytest.raises(AuthenticationError):
        RunInfra(api_key="rik_wrong", base_url=stack.gateway.v1, max_retries=0).models.list()
    with pytest.raises(PermissionDeniedError) as scope:
        RunInfra(api_key=stack.pipeline_key, base_url=stack.gateway.v1, max_retries=0).models.list()
    assert scope.value.type == "pipeline_scope_violation"
    _, poor_key = stack.new_key(credits_cents=0)
    with pytest.raises(InsufficientCreditsError) as poor:
        RunInfra(api_key=poor_key, base_url=stack.gateway.v1, max_retries=0).chat.completions.create(
            model="smollm2", messages=MESSAGES, max_tokens=4)
    assert poor.value.current_balance_cents == 0
    assert poor.value.required_cents is not None
    assert poor.value.required_cents > 0
    assert poor.value.topup_url
