"""Base URL rules, checked at construction: examples and properties."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runinfra import RunInfra, RunInfraError
from runinfra._base_url import parse_base_url, percent_encode
from sdk_servers import API_KEY


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "https://api.runinfra.ai/v1"),
        ("https://api.runinfra.ai/v1/", "https://api.runinfra.ai/v1"),
        ("HTTPS://API.RunInfra.ai:443/v1", "https://api.runinfra.ai/v1"),
        ("https://gw.example.com:8443/v1", "https://gw.example.com:8443/v1"),
        ("http://localhost:8080/v1", "http://localhost:8080/v1"),
        ("http://127.0.0.1/v1", "http://127.0.0.1/v1"),
        ("http://0.0.0.0:1/v1", "http://0.0.0.0:1/v1"),
        ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
        ("https://[2001:db8::1]/v1", "https://[2001:db8::1]/v1"),
        ("  https://api.runinfra.ai/v1\n", "https://api.runinfra.ai/v1"),
    ],
)
def test_accepted(raw: str, expected: str) -> None:
    assert RunInfra(api_key=API_KEY, base_url=raw).base_url == expected


@pytest.mark.parametrize(
    "raw",
    [
        "ftp://api.runinfra.ai/v1",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "api.runinfra.ai/v1",
        "//api.runinfra.ai/v1",
        "http://api.runinfra.ai/v1",  # remote plain http
        "http://10.0.0.1/v1",
        "http://localhost.evil.com/v1",
        "https://user:pass@api.runinfra.ai/v1",
        "https://user@api.runinfra.ai/v1",
        "https://api.runinfra.ai/v1?x=1",
        "https://api.runinfra.ai/v1?",
        "https://api.runinfra.ai/v1#frag",
        "https://api.runinfra.ai:0/v1",
        "https://api.runinfra.ai:65536/v1",
        "https://api.runinfra.ai:99999999999/v1",
        "https://api.runinfra.ai:-1/v1",
        "https://api.runinfra.ai:http/v1",
        "https://api.runinfra.ai:/v1",
        "https:///v1",
        "https://",
        "https://bad_host!/v1",
        "https://-bad.example/v1",
        "https://a..b/v1",
        "https://[::1/v1",
        "https://[zz::1]/v1",
        "https://::1/v1",
        "https://999.1.1.1/v1",
        "https://1.2.3/v1",
        "https://api.runinfra.ai/v 1",
        "https://api.runinfra.ai/v1/%zz",
        "https://api.runinfra.ai/v1/../admin",
        "https://api.runinfra.ai//v1",
        "https://api.runínfra.ai/v1",
        "https://api.runinfra.ai/v1\r\nX: y",
        "",
        "   ",
    ],
)
def test_refused(raw: str) -> None:
    with pytest.raises(RunInfraError) as caught:
        RunInfra(api_key=API_KEY, base_url=raw)
    assert caught.value.type == "invalid_request_options"
    assert caught.value.param == "base_url"
    assert "@" not in str(caught.value)  # user names and passwords in the URL are never echoed
    assert API_KEY not in str(caught.value)


def test_base_url_must_be_a_string() -> None:
    with pytest.raises(RunInfraError):
        RunInfra(api_key=API_KEY, base_url=b"https://x/v1")  # type: ignore[arg-type]


def test_pipeline_id_is_stripped_encoded_and_scoped_once() -> None:
    client = RunInfra(api_key=API_KEY, pipeline_id=" pipe/1 ")
    assert client.base_url == "https://api.runinfra.ai/v1/pipe%2F1"
    same = RunInfra(api_key=API_KEY, base_url="https://api.runinfra.ai/v1/pipe%2F1", pipeline_id="pipe/1")
    assert same.base_url == "https://api.runinfra.ai/v1/pipe%2F1"
    plain = RunInfra(api_key=API_KEY, base_url="https://api.runinfra.ai/v1/pipe_123", pipeline_id="pipe_123")
    assert plain.base_url == "https://api.runinfra.ai/v1/pipe_123"
    assert RunInfra(api_key=API_KEY, base_url="https://api.runinfra.ai/v1/pipe_123").pipeline_id == "pipe_123"
    assert RunInfra(api_key=API_KEY).pipeline_id is None


hosts = st.one_of(
    # host names whose last label starts with a letter (all-numeric names are refused as bad IPv4)
    st.from_regex(r"\A([a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\.){0,3}[a-z]([a-z0-9-]{0,20}[a-z0-9])?\Z"),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
segments = st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=1, max_size=12).filter(
    lambda segment: segment not in (".", "..")
)


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(host=hosts, port=st.integers(1, 65535), path=st.lists(segments, max_size=4))
def test_valid_https_urls_round_trip(host: str, port: int, path: list) -> None:
    raw = f"https://{host}:{port}/" + "/".join(path)
    parsed = parse_base_url(raw)
    assert parsed.scheme == "https"
    assert parsed.port == port
    assert parsed.prefix == ("/" + "/".join(path) if path else "")
    assert parse_base_url(parsed.url).url == parsed.url  # normalised form is a fixed point


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(st.text(max_size=60))
def test_any_text_is_accepted_or_refused_with_the_typed_error(raw: str) -> None:
    try:
        parsed = parse_base_url(raw)
    except RunInfraError as error:
        refused = error
    else:
        assert parsed.url.startswith(("https://", "http://"))
        assert "@" not in parsed.url.split("/")[2]
        assert "?" not in parsed.url
        assert "#" not in parsed.url
        return
    assert refused.type == "invalid_request_options"


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(st.text(min_size=1, max_size=40))
def test_percent_encode_is_reversible(text: str) -> None:
    from urllib.parse import unquote

    encoded = percent_encode(text)
    assert set(encoded) <= set(string.ascii_letters + string.digits + "-._~%")
    assert unquote(encoded, errors="surrogatepass") == text or max(text) >= "\ud800"
