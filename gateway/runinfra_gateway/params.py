"""Which request fields a deployment accepts, per operation; anything else is refused by name.

Each operation has *core* fields every deployment of it takes (the ones that
say what to do: ``model``, ``messages``, ``stream``...) and *optional*
parameters a deployment supports only if it says so: an embedded engine
describes its own, an upstream deployment lists them in ``params`` or gets the
SDK's typed subset below. A field outside both is a 400
``unsupported_parameter`` naming it, never silently dropped.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

from runinfra_gateway import errors

__all__ = ["CORE_FIELDS", "DEFAULT_OPTIONAL", "allowed_fields", "check_fields"]

CORE_FIELDS: Mapping[str, frozenset[str]] = {
    "chat.completions": frozenset({"model", "messages", "stream", "stream_options"}),
    # Responses requests are converted to chat first; the adapter refuses what it cannot convert.
    "responses": frozenset({"model", "messages", "stream", "stream_options"}),
    "embeddings": frozenset({"model", "input", "encoding_format"}),
    "images.generate": frozenset({"model", "prompt", "n", "response_format"}),
    "audio.speech": frozenset({"model", "input", "voice", "response_format"}),
    "audio.transcriptions": frozenset({"model", "file", "response_format", "language", "prompt"}),
}

DEFAULT_OPTIONAL: Mapping[str, frozenset[str]] = {
    "chat.completions": frozenset(
        {"temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty", "user", "metadata"}
    ),
    "responses": frozenset(
        {"temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty", "user", "metadata"}
    ),
    "embeddings": frozenset({"user"}),
    "images.generate": frozenset({"size"}),
    "audio.speech": frozenset({"speed"}),
    "audio.transcriptions": frozenset(),
}


def allowed_fields(operation: str, optional: Collection[str] | None) -> frozenset[str]:
    """Core fields of ``operation`` plus the deployment's optional ones (or the default subset)."""
    extra = DEFAULT_OPTIONAL.get(operation, frozenset()) if optional is None else frozenset(optional)
    return CORE_FIELDS.get(operation, frozenset()) | extra


def check_fields(body: Mapping[str, Any], allowed: frozenset[str], deployment_id: str) -> None:
    for name in body:
        if name not in allowed:
            raise errors.unsupported_parameter(name, deployment_id)
