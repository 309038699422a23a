"""Every operation over a real socket: paths, headers, bodies and result shapes."""

from __future__ import annotations

import json

import pytest
from runinfra import AudioResponse, RunInfra, RunInfraError, __version__
from sdk_servers import API_KEY, Exchange, ScriptedServer, json_handler, sse_frames, sse_handler

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def test_models_list_and_retrieve_url_encode_the_id(server: ScriptedServer, client: RunInfra) -> None:
    server.on("GET", "/v1/models", json_handler({"object": "list", "data": [{"id": "a/b", "object": "model"}]}))
    server.on("GET", "/v1/models/a%2Fb%20c", json_handler({"id": "a/b c", "object": "model"}, request_id="req_m"))
    listed = client.models.list()
    assert listed == {"object": "list", "data": [{"id": "a/b", "object": "model"}], "_request_id": "req_test"}
    model = client.models.retrieve("a/b c")
    assert model["id"] == "a/b c"
    assert model["_request_id"] == "req_m"
    assert server.requests[1].target == "/v1/models/a%2Fb%20c"


def test_chat_sends_sdk_headers_and_exact_body(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/chat/completions", json_handler(CHAT))
    result = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.5,
        max_tokens=5,
        stop=["x"],
        metadata={"k": "v"},
        extra_body={"top_k": 3},
    )
    assert result["choices"][0]["message"]["content"] == "hi"
    assert result["_request_id"] == "req_test"
    assert "_idempotent_replay" not in result
    sent = server.requests[0]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["x-runinfra-sdk"] == "python"
    assert sent.headers["x-runinfra-sdk-version"] == __version__
    assert len(sent.headers["x-client-request-id"]) == 36
    assert sent.headers["content-type"] == "application/json"
    assert "idempotency-key" not in sent.headers
    assert sent.json() == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "max_tokens": 5,
        "stop": ["x"],
        "metadata": {"k": "v"},
        "top_k": 3,
    }


def test_idempotent_replay_flag_and_request_options(server: ScriptedServer, client: RunInfra) -> None:
    replayed = json_handler({"id": "r", "output_text": "ok"}, headers={"X-RunInfra-Idempotent-Replay": "true"})
    server.on("POST", "/v1/responses", replayed)
    result = client.responses.create(
        model="m",
        input="hello",
        instructions="be brief",
        max_output_tokens=10,
        request_options={"client_request_id": "trace-1", "idempotency_key": "idem-1", "headers": {"X-App": "a"}},
    )
    assert result["_idempotent_replay"] is True
    sent = server.requests[0]
    assert sent.headers["x-client-request-id"] == "trace-1"
    assert sent.headers["idempotency-key"] == "idem-1"
    assert sent.headers["x-app"] == "a"
    assert sent.json() == {"model": "m", "input": "hello", "instructions": "be brief", "max_output_tokens": 10}


def test_custom_header_replaces_a_default_in_any_case(server: ScriptedServer, client: RunInfra) -> None:
    server.on("GET", "/v1/models", json_handler({"data": []}))
    client.models.list(request_options={"headers": {"user-agent": "my-app/1.0", "ACCEPT": "application/json"}})
    raw = server.requests[0]
    assert raw.headers["user-agent"] == "my-app/1.0"
    assert raw.headers["accept"] == "application/json"
    assert raw.header_names.count("user-agent") == 1
    assert raw.header_names.count("accept") == 1
    assert len(raw.header_names) == len(set(raw.header_names))


