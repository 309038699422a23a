"""``multipart/form-data`` bodies for file uploads, built in memory after validation."""

from __future__ import annotations

import os

from ._errors import invalid_options

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Mapping, Tuple

__all__ = ["build_multipart", "check_content_type", "check_filename"]

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_FILENAME_FORBIDDEN = frozenset('"\\/')


def check_filename(filename: object) -> str:
    """A filename that fits a ``Content-Disposition`` header without escaping or injection."""
    if not isinstance(filename, str) or not filename.strip():
        raise invalid_options("filename must be a non-blank string", param="filename")
    if len(filename) > 255:
        raise invalid_options("filename must be at most 255 characters", param="filename")
    if not filename.isprintable() or set(filename) & _FILENAME_FORBIDDEN:
        raise invalid_options(
            "filename must not contain control characters, quotes, slashes or backslashes", param="filename"
        )
    if filename in (".", ".."):
        raise invalid_options("filename must name a file", param="filename")
    return filename


def check_content_type(content_type: object, name: str = "content_type") -> str:
    """A bare ``type/subtype`` media type (parameters are not needed for uploads)."""
    if not isinstance(content_type, str):
        raise invalid_options(f"{name} must be a string like 'audio/wav'", param=name)
    kind, slash, subtype = content_type.partition("/")
    if not slash or not kind or not subtype or len(content_type) > 127:
        raise invalid_options(f"{name} must be a media type like 'audio/wav'", param=name)
    if not set(kind) <= _TOKEN_CHARS or not set(subtype) <= _TOKEN_CHARS:
        raise invalid_options(f"{name} must be a media type like 'audio/wav'", param=name)
    return content_type


def build_multipart(
    fields: Mapping[str, str], file_field: str, filename: str, content_type: str, content: bytes
) -> Tuple[bytes, str]:
    """The body and its ``Content-Type`` header; text fields first, then the file.

    Field names and text values are the SDK's own or validated strings; the boundary is
    random and checked against the content so it can never occur inside a part.
    """
    encoded = {name: value.encode("utf-8") for name, value in fields.items()}
    while True:
        boundary = "runinfra-" + os.urandom(16).hex()
        marker = boundary.encode("ascii")
        if marker not in content and not any(marker in value for value in encoded.values()):
            break
    parts = []
    for name, value in encoded.items():
        parts.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (marker, name.encode("ascii")))
        parts.append(value)
        parts.append(b"\r\n")
    parts.append(
        b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n'
        % (marker, file_field.encode("ascii"), filename.encode("utf-8"), content_type.encode("ascii"))
    )
    parts.append(content)
    parts.append(b"\r\n--%s--\r\n" % marker)
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
