"""The multipart builder: whatever the content, a standard parser gets every part back intact."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runinfra import RunInfraError
from runinfra._multipart import build_multipart, check_content_type, check_filename

field_names = st.sampled_from(["model", "language", "prompt", "response_format", "temperature"])
field_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
filenames = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='"\\/'), min_size=1, max_size=30
).filter(lambda name: name.strip() and name.isprintable() and name not in (".", ".."))


def _parse(body: bytes, content_type: str) -> Dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert message.is_multipart()
    parts: Dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = part.get_payload(decode=True)
    return parts


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(
    fields=st.dictionaries(field_names, field_values, max_size=5),
    filename=filenames,
    content=st.binary(min_size=1, max_size=500),
)
def test_round_trip(fields: Dict[str, str], filename: str, content: bytes) -> None:
    body, content_type = build_multipart(fields, "file", check_filename(filename), "audio/wav", content)
    parts = _parse(body, content_type)
    assert parts["file"] == content
    for name, value in fields.items():
        # a text part's line endings travel as written; the email parser may normalise them
        assert parts[name].replace(b"\r\n", b"\n") == value.encode().replace(b"\r\n", b"\n")


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(st.binary(min_size=1, max_size=200))
def test_boundary_never_occurs_in_content(content: bytes) -> None:
    body, content_type = build_multipart({}, "file", "a.wav", "audio/wav", content)
    boundary = content_type.split("boundary=")[1].encode()
    assert body.count(b"--" + boundary) == 2
    assert boundary not in content


@pytest.mark.parametrize("name", ["", " ", 'a"b', "a\\b", "a/b", "a\nb", "a\x00b", ".", "..", "x" * 256])
def test_bad_filenames(name: str) -> None:
    with pytest.raises(RunInfraError):
        check_filename(name)


@pytest.mark.parametrize("value", ["audio", "/wav", "audio/", "audio/wav; x=1", "a b/c", "audio/wav\r\nX: y", 3])
def test_bad_content_types(value: object) -> None:
    with pytest.raises(RunInfraError):
        check_content_type(value)
