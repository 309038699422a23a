"""The pooled transport over real sockets: keep-alive, threads, short bodies, stalls, TLS, proxies, fork."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Tuple

import pytest
from runinfra import RunInfra, RunInfraConnectionError, RunInfraError, RunInfraTimeoutError
from runinfra._transport import HTTPTransport
from sdk_servers import API_KEY, Exchange, Proxy, ScriptedServer, json_handler

MODELS = json_handler({"object": "list", "data": []})


def _client(server: ScriptedServer, **kw: object) -> RunInfra:
    options = {"max_retries": 0, "timeout_seconds": 5.0}
    options.update(kw)
    return RunInfra(api_key=API_KEY, base_url=server.url, **options)  # type: ignore[arg-type]


def test_keep_alive_reuses_one_connection(server: ScriptedServer) -> None:
    server.on("GET", "/v1/models", MODELS)
    with _client(server) as client:
        for _ in range(20):
            client.models.list()
    assert server.connections == 1
    assert {r.connection_id for r in server.requests} == {1}


def test_threads_share_a_pool(server: ScriptedServer) -> None:
    server.on("GET", "/v1/models", MODELS)
    client = _client(server)
    errors = []

    def work() -> None:
        try:
            for _ in range(25):
                client.models.list()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert errors == []
    assert len(server.requests) == 200
    assert server.connections <= 8


def test_server_closing_an_idle_connection_is_survived(server: ScriptedServer) -> None:
    def close_after(exchange: Exchange) -> None:
        exchange.respond_json({"data": []}, headers={"Connection": "close"})
        exchange.drop()

    server.on("POST", "/v1/embeddings", close_after)
    with _client(server) as client:
        for _ in range(3):
            client.embeddings.create(model="e", input="x")  # a plain POST: never retried
    assert server.connections == 3


def test_idle_connection_dropped_by_server_is_detected_before_reuse(server: ScriptedServer) -> None:
    def respond_then_drop(exchange: Exchange) -> None:
        exchange.respond_json({"data": []})
        time.sleep(0.05)
        exchange.drop()  # no "Connection: close": the client only learns by probing

    server.on("POST", "/v1/embeddings", respond_then_drop)
    with _client(server) as client:
        client.embeddings.create(model="e", input="x")
        time.sleep(0.2)
        client.embeddings.create(model="e", input="x")
    assert server.connections == 2


def test_short_content_length_is_a_connection_error(server: ScriptedServer) -> None:
    def short(exchange: Exchange) -> None:
        exchange.send_raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: req_s\r\n"
                          b"Content-Length: 100\r\n\r\n{\"data\": [")  # fmt: skip
        exchange.drop()

    server.on("GET", "/v1/models", short)
    with pytest.raises(RunInfraConnectionError) as caught:
        _client(server).models.list()
    assert caught.value.request_id == "req_s"


def test_truncated_chunked_body_is_a_connection_error(server: ScriptedServer) -> None:
    def truncated(exchange: Exchange) -> None:
        exchange.start_chunked(content_type="application/json")
        exchange.chunk(b'{"data": []')
        exchange.drop()

    server.on("GET", "/v1/models", truncated)
    with pytest.raises(RunInfraConnectionError) as caught:
        _client(server).models.list()
    assert caught.value.request_id == "req_stream"


def test_stalled_headers_and_body_time_out(server: ScriptedServer) -> None:
    release = threading.Event()

    def stall_headers(exchange: Exchange) -> None:
        release.wait(2)

    def stall_body(exchange: Exchange) -> None:
        exchange.send_raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: req_b\r\n"
                          b"Content-Length: 20\r\n\r\n{")  # fmt: skip
        release.wait(2)

    server.on("GET", "/v1/models", stall_headers)
    server.on("POST", "/v1/embeddings", stall_body)
    client = _client(server, timeout_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(RunInfraTimeoutError) as caught:
        client.models.list()
    assert caught.value.request_id is None
    with pytest.raises(RunInfraTimeoutError) as caught:
        client.embeddings.create(model="e", input="x")
    assert caught.value.request_id == "req_b"
    assert time.monotonic() - started < 1.5
    release.set()


def test_per_request_timeout_overrides_the_client(server: ScriptedServer) -> None:
    release = threading.Event()
    server.on("GET", "/v1/models", lambda exchange: release.wait(2))
    client = _client(server, timeout_seconds=30)
    started = time.monotonic()
    with pytest.raises(RunInfraTimeoutError):
        client.models.list(request_options={"timeout_seconds": 0.2})
    assert time.monotonic() - started < 1.5
    release.set()


def test_connection_refused_is_a_connection_error() -> None:
    with pytest.raises(RunInfraConnectionError):
        RunInfra(api_key=API_KEY, base_url="http://127.0.0.1:1/v1", max_retries=0).models.list()


def test_closed_client_refuses_requests(server: ScriptedServer) -> None:
    server.on("GET", "/v1/models", MODELS)
    with _client(server) as client:
        client.models.list()
    with pytest.raises(RunInfraConnectionError):
        client.models.list()
    server.wait_for_requests(1)
    assert len(server.requests) == 1


def test_tls_with_a_local_ca(
    monkeypatch: pytest.MonkeyPatch, tls_server: ScriptedServer, certificates: Tuple[Path, Path, Path]
) -> None:
    tls_server.on("GET", "/v1/models", MODELS)
    with pytest.raises(RunInfraConnectionError) as caught:
        _client(tls_server).models.list()  # the system trust store does not know the test CA
    assert "certificate" in caught.value.message.lower()
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates[0]))
    with _client(tls_server) as client:
        for _ in range(5):
            client.models.list()
    assert len(tls_server.requests) == 5
    assert tls_server.connections == 2  # one refused handshake, then one kept-alive connection


def test_https_through_a_connect_proxy(
    monkeypatch: pytest.MonkeyPatch,
    tls_server: ScriptedServer,
    proxy: Proxy,
    certificates: Tuple[Path, Path, Path],
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates[0]))
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    tls_server.on("GET", "/v1/models", MODELS)
    with _client(tls_server) as client:
        client.models.list()
        client.models.list()
    assert proxy.seen[0][0] == "CONNECT"
    assert proxy.seen[0][1] == f"localhost:{tls_server.port}"
    assert proxy.seen[0][2] == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert len(proxy.seen) == 1  # the tunnel is kept alive
    assert tls_server.requests[0].headers.get("proxy-authorization") is None


def test_http_through_a_forwarding_proxy_and_no_proxy(
    monkeypatch: pytest.MonkeyPatch, server: ScriptedServer, proxy: Proxy
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    server.on("GET", "/v1/models", MODELS)
    _client(server).models.list()
    assert proxy.seen == [("GET", f"{server.url}/models", None)]
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    _client(server).models.list()
    assert len(proxy.seen) == 1
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "value",
    ["socks5://127.0.0.1:1080", "http://127.0.0.1:\u00b2", "http://127.0.0.1:99999", "http://:8080",
     "socks5://user:hunter2@127.0.0.1:1080", "http://user:hunter2@127.0.0.1:99999"],
)
def test_bad_proxy_variable_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HTTPS_PROXY", value)  # "²" passes str.isdigit() and fails int()
    with pytest.raises(RunInfraError) as caught:
        RunInfra(api_key=API_KEY)
    assert caught.value.type == "invalid_request_options"
    assert caught.value.param == "HTTPS_PROXY"
    assert "hunter2" not in str(caught.value)  # the proxy password is never echoed
    assert "hunter2" not in repr(caught.value)


def test_fork_gives_the_child_fresh_pools(server: ScriptedServer) -> None:
    server.on("GET", "/v1/models", MODELS)
    client = _client(server)
    client.models.list()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            transport = client.transport
            assert isinstance(transport, HTTPTransport)
            client.models.list()
            status = 0 if transport.connections_opened == 2 else 3
        finally:
            os.write(write_end, bytes([status]))
            os._exit(0)
    os.close(write_end)
    child_status = os.read(read_end, 1)
    os.waitpid(pid, 0)
    assert child_status == b"\x00"
    client.models.list()  # the parent's pooled connection is untouched
    assert server.connections == 2


def test_oversized_bodies_are_refused(server: ScriptedServer) -> None:
    def declared(exchange: Exchange) -> None:
        exchange.respond(200, b"x" * 5000)

    def chunked(exchange: Exchange) -> None:
        exchange.start_chunked(content_type="application/json")
        for _ in range(5):
            exchange.chunk(b"x" * 1000)
        exchange.end_chunks()

    server.on("GET", "/v1/models", declared)
    server.on("POST", "/v1/embeddings", chunked)
    transport = HTTPTransport(max_response_bytes=4096)
    client = RunInfra(api_key=API_KEY, base_url=server.url, max_retries=0, transport=transport)
    with pytest.raises(RunInfraConnectionError) as caught:
        client.models.list()
    assert "limit" in caught.value.message
    with pytest.raises(RunInfraConnectionError):
        client.embeddings.create(model="e", input="x")
    transport.close()


def test_chunked_json_body_is_read_and_the_connection_reused(server: ScriptedServer) -> None:
    def chunked(exchange: Exchange) -> None:
        exchange.start_chunked(content_type="application/json")
        exchange.chunk(b'{"object": "list", ')
        exchange.chunk(b'"data": []}')
        exchange.end_chunks()

    server.on("GET", "/v1/models", chunked)
    with _client(server) as client:
        for _ in range(3):
            assert client.models.list()["data"] == []
    assert server.connections == 1


def test_endless_header_line_is_a_connection_error(server: ScriptedServer) -> None:
    def endless(exchange: Exchange) -> None:
        exchange.send_raw(b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * 70000 + b"\r\n\r\n")
        exchange.drop()

    server.on("GET", "/v1/models", endless)
    with pytest.raises(RunInfraConnectionError):
        _client(server).models.list()


def test_failures_a_retry_cannot_mend_are_not_retried(server: ScriptedServer, tls_server: ScriptedServer) -> None:
    # An oversized body, a refused certificate and a closed client fail the same way every time:
    # retrying only repeats the download or the handshake, after a sleep.
    server.on("GET", "/v1/models", lambda exchange: exchange.respond(200, b"x" * 5000))
    transport = HTTPTransport(max_response_bytes=4096)
    client = RunInfra(api_key=API_KEY, base_url=server.url, max_retries=2, retry_base_seconds=0.5, transport=transport)
    started = time.monotonic()
    with pytest.raises(RunInfraConnectionError):
        client.models.list()
    assert len(server.requests) == 1
    transport.close()
    with pytest.raises(RunInfraConnectionError):
        client.models.list()
    tls_server.on("GET", "/v1/models", MODELS)
    with pytest.raises(RunInfraConnectionError) as refused:
        _client(tls_server, max_retries=2, retry_base_seconds=0.5).models.list()  # the test CA is not trusted
    assert "certificate" in refused.value.message.lower()
    assert time.monotonic() - started < 0.5