def test_embeddings_and_images(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/embeddings", json_handler({"object": "list", "data": [{"index": 0, "embedding": [0.5]}]}))
    server.on("POST", "/v1/images/generations", json_handler({"created": 1, "data": [{"url": "http://x/i.png"}]}))
    embedded = client.embeddings.create(model="e", input=["a", "b"], encoding_format="float", dimensions=4)
    assert embedded["data"][0]["embedding"] == [0.5]
    assert server.requests[0].json() == {"model": "e", "input": ["a", "b"], "encoding_format": "float", "dimensions": 4}
    images = client.images.generate(model="i", prompt="a cat", n=1, size="256x256", response_format="url")
    assert images["data"][0]["url"] == "http://x/i.png"
    assert server.requests[1].json() == {
        "model": "i", "prompt": "a cat", "n": 1, "size": "256x256", "response_format": "url"
    }  # fmt: skip


def test_speech_returns_audio_response(server: ScriptedServer, client: RunInfra) -> None:
    def audio(exchange: Exchange) -> None:
        exchange.respond(200, b"RIFFdata", content_type="audio/wav", request_id="req_audio")

    server.on("POST", "/v1/audio/speech", audio)
    result = client.audio.speech.create(model="t", input="hello", voice="joe", response_format="wav", speed=1.0)
    assert result == AudioResponse(b"RIFFdata", "audio/wav", "req_audio")
    assert server.requests[0].json() == {
        "model": "t", "input": "hello", "voice": "joe", "response_format": "wav", "speed": 1.0
    }  # fmt: skip
    client.audio.speech.create(model="t", input="hello", ref_audio="data:...", ref_text="ref", task_type="Base")
    assert server.requests[1].json()["ref_text"] == "ref"


def test_transcription_is_multipart(server: ScriptedServer, client: RunInfra) -> None:
    server.on("POST", "/v1/audio/transcriptions", json_handler({"text": "hello"}))
    result = client.audio.transcriptions.create(
        model="w", file=b"\x00\x01--boundary?", filename="a.mp3", language="en", response_format="verbose_json"
    )
    assert result == {"text": "hello", "_request_id": "req_test"}
    sent = server.requests[0]
    content_type = sent.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=")[1].encode()
    assert sent.body.startswith(b"--" + boundary)
    assert b'name="file"; filename="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n\x00\x01--boundary?\r\n' in sent.body
    assert b'name="language"\r\n\r\nen\r\n' in sent.body


def test_voice_pipeline_posts_raw_audio_to_pipeline_route(server: ScriptedServer) -> None:
    server.on("POST", "/v1/pipe%201/pipeline", json_handler({"object": "voice.pipeline", "transcript": "hi"}))
    with RunInfra(api_key=API_KEY, base_url=server.url, pipeline_id="  pipe 1 ") as client:
        assert client.base_url == server.url + "/pipe%201"
        result = client.voice.pipeline.create(audio=b"RIFF", mime_type="audio/wav")
        client.voice.pipeline.create(audio=memoryview(b"RIFF2"))
    assert result["transcript"] == "hi"
    assert server.requests[1].body == b"RIFF2"
    assert server.requests[0].headers["content-type"] == "audio/wav"
    assert server.requests[0].body == b"RIFF"


def test_voice_pipeline_without_pipeline_is_refused_locally(server: ScriptedServer, client: RunInfra) -> None:
    with pytest.raises(RunInfraError) as caught:
        client.voice.pipeline.create(audio=b"RIFF")
    assert caught.value.type == "invalid_request_options"
    assert server.requests == []


def test_pipeline_scoped_once(server: ScriptedServer) -> None:
    server.on("GET", "/v1/pipe_123/models", json_handler({"object": "list", "data": []}))
    client = RunInfra(api_key=API_KEY, base_url=server.url + "/pipe_123", pipeline_id="pipe_123")
    assert client.base_url == server.url + "/pipe_123"
    assert client.pipeline_id == "pipe_123"
    client.models.list()
    assert server.requests[0].target == "/v1/pipe_123/models"
    with pytest.raises(RunInfraError) as caught:
        RunInfra(api_key=API_KEY, base_url=server.url + "/pipe_123", pipeline_id="pipe_999")
    assert caught.value.type == "invalid_request_options"


def test_non_json_success_body_is_a_typed_error(server: ScriptedServer, client: RunInfra) -> None:
    server.on("GET", "/v1/models", json_handler([1, 2]))
    with pytest.raises(RunInfraError) as caught:
        client.models.list()
    assert caught.value.type == "invalid_response"
    assert caught.value.request_id == "req_test"


def test_custom_transport_seam() -> None:
    from runinfra import RunInfraRequest, RunInfraResponse

    seen = []

    def transport(request: RunInfraRequest) -> RunInfraResponse:
        seen.append(request)
        return RunInfraResponse(200, {"X-Request-Id": "req_t"}, json.dumps(CHAT).encode())

    client = RunInfra(api_key=API_KEY, base_url="http://localhost:1/v1", transport=transport)
    result = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert result["_request_id"] == "req_t"
    assert seen[0].url == "http://localhost:1/v1/chat/completions"
    assert seen[0].method == "POST"
    assert seen[0].stream is False
    assert seen[0].timeout_seconds == 120.0  # runinfra 0.2.0's default
    assert API_KEY not in repr(seen[0])
    assert RunInfraResponse(200, {}, b'{"a": 1}').json() == {"a": 1}


def test_custom_transport_can_stream_chunks() -> None:
    from runinfra import RunInfraRequest, RunInfraResponse

    closed = []

    class Body:
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b'data: {"n": 1}\n'
            yield b'\ndata: {"n": 2}\n\ndata: [DONE]\n\n'

        def close(self) -> None:
            closed.append(True)

    def transport(request: RunInfraRequest) -> RunInfraResponse:
        assert request.stream is True
        return RunInfraResponse(200, {"Content-Type": "text/event-stream", "X-Request-Id": "req_s"}, Body())

    client = RunInfra(api_key=API_KEY, base_url="http://localhost:1/v1", transport=transport)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    assert stream.request_id == "req_s"
    assert list(stream) == [{"n": 1}, {"n": 2}]
    assert closed


def test_every_operation_sends_the_sdk_headers_and_a_fresh_client_request_id(server: ScriptedServer) -> None:
    for method, path in (("GET", "/v1/pipe_1/models"), ("GET", "/v1/pipe_1/models/m"),
                         ("POST", "/v1/pipe_1/responses"), ("POST", "/v1/pipe_1/embeddings"),
                         ("POST", "/v1/pipe_1/images/generations"), ("POST", "/v1/pipe_1/audio/transcriptions"),
                         ("POST", "/v1/pipe_1/pipeline")):  # fmt: skip
        server.on(method, path, json_handler({"id": "x"}))
    server.on("POST", "/v1/pipe_1/chat/completions", sse_handler(sse_frames([{"id": "c"}])))
    server.on("POST", "/v1/pipe_1/audio/speech", lambda ex: ex.respond(200, b"RIFF", content_type="audio/wav"))
    with RunInfra(api_key=API_KEY, base_url=server.url, pipeline_id="pipe_1", max_retries=0) as client:
        client.models.list()
        client.models.retrieve("m")
        list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
        client.responses.create(model="m", input="x")
        client.embeddings.create(model="e", input="x")
        client.images.generate(model="i", prompt="x")
        client.audio.speech.create(model="t", input="x", voice="v")
        client.audio.transcriptions.create(model="w", file=b"x")
        client.voice.pipeline.create(audio=b"RIFF")
    assert len(server.requests) == 9
    for sent in server.requests:
        assert sent.headers["x-runinfra-sdk"] == "python", sent.path
        assert sent.headers["x-runinfra-sdk-version"] == __version__, sent.path
        assert len(sent.headers["x-client-request-id"]) == 36, sent.path
    assert len({sent.headers["x-client-request-id"] for sent in server.requests}) == 9


def test_the_documented_public_names_are_exported() -> None:
    import runinfra

    errors = ["AuthenticationError", "PermissionDeniedError", "RateLimitError", "InsufficientCreditsError",
              "DeploymentError", "ModelNotFoundError", "RunInfraTimeoutError", "RunInfraConnectionError",
              "RunInfraStreamParseError", "UnsupportedOperationError", "WebhookVerificationError"]  # fmt: skip
    contracts = ["ModelListResponse", "ModelObject", "ResponsesCreateResponse", "ChatCompletionResponse",
                 "EmbeddingResponse", "TranscriptionResponse", "ImageGenerationResponse"]  # fmt: skip
    others = ["RunInfra", "RunInfraError", "RunInfraStream", "construct_webhook_event", "verify_webhook_signature"]
    for name in errors + contracts + others:
        assert name in runinfra.__all__, name
        assert getattr(runinfra, name) is not None, name
    for name in errors:
        assert issubclass(getattr(runinfra, name), runinfra.RunInfraError), name
    assert not hasattr(runinfra, "AsyncRunInfra")  # async clients are outside the public surface
