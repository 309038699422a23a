"""The operation namespaces: ``client.models``, ``client.chat.completions``, and the rest.

Each helper takes explicit OpenAI-style keyword parameters (no ``**kwargs``), validates
them, and sends one request through ``_Core.send``. Replay safety follows the
specification: GETs always; POSTs only for ``responses.create`` and non-streaming
``chat.completions.create``, and only with an ``idempotency_key``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._audio import AudioResponse
from ._base_url import percent_encode
from ._errors import invalid_options
from ._multipart import build_multipart, check_content_type, check_filename
from ._streaming import RunInfraStream
from ._validation import (
    check_bytes,
    check_choice,
    check_embedding_input,
    check_messages,
    check_model,
    check_number,
    check_positive_int,
    check_responses_input,
    check_text,
    encode_json,
    merge_extra_body,
)

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional, Sequence, Union, overload

    from ._client import _Core
    from ._types import (
        ChatCompletionResponse,
        EmbeddingResponse,
        ImageGenerationResponse,
        ModelListResponse,
        ModelObject,
        RequestOptions,
        ResponsesCreateResponse,
        TranscriptionResponse,
        VoicePipelineResponse,
    )

__all__ = ["Audio", "Chat", "Embeddings", "Images", "Models", "Responses", "Voice"]

_JSON = "application/json"
_SPEECH_FORMATS = frozenset({"wav", "mp3", "opus", "flac", "pcm", "aac"})
_TRANSCRIPTION_FORMATS = frozenset({"json", "verbose_json"})
_IMAGE_FORMATS = frozenset({"url", "b64_json"})
_AUDIO_TYPES_BY_EXTENSION = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/opus",
    "webm": "audio/webm",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
    "pcm": "audio/pcm",
}


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_options(f"{name} must be true or false", param=name)
    return value


def _check_mapping(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid_options(f"{name} must be an object", param=name)
    return value


def _check_list_of_mappings(value: object, name: str) -> List[Any]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, Mapping) for item in value):
        raise invalid_options(f"{name} must be an array of objects", param=name)
    return list(value)


def _check_stop(value: object) -> Union[str, List[str]]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, str) and item for item in value):
        return list(value)
    raise invalid_options("stop must be a non-empty string or array of non-empty strings", param="stop")


def _check_tool_choice(value: object) -> Union[str, Mapping[str, Any]]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        return value
    raise invalid_options("tool_choice must be a string or an object", param="tool_choice")


def _check_metadata(value: object) -> Mapping[str, str]:
    mapping = _check_mapping(value, "metadata")
    for key, item in mapping.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise invalid_options("metadata must map strings to strings", param="metadata")
    return mapping


def _check_int(value: object, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid_options(f"{name} must be an integer of at least {minimum}", param=name)
    return value


def _common_sampling(
    body: Dict[str, Any],
    temperature: Optional[float],
    top_p: Optional[float],
    tools: Optional[Sequence[Mapping[str, Any]]],
    tool_choice: Union[str, Mapping[str, Any], None],
    response_format: Optional[Mapping[str, Any]],
) -> None:
    if temperature is not None:
        body["temperature"] = check_number(temperature, "temperature", minimum=0)
    if top_p is not None:
        body["top_p"] = check_number(top_p, "top_p", minimum=0)
    if tools is not None:
        body["tools"] = _check_list_of_mappings(tools, "tools")
    if tool_choice is not None:
        body["tool_choice"] = _check_tool_choice(tool_choice)
    if response_format is not None:
        body["response_format"] = _check_mapping(response_format, "response_format")


class Models:
    """``client.models``: the deployments this key can reach."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    def list(self, *, request_options: Optional[RequestOptions] = None) -> ModelListResponse:
        core = self._core
        options = core.options(request_options)
        response = core.send("GET", "/models", None, None, options, replay_safe=True)
        result: ModelListResponse = core.json_result(response)
        return result

    def retrieve(self, model: str, *, request_options: Optional[RequestOptions] = None) -> ModelObject:
        core = self._core
        path = "/models/" + percent_encode(check_model(model))
        options = core.options(request_options)
        response = core.send("GET", path, None, None, options, replay_safe=True)
        result: ModelObject = core.json_result(response)
        return result


_CHAT_FIELDS = frozenset(
    {
        "model", "messages", "stream", "temperature", "top_p", "max_tokens", "stop", "presence_penalty",
        "frequency_penalty", "user", "metadata", "stream_options", "tools", "tool_choice", "response_format",
        "seed", "n", "logprobs", "top_logprobs", "parallel_tool_calls",
    }
)  # fmt: skip


