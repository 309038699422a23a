"""RunInfra: a sync, zero-dependency client for RunInfra inference gateways.

The public API is exactly ``__all__``; every ``_module`` is private.
"""

from ._client import RunInfra, Transport
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
from ._types import (
    AudioResponse,
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
    VoicePipelineResponse,
)
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
