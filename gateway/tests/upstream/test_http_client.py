"""The upstream HTTP/1.1 client against raw TCP servers that answer exactly the bytes a test needs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from runinfra_gateway.backends._http_client import Endpoint
from runinfra_gateway.backends.upstream import UpstreamBackend
from runinfra_gateway.errors import GatewayError

from .helpers import backend, refusal

pytestmark = pytest.mark.anyio

CHAT = {"model": "dep", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = orjson.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
})
Conversation = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Conversation], Awaitable[tuple[str, list[int]]]]]:
    servers: list[asyncio.Server] = []

    async def start(conversation: Conversation) -> tuple[str, list[int]]:
        connections: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(len(connections))
            try:
                await conversation(reader, writer, len(connections))
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1", connections

    yield start
    for server in servers:
        server.close()


async def test_a_retry_after_that_is_not_ascii_digits_counts_as_one_second(
    raw_server: Callable[..., Awaitable[tuple[str, list[int]]]],
) -> None:
    body = b'{"error": {"message": "overloaded"}}'

    async def overloaded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        # 0xB2 is "²" in latin-1: str.isdigit() says yes, int() says no.
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: \xb2\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()

    url, _ = await raw_server(overloaded)
    b = backend(url)
    try:
        with pytest.raises(GatewayError) as caught:
            await b.chat(CHAT)
    finally:
        await b.aclose()
    assert (caught.value.status, caught.value.type) == (503, "deployment_error")
    assert caught.value.headers["retry-after"] == "1"


async def test_keep_alive_connections_are_reused(raw_server: Callable[..., Awaitable[tuple[str, list[int]]]]) -> None:
    async def conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            request = await read_request(reader)
            assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(COMPLETION), COMPLETION))
            await writer.drain()

    url, connections = await raw_server(conversation)
    b = backend(url)
    try:
        for _ in range(5):
            assert (await b.chat(CHAT))["id"] == "chatcmpl-1"
    finally:
        await b.aclose()
    assert len(connections) == 1


async def test_a_stale_kept_alive_connection_is_retried_on_a_fresh_one(
    raw_server: Callable[..., Awaitable[tuple[str, list[int]]]],
) -> None:
    async def conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(COMPLETION), COMPLETION))
        await writer.drain()
        await read_request(reader)  # the next request on this connection is dropped unanswered

    url, connections = await raw_server(conversation)
    b = backend(url)
    try:
        for _ in range(3):
            assert (await b.chat(CHAT))["id"] == "chatcmpl-1"
    finally:
        await b.aclose()
    assert len(connections) == 3


async def test_close_delimited_and_chunked_bodies(raw_server: Callable[..., Awaitable[tuple[str, list[int]]]]) -> None:
    async def conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        if number == 1:  # HTTP/1.0 style: no length, the body ends with the connection
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + COMPLETION)
        else:
            half = len(COMPLETION) // 2
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                         % (half, COMPLETION[:half], len(COMPLETION) - half, COMPLETION[half:]))
        await writer.drain()

    url, _ = await raw_server(conversation)
    b = backend(url)
    try:
        assert (await b.chat(CHAT))["id"] == "chatcmpl-1"
        assert (await b.chat(CHAT))["id"] == "chatcmpl-1"
    finally:
        await b.aclose()


@pytest.mark.parametrize(
    "answer",
    [b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial\":"],
    ids=["garbage", "short-body"],
)
async def test_invalid_or_cut_responses_are_deployment_errors(
    raw_server: Callable[..., Awaitable[tuple[str, list[int]]]], answer: bytes
) -> None:
    async def conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    url, _ = await raw_server(conversation)
    b = backend(url)
    error = await refusal(b, b.chat(CHAT))
    assert (error.status, error.type) == (502, "deployment_error")
    assert b.replicas[0].in_flight == 0


def test_endpoint_parts() -> None:
    plain = Endpoint.from_url("http://127.0.0.1:8000/v1")
    assert (plain.host, plain.port, plain.base_path, plain.host_header) == ("127.0.0.1", 8000, "/v1", b"127.0.0.1:8000")
    tls = Endpoint.from_url("https://api.example.com/openai/v1/")
    assert (tls.port, tls.base_path, tls.host_header) == (443, "/openai/v1", b"api.example.com")
    v6 = Endpoint.from_url("http://[::1]:9000")
    assert (v6.host, v6.host_header, v6.base_path) == ("::1", b"[::1]:9000", "")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runinfra test engine")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "engine.pem", directory / "engine.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_engine_with_a_private_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(COMPLETION), COMPLETION))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(conversation, "127.0.0.1", 0, ssl=context)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    trusting = UpstreamBackend.from_config("dep", {"base_url": url, "tls_ca_file": str(cert),
                                                   "health_check_interval_seconds": 0})
    default = backend(url)
    try:
        assert (await trusting.chat(CHAT))["id"] == "chatcmpl-1"
        with pytest.raises(GatewayError) as caught:
            await default.chat(CHAT)  # the system's CAs do not know this engine's certificate
    finally:
        await trusting.aclose()
        await default.aclose()
        server.close()
    assert caught.value.status == 502
    assert "TLS handshake failed" in caught.value.message


async def test_streams_keep_their_connection_when_the_body_ends_after_done(
    raw_server: Callable[..., Awaitable[tuple[str, list[int]]]],
) -> None:
    event = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}\n\n'
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n'

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    async def conversation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(chunk(event) + chunk(usage) + chunk(b"data: [DONE]\n\n"))
            await writer.drain()
            await asyncio.sleep(0.05)  # the chunked terminator comes a little after [DONE], as from uvicorn
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    url, connections = await raw_server(conversation)
    b = backend(url)
    try:
        for _ in range(3):
            chunks = [c async for c in b.chat_stream(CHAT)]
            assert [c.data.get("usage") is not None for c in chunks] == [False, True]
            await asyncio.sleep(0.1)  # the terminator arrives; the connection goes back to the pool
    finally:
        await b.aclose()
    assert len(connections) == 1
