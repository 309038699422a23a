"""The ``openai`` package, unchanged, against the gateway (workspace and pipeline-scoped base URLs)."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from .conftest import Stack

MESSAGES = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture
def client(stack: Stack) -> OpenAI:
    return OpenAI(api_key=stack.key, base_url=stack.gateway.v1, max_retries=0)


def test_models(client: OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {"smollm2", "minilm", "flite", "sphinx"}
    assert models["smollm2"].operations == ["chat.completions", "responses"]  # type: ignore[attr-defined]
    assert models["flite"].voices  # type: ignore[attr-defined]
    assert client.models.retrieve("minilm").id == "minilm"


def test_chat_non_stream_and_stream_with_usage(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 5
    raw = client.chat.completions.with_raw_response.create(model="smollm2", messages=MESSAGES, max_tokens=2)  # type: ignore[arg-type]
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["x-runinfra-cost-microcents"]) > 0

    stream = client.chat.completions.create(
        model="smollm2", messages=MESSAGES, max_tokens=5, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens >= 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text


def test_responses(client: OpenAI) -> None:
    response = client.responses.create(model="smollm2", input="Say hi", instructions="Be brief.",
                                       max_output_tokens=16)
    assert response.object == "response"
    assert response.output_text == response.output[0].content[0].text  # type: ignore[union-attr]
    events = list(client.responses.create(model="smollm2", input="Say hi", max_output_tokens=4, stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert events[-1].response.output_text == deltas  # type: ignore[union-attr]


def test_embeddings_float_and_default_base64(client: OpenAI) -> None:
    as_float = client.embeddings.create(model="minilm", input=["hello", "world"], encoding_format="float")
    as_default = client.embeddings.create(model="minilm", input=["hello", "world"])  # base64 on the wire
    assert len(as_float.data) == 2
    assert len(as_float.data[0].embedding) == 384
    for a, b in zip(as_float.data[0].embedding, as_default.data[0].embedding, strict=True):
        assert abs(a - b) < 1e-6


def test_speech_then_transcription(client: OpenAI) -> None:
    audio = client.audio.speech.create(model="flite", input="hello world", voice="slt",  # type: ignore[arg-type]
                                       response_format="wav")
    assert audio.response.headers["content-type"].startswith("audio/")
    wav = audio.read()
    assert wav[:4] == b"RIFF"
    text = client.audio.transcriptions.create(model="sphinx", file=("hello.wav", wav, "audio/wav"))
    assert "hello" in text.text.lower()


def test_typed_errors(client: OpenAI, stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=MESSAGES)  # type: ignore[arg-type]
    assert missing.value.response.headers["x-request-id"]
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.chat.completions.create(model="smollm2", messages=MESSAGES, logprobs=True)  # type: ignore[arg-type]
    assert unsupported.value.body["param"] == "logprobs"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="smollm2", input="x")
    bad_key = OpenAI(api_key="rik_nope", base_url=stack.gateway.v1, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()


def test_pipeline_scoped_base_url(stack: Stack) -> None:
    scoped = OpenAI(api_key=stack.pipeline_key, base_url=stack.gateway.v1 + "/voice", max_retries=0)
    assert {m.id for m in scoped.models.list().data} == {"sphinx", "smollm2", "flite"}
    completion = scoped.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=3)  # type: ignore[arg-type]
    assert completion.choices
    with pytest.raises(openai.NotFoundError):
        scoped.embeddings.create(model="minilm", input="outside the pipeline")
    root = OpenAI(api_key=stack.pipeline_key, base_url=stack.gateway.v1, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        root.models.list()
