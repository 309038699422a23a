"""Request-field checks that run before any network request is sent.

Every failure is a ``RunInfraError`` with ``type == "invalid_request_options"`` and ``param``
naming the field, so bad input never reaches the gateway or its billing path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ._errors import invalid_options

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Collection, Dict, List, Optional, Union

__all__ = [
    "check_bytes",
    "check_choice",
    "check_embedding_input",
    "check_messages",
    "check_model",
    "check_number",
    "check_positive_int",
    "check_responses_input",
    "check_text",
    "encode_json",
    "merge_extra_body",
]


def check_model(model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise invalid_options("model must be a non-blank string", param="model")
    return model


def check_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid_options(f"{name} must be a non-empty string", param=name)
    return value


def check_messages(messages: object) -> List[Any]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise invalid_options("messages must be a non-empty array of message objects", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise invalid_options(f"messages[{index}] must be an object", param="messages")
        role = message.get("role")
        if not isinstance(role, str) or not role.strip():
            raise invalid_options(f"messages[{index}].role must be a non-empty string", param="messages")
    return list(messages)


def check_responses_input(value: object) -> Union[str, List[Any]]:
    if isinstance(value, str):
        if not value.strip():
            raise invalid_options("input must be a non-empty string or array", param="input")
        return value
    if not isinstance(value, (list, tuple)) or not value:
        raise invalid_options("input must be a non-empty string or array", param="input")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise invalid_options(f"input[{index}] must be an object", param="input")
    return list(value)


def check_embedding_input(value: object) -> Union[str, List[str]]:
    if isinstance(value, str):
        if not value:
            raise invalid_options("input must be a non-empty string or array of non-empty strings", param="input")
        return value
    if not isinstance(value, (list, tuple)) or not value:
        raise invalid_options("input must be a non-empty string or array of non-empty strings", param="input")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise invalid_options(f"input[{index}] must be a non-empty string", param="input")
    return list(value)


def check_bytes(value: object, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise invalid_options(f"{name} must be non-empty bytes or bytearray", param=name)
    return bytes(value)


def check_choice(value: object, name: str, allowed: Collection[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise invalid_options(f"{name} must be one of {', '.join(sorted(allowed))}", param=name)
    return value


def check_number(value: object, name: str, *, minimum: Optional[float] = None, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid_options(f"{name} must be a finite number", param=name)
    if positive and value <= 0:
        raise invalid_options(f"{name} must be greater than 0", param=name)
    if minimum is not None and value < minimum:
        raise invalid_options(f"{name} must be at least {minimum}", param=name)
    return value


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_options(f"{name} must be a positive integer", param=name)
    return value


def merge_extra_body(body: Dict[str, Any], extra_body: object, typed_fields: Collection[str]) -> None:
    """Add ``extra_body`` to ``body``; it may add new gateway fields, never override typed ones."""
    if extra_body is None:
        return
    if not isinstance(extra_body, Mapping):
        raise invalid_options("extra_body must be a mapping", param="extra_body")
    for key, value in extra_body.items():
        if not isinstance(key, str) or not key:
            raise invalid_options("extra_body keys must be non-empty strings", param="extra_body")
        if key in typed_fields:
            raise invalid_options(
                f"extra_body cannot override the typed request field {key!r}; pass it as a parameter",
                param=key,
            )
        body[key] = value


_encoder: Any = None


def encode_json(body: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes; refuses NaN/Infinity and values JSON cannot represent."""
    global _encoder
    if _encoder is None:
        import json

        _encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
    try:
        return _encoder.encode(body).encode("ascii")  # type: ignore[no-any-return]
    except ValueError:
        raise invalid_options(
            "the request body must be JSON serializable with only finite numbers (no NaN, Infinity or cycles)"
        ) from None
    except (TypeError, RecursionError) as exc:
        raise invalid_options(f"the request body is not JSON serializable: {exc.__class__.__name__}") from None