class ChatCompletions:
    """``client.chat.completions``."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    if TYPE_CHECKING:  # the overloads narrow stream=True to RunInfraStream
        @overload
        def create(
            self,
            *,
            model: str,
            messages: Sequence[Mapping[str, Any]],
            stream: Literal[True],
            temperature: Optional[float] = None,
            top_p: Optional[float] = None,
            max_tokens: Optional[int] = None,
            stop: Union[str, Sequence[str], None] = None,
            presence_penalty: Optional[float] = None,
            frequency_penalty: Optional[float] = None,
            user: Optional[str] = None,
            metadata: Optional[Mapping[str, str]] = None,
            stream_options: Optional[Mapping[str, Any]] = None,
            tools: Optional[Sequence[Mapping[str, Any]]] = None,
            tool_choice: Union[str, Mapping[str, Any], None] = None,
            response_format: Optional[Mapping[str, Any]] = None,
            seed: Optional[int] = None,
            n: Optional[int] = None,
            logprobs: Optional[bool] = None,
            top_logprobs: Optional[int] = None,
            parallel_tool_calls: Optional[bool] = None,
            extra_body: Optional[Mapping[str, Any]] = None,
            request_options: Optional[RequestOptions] = None,
        ) -> RunInfraStream: ...

        @overload
        def create(
            self,
            *,
            model: str,
            messages: Sequence[Mapping[str, Any]],
            stream: Optional[Literal[False]] = None,
            temperature: Optional[float] = None,
            top_p: Optional[float] = None,
            max_tokens: Optional[int] = None,
            stop: Union[str, Sequence[str], None] = None,
            presence_penalty: Optional[float] = None,
            frequency_penalty: Optional[float] = None,
            user: Optional[str] = None,
            metadata: Optional[Mapping[str, str]] = None,
            stream_options: Optional[Mapping[str, Any]] = None,
            tools: Optional[Sequence[Mapping[str, Any]]] = None,
            tool_choice: Union[str, Mapping[str, Any], None] = None,
            response_format: Optional[Mapping[str, Any]] = None,
            seed: Optional[int] = None,
            n: Optional[int] = None,
            logprobs: Optional[bool] = None,
            top_logprobs: Optional[int] = None,
            parallel_tool_calls: Optional[bool] = None,
            extra_body: Optional[Mapping[str, Any]] = None,
            request_options: Optional[RequestOptions] = None,
        ) -> ChatCompletionResponse: ...

        @overload
        def create(
            self,
            *,
            model: str,
            messages: Sequence[Mapping[str, Any]],
            stream: Optional[bool] = None,
            temperature: Optional[float] = None,
            top_p: Optional[float] = None,
            max_tokens: Optional[int] = None,
            stop: Union[str, Sequence[str], None] = None,
            presence_penalty: Optional[float] = None,
            frequency_penalty: Optional[float] = None,
            user: Optional[str] = None,
            metadata: Optional[Mapping[str, str]] = None,
            stream_options: Optional[Mapping[str, Any]] = None,
            tools: Optional[Sequence[Mapping[str, Any]]] = None,
            tool_choice: Union[str, Mapping[str, Any], None] = None,
            response_format: Optional[Mapping[str, Any]] = None,
            seed: Optional[int] = None,
            n: Optional[int] = None,
            logprobs: Optional[bool] = None,
            top_logprobs: Optional[int] = None,
            parallel_tool_calls: Optional[bool] = None,
            extra_body: Optional[Mapping[str, Any]] = None,
            request_options: Optional[RequestOptions] = None,
        ) -> Union[ChatCompletionResponse, RunInfraStream]: ...

    def create(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        stream: Optional[bool] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        max_tokens: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        presence_penalty: Optional[float] = None,
        frequency_penalty: Optional[float] = None,
        user: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        stream_options: Optional[Mapping[str, Any]] = None,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        tool_choice: Union[str, Mapping[str, Any], None] = None,
        response_format: Optional[Mapping[str, Any]] = None,
        seed: Optional[int] = None,
        n: Optional[int] = None,
        logprobs: Optional[bool] = None,
        top_logprobs: Optional[int] = None,
        parallel_tool_calls: Optional[bool] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        request_options: Optional[RequestOptions] = None,
    ) -> Union[ChatCompletionResponse, RunInfraStream]:
        """Create a chat completion; ``stream=True`` returns a ``RunInfraStream`` of chunks."""
        core = self._core
        body: Dict[str, Any] = {"model": check_model(model), "messages": check_messages(messages)}
        streaming = False
        if stream is not None:
            streaming = _check_bool(stream, "stream")
            body["stream"] = streaming
        _common_sampling(body, temperature, top_p, tools, tool_choice, response_format)
        if max_tokens is not None:
            body["max_tokens"] = check_positive_int(max_tokens, "max_tokens")
        if stop is not None:
            body["stop"] = _check_stop(stop)
        if presence_penalty is not None:
            body["presence_penalty"] = check_number(presence_penalty, "presence_penalty")
        if frequency_penalty is not None:
            body["frequency_penalty"] = check_number(frequency_penalty, "frequency_penalty")
        if user is not None:
            body["user"] = check_text(user, "user")
        if metadata is not None:
            body["metadata"] = _check_metadata(metadata)
        if stream_options is not None:
            if not streaming:
                raise invalid_options("stream_options is only valid with stream=True", param="stream_options")
            body["stream_options"] = _check_mapping(stream_options, "stream_options")
        if seed is not None:
            body["seed"] = _check_int(seed, "seed", minimum=-(2**63))
        if n is not None:
            body["n"] = check_positive_int(n, "n")
        if logprobs is not None:
            body["logprobs"] = _check_bool(logprobs, "logprobs")
        if top_logprobs is not None:
            body["top_logprobs"] = _check_int(top_logprobs, "top_logprobs")
        if parallel_tool_calls is not None:
            body["parallel_tool_calls"] = _check_bool(parallel_tool_calls, "parallel_tool_calls")
        merge_extra_body(body, extra_body, _CHAT_FIELDS)
        options = core.options(request_options)
        payload = encode_json(body)
        if streaming:
            response = core.send(
                "POST", "/chat/completions", payload, _JSON, options, replay_safe=False, stream=True,
                accept="text/event-stream",
            )  # fmt: skip
            return core.stream_result(response)
        replay_safe = options.idempotency_key is not None
        response = core.send("POST", "/chat/completions", payload, _JSON, options, replay_safe=replay_safe)
        result: ChatCompletionResponse = core.json_result(response)
        return result


class Chat:
    """``client.chat``."""

    def __init__(self, core: _Core) -> None:
        self.completions = ChatCompletions(core)


_RESPONSES_FIELDS = frozenset(
    {
        "model", "input", "stream", "instructions", "temperature", "top_p", "tools", "tool_choice",
        "response_format", "max_output_tokens",
    }
)  # fmt: skip


# A Responses stream ends after one of these (it has no "data: [DONE]"); ending sooner is a cut stream.
_RESPONSES_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class Responses:
    """``client.responses``: the Responses-style adapter over chat completions."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    if TYPE_CHECKING:  # the overloads narrow stream=True to RunInfraStream
        @overload
        def create(
            self,
            *,
            model: str,
            input: Union[str, Sequence[Mapping[str, Any]]],
            stream: Literal[True],
            instructions: Optional[str] = None,
            temperature: Optional[float] = None,
            top_p: Optional[float] = None,
            tools: Optional[Sequence[Mapping[str, Any]]] = None,
            tool_choice: Union[str, Mapping[str, Any], None] = None,
            response_format: Optional[Mapping[str, Any]] = None,
            max_output_tokens: Optional[int] = None,
            extra_body: Optional[Mapping[str, Any]] = None,
            request_options: Optional[RequestOptions] = None,
        ) -> RunInfraStream: ...

        @overload
        def create(
            self,
            *,
            model: str,
            input: Union[str, Sequence[Mapping[str, Any]]],
            stream: Optional[Literal[False]] = None,
            instructions: Optional[str] = None,
            temperature: Optional[float] = None,
            top_p: Optional[float] = None,
            tools: Optional[Sequence[Mapping[str, Any]]] = None,
            tool_choice: Union[str, Mapping[str, Any], None] = None,
            response_format: Optional[Mapping[str, Any]] = None,
            max_output_tokens: Optional[int] = None,
            extra_body: Optional[Mapping[str, Any]] = None,
            request_options: Optional[RequestOptions] = None,
        ) -> ResponsesCreateResponse: ...

        @overload
        def create(
            self,
            *,
            model: str,
            input: Union[str, Sequence[Mapping[str, Any]]],
            stream: Optional[bool] = None,
            instructions: Optional[str] = None,
            temperature: Optional[float] = None,
            top_p: Optional[float] = None,
            tools: Optional[Sequence[Mapping[str, Any]]] = None,
            tool_choice: Union[str, Mapping[str, Any], None] = None,
            response_format: Optional[Mapping[str, Any]] = None,
            max_output_tokens: Optional[int] = None,
            extra_body: Optional[Mapping[str, Any]] = None,
            request_options: Optional[RequestOptions] = None,
        ) -> Union[ResponsesCreateResponse, RunInfraStream]: ...

    def create(
        self,
        *,
        model: str,
        input: Union[str, Sequence[Mapping[str, Any]]],
        stream: Optional[bool] = None,
        instructions: Optional[str] = None,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
        tool_choice: Union[str, Mapping[str, Any], None] = None,
        response_format: Optional[Mapping[str, Any]] = None,
        max_output_tokens: Optional[int] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        request_options: Optional[RequestOptions] = None,
    ) -> Union[ResponsesCreateResponse, RunInfraStream]:
        """Create a response; ``stream=True`` returns a ``RunInfraStream`` of response events."""
        core = self._core
        body: Dict[str, Any] = {"model": check_model(model), "input": check_responses_input(input)}
        streaming = False
        if stream is not None:
            streaming = _check_bool(stream, "stream")
            body["stream"] = streaming
        if instructions is not None:
            body["instructions"] = check_text(instructions, "instructions")
        _common_sampling(body, temperature, top_p, tools, tool_choice, response_format)
        if max_output_tokens is not None:
            body["max_output_tokens"] = check_positive_int(max_output_tokens, "max_output_tokens")
        merge_extra_body(body, extra_body, _RESPONSES_FIELDS)
        options = core.options(request_options)
        payload = encode_json(body)
        if streaming:
            response = core.send(
                "POST", "/responses", payload, _JSON, options, replay_safe=False, stream=True,
                accept="text/event-stream",
            )  # fmt: skip
            return core.stream_result(response, _RESPONSES_FINAL_EVENTS)
        replay_safe = options.idempotency_key is not None
        response = core.send("POST", "/responses", payload, _JSON, options, replay_safe=replay_safe)
        result: ResponsesCreateResponse = core.json_result(response)
        return result


_EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


class Embeddings:
    """``client.embeddings`` (sent once: not in the replay-safe set)."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    def create(
        self,
        *,
        model: str,
        input: Union[str, Sequence[str]],
        encoding_format: Optional[Literal["float"]] = None,
        dimensions: Optional[int] = None,
        user: Optional[str] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        request_options: Optional[RequestOptions] = None,
    ) -> EmbeddingResponse:
        core = self._core
        body: Dict[str, Any] = {"model": check_model(model), "input": check_embedding_input(input)}
        if encoding_format is not None:
            body["encoding_format"] = check_choice(encoding_format, "encoding_format", ("float",))
        if dimensions is not None:
            body["dimensions"] = check_positive_int(dimensions, "dimensions")
        if user is not None:
            body["user"] = check_text(user, "user")
        merge_extra_body(body, extra_body, _EMBEDDING_FIELDS)
        options = core.options(request_options)
        response = core.send("POST", "/embeddings", encode_json(body), _JSON, options, replay_safe=False)
        result: EmbeddingResponse = core.json_result(response)
        return result


_IMAGE_FIELDS = frozenset({"model", "prompt", "n", "size", "response_format", "quality", "style", "user"})


class Images:
    """``client.images`` (sent once: not in the replay-safe set)."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    def generate(
        self,
        *,
        model: str,
        prompt: str,
        n: Optional[int] = None,
        size: Optional[str] = None,
        response_format: Optional[Literal["url", "b64_json"]] = None,
        quality: Optional[str] = None,
        style: Optional[str] = None,
        user: Optional[str] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        request_options: Optional[RequestOptions] = None,
    ) -> ImageGenerationResponse:
        core = self._core
        body: Dict[str, Any] = {"model": check_model(model), "prompt": check_text(prompt, "prompt")}
        if n is not None:
            body["n"] = check_positive_int(n, "n")
        if size is not None:
            body["size"] = check_text(size, "size")
        if response_format is not None:
            body["response_format"] = check_choice(response_format, "response_format", _IMAGE_FORMATS)
        if quality is not None:
            body["quality"] = check_text(quality, "quality")
        if style is not None:
            body["style"] = check_text(style, "style")
        if user is not None:
            body["user"] = check_text(user, "user")
        merge_extra_body(body, extra_body, _IMAGE_FIELDS)
        options = core.options(request_options)
        response = core.send("POST", "/images/generations", encode_json(body), _JSON, options, replay_safe=False)
        result: ImageGenerationResponse = core.json_result(response)
        return result


