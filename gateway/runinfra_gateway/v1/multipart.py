"""Parsing a ``multipart/form-data`` upload (the transcription route) into fields and one file.

The raw body is kept as well: an upstream deployment receives the client's
bytes unchanged. Anything malformed is a 400 naming what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from runinfra_gateway import errors

__all__ = ["MAX_PARTS", "FormData", "parse_form"]

_MAX_FIELD_BYTES = 64 * 1024
#: A transcription form has a file and about ten fields. The parser works per part in Python on the event
#: loop, so a body of 100,000 empty parts (6 MB) would hold every other request for about 1.5 s.
MAX_PARTS = 64


class _TooManyParts(Exception):
    pass


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)


@dataclass
class FormData:
    fields: dict[str, str]
    file: bytes | None
    filename: str
    file_content_type: str


def _bad(message: str, param: str | None = None) -> errors.GatewayError:
    return errors.invalid_request(message, code="invalid_value", param=param)


def parse_form(body: bytes, content_type: bytes | None, *, file_field: str = "file") -> FormData:
    if content_type is None:
        raise errors.invalid_request("Send 'Content-Type: multipart/form-data'.", code="unsupported_media_type")
    media, options = parse_options_header(content_type)
    if media != b"multipart/form-data":
        shown = content_type[:80].decode("latin-1")
        raise errors.invalid_request(
            f"Content-Type {shown!r} is not supported here; send multipart/form-data.", code="unsupported_media_type"
        )
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise _bad("The multipart Content-Type has no usable boundary.")

    parts: list[_Part] = []
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        if len(parts) == MAX_PARTS:
            raise _TooManyParts
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1].headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except _TooManyParts:
        raise _bad(f"The multipart body has more than {MAX_PARTS} parts.") from None
    except Exception as exc:  # python-multipart raises several types for malformed input
        raise _bad(f"The multipart body is malformed: {type(exc).__name__}.") from None
    if not parts:
        raise _bad("The multipart body has no parts.")

    fields: dict[str, str] = {}
    file: bytes | None = None
    filename = ""
    file_type = "application/octet-stream"
    for part in parts:
        disposition = part.headers.get(b"content-disposition")
        if disposition is None:
            raise _bad("A multipart part has no Content-Disposition.")
        kind, params = parse_options_header(disposition)
        name_raw = params.get(b"name")
        if kind != b"form-data" or name_raw is None:
            raise _bad("A multipart part is not a named form-data field.")
        try:
            name = name_raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("A multipart field name is not UTF-8.") from None
        if name == file_field:
            if file is not None:
                raise _bad(f"The multipart body has more than one {file_field!r} part.")
            file = bytes(part.data)
            filename = params.get(b"filename", b"upload").decode("utf-8", "replace")[:200]
            file_type = part.headers.get(b"content-type", b"application/octet-stream").decode("latin-1")[:100]
            continue
        if name in fields:
            if name.endswith("[]"):  # an array field (OpenAI's ``timestamp_granularities[]``): one entry per value
                continue
            raise _bad(f"The multipart field {name!r} appears twice.", name)
        if len(part.data) > _MAX_FIELD_BYTES:
            raise _bad(f"The multipart field {name!r} is over {_MAX_FIELD_BYTES // 1024} KiB.", name)
        try:
            fields[name] = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(f"The multipart field {name!r} is not UTF-8 text.", name) from None
    return FormData(fields=fields, file=file, filename=filename, file_content_type=file_type)
