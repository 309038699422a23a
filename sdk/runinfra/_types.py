"""TypedDict contracts of the JSON envelopes the helpers return.

Results are plain dicts (drop-in with ``runinfra==0.2.0``); these types let a type checker
see their shape. ``_request_id`` is the gateway's ``x-request-id``; ``_idempotent_replay``
is ``True`` when the gateway replayed a stored response for an idempotency key.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, TypedDict, Union

from ._audio import AudioResponse
from ._wire import RunInfraRequest, RunInfraResponse

__all__ = [
    "AudioResponse",
    "ChatCompletionChoice",
    "ChatCompletionMessage",
    "ChatCompletionResponse",
    "CompletionUsage",
    "EmbeddingObject",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "ImageGenerationResponse",
    "ImageObject",
    "ModelListResponse",
    "ModelObject",
    "RequestOptions",
    "ResponseOutputMessage",
    "ResponseOutputText",
    "ResponseUsage",
    "ResponsesCreateResponse",
    "TranscriptionResponse",
    "TranscriptionSegment",
    "Transport",
    "VoicePipelineResponse",
]


class RequestOptions(TypedDict, total=False):
    """Per-request options: snake_case or camelCase per option, never both."""

    client_request_id: str
    clientRequestId: str
    idempotency_key: str
    idempotencyKey: str
    timeout_seconds: float
    timeoutSeconds: float
    max_retries: int
    maxRetries: int
    retry_base_seconds: float
    retryBaseSeconds: float
    headers: Dict[str, str]


class ModelObject(TypedDict, total=False):
    id: str
    object: str
    created: int
    owned_by: str
    operations: List[str]
    voices: List[str]
    _request_id: str


class ModelListResponse(TypedDict, total=False):
    object: str
    data: List[ModelObject]
    _request_id: str


class CompletionUsage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionMessage(TypedDict, total=False):
    role: str
    content: Optional[str]
    tool_calls: List[Dict[str, Any]]


class ChatCompletionChoice(TypedDict, total=False):
    index: int
    message: ChatCompletionMessage
    finish_reason: Optional[str]
    logprobs: Optional[Dict[str, Any]]


class ChatCompletionResponse(TypedDict, total=False):
    id: str
    object: str
    created: int
    model: str
    choices: List[ChatCompletionChoice]
    usage: CompletionUsage
    system_fingerprint: Optional[str]
    _request_id: str
    _idempotent_replay: bool


class ResponseOutputText(TypedDict, total=False):
    type: str
    text: str
    annotations: List[Any]


class ResponseOutputMessage(TypedDict, total=False):
    id: str
    type: str
    role: str
    status: str
    content: List[ResponseOutputText]


class ResponseUsage(TypedDict, total=False):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ResponsesCreateResponse(TypedDict, total=False):
    id: str
    object: str
    created_at: int
    status: str
    model: str
    output: List[ResponseOutputMessage]
    output_text: str
    usage: ResponseUsage
    incomplete_details: Optional[Dict[str, Any]]
    _request_id: str
    _idempotent_replay: bool


class EmbeddingObject(TypedDict, total=False):
    object: str
    index: int
    embedding: List[float]


class EmbeddingUsage(TypedDict, total=False):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(TypedDict, total=False):
    object: str
    model: str
    data: List[EmbeddingObject]
    usage: EmbeddingUsage
    _request_id: str
    _idempotent_replay: bool


class ImageObject(TypedDict, total=False):
    url: str
    b64_json: str
    revised_prompt: str


class ImageGenerationResponse(TypedDict, total=False):
    created: int
    data: List[ImageObject]
    _request_id: str
    _idempotent_replay: bool


class TranscriptionSegment(TypedDict, total=False):
    id: int
    start: float
    end: float
    text: str


class TranscriptionResponse(TypedDict, total=False):
    text: str
    language: str
    duration: float
    segments: List[TranscriptionSegment]
    _request_id: str
    _idempotent_replay: bool


class VoicePipelineResponse(TypedDict, total=False):
    object: str
    modality: str
    model: Union[str, Dict[str, str]]
    transcript: str
    response_text: str
    audio_base64: str
    content_type: str
    usage: Dict[str, Any]
    latency_ms: Union[float, Dict[str, float]]
    _request_id: str
    _idempotent_replay: bool


Transport = Callable[[RunInfraRequest], RunInfraResponse]
"""What ``RunInfra(transport=...)`` accepts: a callable from request to response."""