_SPEECH_FIELDS = frozenset(
    {"model", "input", "voice", "ref_audio", "ref_text", "task_type", "response_format", "speed"}
)


class Speech:
    """``client.audio.speech``: binary audio (sent once)."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    def create(
        self,
        *,
        model: str,
        input: str,
        voice: Optional[str] = None,
        ref_audio: Optional[str] = None,
        ref_text: Optional[str] = None,
        task_type: Optional[str] = None,
        response_format: Optional[Literal["wav", "mp3", "opus", "flac", "pcm", "aac"]] = None,
        speed: Optional[float] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        request_options: Optional[RequestOptions] = None,
    ) -> AudioResponse:
        core = self._core
        body: Dict[str, Any] = {"model": check_model(model), "input": check_text(input, "input")}
        if voice is not None:
            if ref_audio is not None or ref_text is not None:
                raise invalid_options("pass either voice, or ref_audio with ref_text, not both", param="voice")
            body["voice"] = check_text(voice, "voice")
        elif ref_audio is not None or ref_text is not None:
            body["ref_audio"] = check_text(ref_audio, "ref_audio")
            body["ref_text"] = check_text(ref_text, "ref_text")
        else:
            raise invalid_options("speech needs voice, or ref_audio with ref_text", param="voice")
        if task_type is not None:
            body["task_type"] = check_text(task_type, "task_type")
        if response_format is not None:
            body["response_format"] = check_choice(response_format, "response_format", _SPEECH_FORMATS)
        if speed is not None:
            body["speed"] = check_number(speed, "speed", positive=True)
        merge_extra_body(body, extra_body, _SPEECH_FIELDS)
        options = core.options(request_options)
        response = core.send(
            "POST", "/audio/speech", encode_json(body), _JSON, options, replay_safe=False, accept="*/*"
        )
        return core.audio_result(response)


class Transcriptions:
    """``client.audio.transcriptions``: multipart upload, JSON result (sent once)."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    def create(
        self,
        *,
        model: str,
        file: Union[bytes, bytearray],
        filename: str = "audio.wav",
        content_type: Optional[str] = None,
        language: Optional[str] = None,
        prompt: Optional[str] = None,
        response_format: Optional[Literal["json", "verbose_json"]] = None,
        temperature: Optional[float] = None,
        request_options: Optional[RequestOptions] = None,
    ) -> TranscriptionResponse:
        core = self._core
        fields: Dict[str, str] = {"model": check_model(model)}
        content = check_bytes(file, "file")
        name = check_filename(filename)
        if content_type is None:
            extension = name.rpartition(".")[2].lower() if "." in name else ""
            content_type = _AUDIO_TYPES_BY_EXTENSION.get(extension, "application/octet-stream")
        media_type = check_content_type(content_type)
        if language is not None:
            fields["language"] = check_text(language, "language")
        if prompt is not None:
            fields["prompt"] = check_text(prompt, "prompt")
        if response_format is not None:
            fields["response_format"] = check_choice(response_format, "response_format", _TRANSCRIPTION_FORMATS)
        if temperature is not None:
            fields["temperature"] = repr(float(check_number(temperature, "temperature", minimum=0)))
        options = core.options(request_options)
        body, multipart_type = build_multipart(fields, "file", name, media_type, content)
        response = core.send("POST", "/audio/transcriptions", body, multipart_type, options, replay_safe=False)
        result: TranscriptionResponse = core.json_result(response)
        return result


