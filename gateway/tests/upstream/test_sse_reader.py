"""The incremental SSE parser: framing rules, and that how bytes are split never changes what comes out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runinfra_gateway.backends._sse_reader import SSEOverflow, SSEReader


def parse_all(pieces: list[bytes]) -> list[bytes]:
    reader = SSEReader()
    out: list[bytes] = []
    for piece in pieces:
        out.extend(reader.feed(piece))
    return out + reader.close()


def test_single_line_events_in_one_read() -> None:
    assert parse_all([b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n']) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]


def test_comments_keepalives_and_other_fields_are_skipped() -> None:
    stream = b': keepalive\n\nevent: message\nid: 7\nretry: 100\ndata: {"a":1}\n\n:ping\n\n'
    assert parse_all([stream]) == [b'{"a":1}']


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert parse_all([b"data: {\ndata: \"a\": 1\ndata:}\n\n"]) == [b'{\n"a": 1\n}']


def test_crlf_and_cr_line_endings() -> None:
    assert parse_all([b"data: 1\r\n\r\ndata: 2\r\rdata: 3\n\n"]) == [b"1", b"2", b"3"]


def test_crlf_split_between_reads() -> None:
    assert parse_all([b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"]) == [b"1", b"2"]


def test_incomplete_event_is_held_until_its_blank_line() -> None:
    reader = SSEReader()
    assert reader.feed(b'data: {"a"') == []
    assert reader.feed(b":1}\n") == []
    assert reader.feed(b"\n") == [b'{"a":1}']


def test_final_event_without_blank_line_counts_only_when_its_line_is_complete() -> None:
    assert parse_all([b"data: 1\n\ndata: [DONE]\n"]) == [b"1", b"[DONE]"]
    assert parse_all([b"data: 1\n\ndata: [DON"]) == [b"1"]


def test_data_without_space_after_colon() -> None:
    assert parse_all([b"data:{}\n\n"]) == [b"{}"]


def test_an_event_past_the_size_limit_is_refused() -> None:
    reader = SSEReader(max_event_bytes=1024)
    reader.feed(b"data: " + b"a" * 1000)
    with pytest.raises(SSEOverflow):
        reader.feed(b"a" * 100)


payload_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), min_size=0, max_size=40
)


@given(
    payloads=st.lists(payload_text.map(lambda s: s.encode()), min_size=1, max_size=8),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    comments=st.booleans(),
)
def test_any_split_of_any_stream_yields_the_same_payloads(
    payloads: list[bytes], newline: bytes, cuts: list[int], comments: bool
) -> None:
    stream = b""
    for payload in payloads:
        if comments:
            stream += b": keepalive" + newline + newline
        stream += b"data: " + payload + newline + newline
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    pieces = [stream[a:b] for a, b in zip(points, points[1:])]
    assert parse_all(pieces) == payloads
