"""Reading request-body fields with the 400 the contract asks for when one is wrong.

The request path has already refused parameters a deployment does not list;
these checks guard the values an engine is about to use, so a bad value is a
400 naming the field, never a crash inside a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors
from ..real_numbers import is_finite_number

__all__ = ["choice", "integer", "number", "required_text", "valid_unicode"]


def number(body: Mapping[str, Any], name: str, default: float, *, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not is_finite_number(value):
        raise errors.invalid_request(f"{name!r} must be a number.", param=name)
    if not low <= value <= high:
        raise errors.invalid_request(f"{name!r} must be between {low} and {high}.", param=name)
    return float(value)


def integer(body: Mapping[str, Any], name: str, default: int | None, *, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_request(f"{name!r} must be an integer.", param=name)
    if not low <= value <= high:
        raise errors.invalid_request(f"{name!r} must be between {low} and {high}.", param=name)
    return value


def valid_unicode(text: str, param: str) -> str:
    """``text`` unless it holds lone surrogates (JSON escapes like ``\\ud800`` that no engine can encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.invalid_request(f"{param!r} contains text that is not valid Unicode.", param=param) from None
    return text


def required_text(body: Mapping[str, Any], name: str, *, max_chars: int) -> str:
    value = body.get(name)
    if value is None:
        raise errors.invalid_request(f"{name!r} is required.", code="missing_field", param=name)
    if not isinstance(value, str) or not value.strip():
        raise errors.invalid_request(f"{name!r} must be a non-empty string.", param=name)
    if len(value) > max_chars:
        raise errors.invalid_request(f"{name!r} is longer than {max_chars} characters.", param=name)
    return valid_unicode(value, name)


def choice(body: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        raise errors.invalid_request(
            f"{name!r} must be one of {', '.join(allowed)}; got {str(value)[:40]!r}.", param=name
        )
    return value