class Audio:
    """``client.audio``."""

    def __init__(self, core: _Core) -> None:
        self.speech = Speech(core)
        self.transcriptions = Transcriptions(core)


class VoicePipeline:
    """``client.voice.pipeline``: audio in, transcript + reply + audio out (pipeline-scoped)."""

    def __init__(self, core: _Core) -> None:
        self._core = core

    def create(
        self,
        *,
        audio: Union[bytes, bytearray, memoryview],
        mime_type: str = "audio/wav",
        request_options: Optional[RequestOptions] = None,
    ) -> VoicePipelineResponse:
        core = self._core
        if core.base.pipeline_segment is None:
            raise invalid_options(
                "voice.pipeline.create needs a pipeline: pass pipeline_id, or a pipeline-scoped base_url",
                param="pipeline_id",
            )
        content = check_bytes(bytes(audio) if isinstance(audio, memoryview) else audio, "audio")
        media_type = check_content_type(mime_type, "mime_type")
        if not media_type.lower().startswith("audio/"):
            raise invalid_options("mime_type must be an audio/* media type", param="mime_type")
        options = core.options(request_options)
        response = core.send("POST", "/pipeline", content, media_type, options, replay_safe=False)
        result: VoicePipelineResponse = core.json_result(response)
        return result


class Voice:
    """``client.voice``."""

    def __init__(self, core: _Core) -> None:
        self.pipeline = VoicePipeline(core)
