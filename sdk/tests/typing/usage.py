"""Checked by ``mypy --strict``: what the type surface promises to users."""

from __future__ import annotations

from typing import Any, Dict, List, Union

from runinfra import (
    AudioResponse,
    ChatCompletionResponse,
    EmbeddingResponse,
    ImageGenerationResponse,
    ModelListResponse,
    ModelObject,
    RateLimitError,
    ResponsesCreateResponse,
    RunInfra,
    RunInfraError,
    RunInfraStream,
    TranscriptionResponse,
    VoicePipelineResponse,
    construct_webhook_event,
    verify_webhook_signature,
)
from typing_extensions import assert_type


def usage(client: RunInfra, flag: bool) -> None:
    messages = [{"role": "user", "content": "hi"}]
    streamed = client.chat.completions.create(model="m", messages=messages, stream=True)
    assert_type(streamed, RunInfraStream)
    for chunk in streamed:
        assert_type(chunk, Dict[str, Any])
    completed = client.chat.completions.create(model="m", messages=messages)
    assert_type(completed, ChatCompletionResponse)
    content: Union[str, None] = completed["choices"][0]["message"]["content"]
    request_id: str = completed["_request_id"]
    explicit = client.chat.completions.create(model="m", messages=messages, stream=False)
    assert_type(explicit, ChatCompletionResponse)
    either = client.chat.completions.create(model="m", messages=messages, stream=flag)
    assert_type(either, Union[ChatCompletionResponse, RunInfraStream])

    response_stream = client.responses.create(model="m", input="x", stream=True)
    assert_type(response_stream, RunInfraStream)
    stream_request_id: Union[str, None] = response_stream.request_id
    response = client.responses.create(model="m", input="x", request_options={"timeout_seconds": 20, "max_retries": 0})
    assert_type(response, ResponsesCreateResponse)
    text: str = response["output_text"]

    assert_type(client.models.list(), ModelListResponse)
    assert_type(client.models.retrieve("m"), ModelObject)
    embedding = client.embeddings.create(model="e", input=["a"])
    assert_type(embedding, EmbeddingResponse)
    vector: List[float] = embedding["data"][0]["embedding"]
    assert_type(client.images.generate(model="i", prompt="p"), ImageGenerationResponse)
    audio = client.audio.speech.create(model="t", input="x", voice="v")
    assert_type(audio, AudioResponse)
    audio_bytes: bytes = audio.content
    assert_type(client.audio.transcriptions.create(model="w", file=b"x"), TranscriptionResponse)
    assert_type(client.voice.pipeline.create(audio=b"x"), VoicePipelineResponse)

    event = construct_webhook_event(payload=b"{}", signature_header="t=1,v1=x", secret="s")
    assert_type(event, Dict[str, Any])
    verified: bool = verify_webhook_signature(b"{}", "t=1,v1=x", "s")
    assert verified
    try:
        client.models.list()
    except RateLimitError as error:
        print(error.retry_after_seconds + 1.0 if error.retry_after_seconds is not None else 0.0)
    except RunInfraError as error:
        print(error.type.upper())
    del content, request_id, stream_request_id, text, vector, audio_bytes
