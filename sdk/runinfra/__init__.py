"""RunInfra: a sync, zero-dependency client for RunInfra inference gateways.

The public API is exactly ``__all__``; every ``_module`` is private. The TypedDict
contracts load on first use (they need ``typing``, which costs more start-up time than the
rest of the SDK); type checkers see them through the ``TYPE_CHECKING`` import below.
"""

from ._audio import AudioResponse
from ._client import RunInfra
from ._errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeploymentError,
    InsufficientCreditsError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunInfraAPIError,
    RunInfraConnectionError,
    RunInfraError,
    RunInfraRedirectError,
    RunInfraStreamParseError,
    RunInfraTimeoutError,
    RunInfraTransportError,
    UnsupportedOperationError,
    WebhookVerificationError,
)
from ._streaming import RunInfraStream
from ._version import __version__
from ._wire import RunInfraRequest, RunInfraResponse
from .webhooks import construct_webhook_event, verify_webhook_signature

__all__ = [
    "AudioResponse",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletionResponse",
    "ConflictError",
    "DeploymentError",
    "EmbeddingObject",
    "EmbeddingResponse",
    "ImageGenerationResponse",
    "ImageObject",
    "InsufficientCreditsError",
    "ModelListResponse",
    "ModelNotFoundError",
    "ModelObject",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestOptions",
    "ResponsesCreateResponse",
    "RunInfra",
    "RunInfraAPIError",
    "RunInfraConnectionError",
    "RunInfraError",
    "RunInfraRedirectError",
    "RunInfraRequest",
    "RunInfraResponse",
    "RunInfraStream",
    "RunInfraStreamParseError",
    "RunInfraTimeoutError",
    "RunInfraTransportError",
    "TranscriptionResponse",
    "Transport",
    "UnsupportedOperationError",
    "VoicePipelineResponse",
    "WebhookVerificationError",
    "__version__",
    "construct_webhook_event",
    "verify_webhook_signature",
]

_TYPED_DICTS = frozenset(
    {
        "ChatCompletionResponse",
        "EmbeddingObject",
        "EmbeddingResponse",
        "ImageGenerationResponse",
        "ImageObject",
        "ModelListResponse",
        "ModelObject",
        "RequestOptions",
        "ResponsesCreateResponse",
        "TranscriptionResponse",
        "Transport",
        "VoicePipelineResponse",
    }
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._types import (
        ChatCompletionResponse,
        EmbeddingObject,
        EmbeddingResponse,
        ImageGenerationResponse,
        ImageObject,
        ModelListResponse,
        ModelObject,
        RequestOptions,
        ResponsesCreateResponse,
        TranscriptionResponse,
        Transport,
        VoicePipelineResponse,
    )
del TYPE_CHECKING  # not part of the public namespace


def __getattr__(name: str) -> object:
    if name in _TYPED_DICTS:
        from . import _types

        value: object = getattr(_types, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'runinfra' has no attribute {name!r}")


def __dir__() -> list:  # type: ignore[type-arg]
    return sorted(set(globals()) | _TYPED_DICTS)
