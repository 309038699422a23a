"""The edge: request ids everywhere, body limits, strict JSON, content types, routes and methods."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from runinfra_gateway.edge import MAX_HEAD_BYTES
from runinfra_gateway.testing import GatewayProcess

from .conftest import ADMIN_TOKEN, Tenant, admin, new_tenant, request

CHAT = "/chat/completions"
GOOD = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def _connect(gateway: GatewayProcess, timeout: float) -> socket.socket:
    parts = urlsplit(gateway.base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def _parsed(answer: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """The status line, headers (lower-case names) and body of one answer."""
    status_and_headers, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = status_and_headers.split(b"\r\n")
    headers = {k.decode().lower(): v.decode() for k, _, v in (line.partition(b": ") for line in lines)}
    return status, headers, body


def _raw(gateway: GatewayProcess, payload: bytes) -> bytes:
    """Send raw bytes on a socket and return everything the server answers before closing."""
    with _connect(gateway, timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and payload.startswith(b"GET"):
                break
        return b"".join(chunks)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/nope"), ("GET", "/v1/nope"),
     ("GET", "/v1/chat/completions"), ("POST", "/v1/models"), ("GET", "/admin/v1/keys"), ("GET", "/admin/v1/nope"),
     ("GET", "/dashboard/login")],
)
def test_every_response_carries_a_unique_request_id(gateway: GatewayProcess, method: str, path: str) -> None:
    first = request(gateway.base_url, method, path)
    second = request(gateway.base_url, method, path)
    assert first.headers["x-request-id"].startswith("req_")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_unknown_route_and_wrong_method(gateway: GatewayProcess, tenant: Tenant) -> None:
    missing = tenant.get("/does/not/exist")
    assert missing.status == 404
    assert missing.error["type"] == "not_found_error"
    wrong = tenant.get(CHAT)
    assert wrong.status == 405
    assert wrong.error["type"] == "invalid_request_error"
    assert wrong.headers["allow"] == "POST"


@pytest.mark.parametrize("path", ["/admin/v1/keys/", "/admin/v1/webhooks", "/admin/v1/workspaces/", "/dashboard",
                                  "/dashboard/credits/"])
def test_no_redirect_names_the_host_the_client_sent(gateway: GatewayProcess, path: str) -> None:
    # Starlette's trailing-slash redirect builds an absolute Location from the Host header: behind a proxy
    # that passes Host through, any site could make the gateway redirect its visitors elsewhere.
    answer = request(gateway.base_url, "GET", path, headers={"Host": "evil.example"}, key=ADMIN_TOKEN)
    assert "evil.example" not in answer.headers.get("location", "")
    if path == "/dashboard":
        assert (answer.status, answer.headers["location"]) == (308, "/dashboard/")
    else:
        assert answer.status == 404
    if path.startswith("/admin/"):
        assert answer.error["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("body", "content_type", "code", "needle"),
    [
        (b"{not json", "application/json", "invalid_json", "not valid JSON"),
        (b'{"model": "smollm2", "temperature": NaN}', "application/json", "invalid_json", "NaN"),
        (b'{"model": "smollm2", "temperature": Infinity}', "application/json", "invalid_json", "Infinity"),
        (b'{"model": "smollm2", "temperature": -Infinity}', "application/json", "invalid_json", "Infinity"),
        (b'{"model": "sm\xffollm2"}', "application/json", "invalid_json", "UTF-8"),
        (b'{"model": "smollm2", "temperature": 1e400}', "application/json", "invalid_json", "infinity"),
        (b'["a list"]', "application/json", "invalid_json", "JSON object"),
        (b"", "application/json", "invalid_json", "empty"),
        (b'{"model": "smollm2"}', "text/plain", "unsupported_media_type", "text/plain"),
        (b'{"model": "smollm2"}', "application/x-www-form-urlencoded", "unsupported_media_type", "form"),
        (b'{"model": "smollm2"}', "application/json; charset=latin-1", "unsupported_media_type", "UTF-8"),
    ],
)
def test_hostile_bodies_get_typed_400s(
    tenant: Tenant, body: bytes, content_type: str, code: str, needle: str
) -> None:
    response = tenant.post(CHAT, body, headers={"Content-Type": content_type})
    assert response.status == 400, response.body
    assert response.error["type"] == "invalid_request_error"
    assert response.error["code"] == code
    assert needle in response.error["message"]
    assert response.headers["x-request-id"]


def test_missing_content_type_is_refused(tenant: Tenant) -> None:
    response = tenant.post(CHAT, b'{"model": "smollm2"}')
    assert response.status == 400
    assert response.error["code"] == "unsupported_media_type"


def test_deeply_nested_json_is_refused_not_crashed(tenant: Tenant) -> None:
    body = b'{"model": "smollm2", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = tenant.post(CHAT, body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert response.error["code"] == "invalid_json"


def test_body_over_the_limit_is_413_by_declared_length(tenant: Tenant) -> None:
    # 25 MiB is the default limit; the declared length alone is enough to refuse.
    body = b"x" * (25 * 1024 * 1024 + 1)
    response = tenant.post(CHAT, body, headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert response.error["code"] == "request_too_large"
    assert response.headers["x-request-id"]


def test_chunked_body_over_the_limit_is_413(gateway: GatewayProcess, tenant: Tenant) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + tenant.key.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * (1024 * 1024)
    with _connect(gateway, timeout=20) as sock:
        sock.sendall(head)
        answer = b""
        try:
            for _ in range(30):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass  # the gateway may close the connection after answering
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"x-request-id: req_" in answer


def test_header_injection_in_client_request_id_is_not_reflected(gateway: GatewayProcess, tenant: Tenant) -> None:
    # A raw CR/LF inside a header value is a protocol error: the server refuses the request outright.
    answer = _raw(
        gateway,
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Client-Request-Id: a\rInjected: yes\r\n"
        b"Authorization: Bearer " + tenant.key.encode() + b"\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"Injected" not in answer
    assert b"x-request-id: req_" in answer
    # A hostile but well-formed value is not echoed anywhere and is dropped from the log.
    hostile = '{"status": 200} x' * 20
    response = tenant.get("/models", headers={"X-Client-Request-Id": hostile})
    assert response.status == 200
    assert hostile not in str(response.header_list)


def test_client_request_id_is_recorded_with_ours(gateway: GatewayProcess, tenant: Tenant) -> None:
    response = tenant.get("/models", headers={"X-Client-Request-Id": "client-trace-42"})
    assert response.status == 200
    rows = admin(gateway, "GET", f"/requests?workspace_id={tenant.workspace_id}").json()["data"]
    mine = [row for row in rows if row["request_id"] == response.headers["x-request-id"]]
    assert mine
    assert mine[0]["client_request_id"] == "client-trace-42"


def test_healthz_readyz_metrics(gateway: GatewayProcess) -> None:
    assert request(gateway.base_url, "GET", "/healthz").json() == {"status": "ok"}
    ready = request(gateway.base_url, "GET", "/readyz")
    # The session gateway has a deployment whose upstream is down: not ready, and it says which.
    assert ready.status == 503
    statuses = ready.json()["deployments"]
    assert statuses["smollm2"] == "active"
    assert statuses["dead-upstream"] == "failed"
    metrics = request(gateway.base_url, "GET", "/metrics")
    assert metrics.status == 200
    assert b"runinfra_requests_total" in metrics.body
    assert b'runinfra_deployment_active{deployment="smollm2"} 1.0' in metrics.body


def _exchange(gateway: GatewayProcess, sends: list[tuple[float, bytes]]) -> tuple[bytes, float]:
    """Send each piece after its delay (stop if the server closes), then read until it closes.

    Returns everything answered and the seconds from connecting to the close.
    """
    started = time.monotonic()
    with _connect(gateway, timeout=20) as sock:
        for delay, piece in sends:
            time.sleep(delay)
            try:
                sock.sendall(piece)
            except OSError:
                break  # the gateway answered and closed while we were still sending
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer += data
    return answer, time.monotonic() - started


def _refusal(gateway: GatewayProcess, head: bytes, *, then_stream: int = 0) -> tuple[bytes, dict[str, str], bytes]:
    """The status line, headers and body of the one answer to ``head`` (then ``then_stream`` bytes of "a")."""
    answer, _ = _exchange(gateway, [(0.0, head)] + [(0.0, b"a" * 65536)] * (then_stream // 65536))
    return _parsed(answer)


def test_an_endless_request_head_is_cut_off_with_431(gateway: GatewayProcess) -> None:
    # Without a cap the server keeps every header byte and never answers; with it, the head stops at 64 KiB.
    status, headers, body = _refusal(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", then_stream=8 << 20)
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert headers["x-request-id"].startswith("req_")
    assert headers["connection"] == "close"
    assert json.loads(body)["error"] == {
        "message": "The request line and headers are over 64 KiB.",
        "type": "invalid_request_error",
        "code": "request_headers_too_large",
        "param": None,
    }
    assert request(gateway.base_url, "GET", "/healthz").status == 200  # the gateway is unharmed


def test_many_headers_over_the_cap_are_431_and_just_under_it_are_served(gateway: GatewayProcess) -> None:
    def head(total: int) -> bytes:
        lines = [b"GET /healthz HTTP/1.1", b"Host: x", b"Connection: close"]
        size = sum(len(line) + 2 for line in lines) + 2
        index = 0
        while size < total:
            value = b"v" * min(4000, max(1, total - size - 20))
            line = b"X-Filler-%d: %s" % (index, value)
            lines.append(line)
            size += len(line) + 2
            index += 1
        return b"\r\n".join(lines) + b"\r\n\r\n"

    over, _, body = _refusal(gateway, head(MAX_HEAD_BYTES + 2000))
    assert over.startswith(b"HTTP/1.1 431"), body[:200]
    under, _, body = _refusal(gateway, head(MAX_HEAD_BYTES - 4000))
    assert under == b"HTTP/1.1 200 OK", body[:200]
    assert json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize(
    "line",
    [b"GET /he\x01lthz HTTP/1.1", b"GET /\xff\xfe HTTP/1.1", b"BREW /healthz HTTP/1.1", b"GET /healthz HTTP/9.9",
     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],  # the last: a TLS ClientHello on the plain port
)
def test_a_request_that_is_not_http_gets_the_json_400_with_a_request_id(gateway: GatewayProcess, line: bytes) -> None:
    status, headers, body = _refusal(gateway, line + b"\r\nHost: x\r\n\r\n")
    assert status == b"HTTP/1.1 400 Bad Request"
    assert headers["x-request-id"].startswith("req_")
    assert json.loads(body)["error"]["code"] == "invalid_http_request"


def test_a_large_body_in_the_same_read_as_its_head_is_not_counted_as_head(tenant: Tenant) -> None:
    # 1 MiB arrives with the head in the first reads; only the head counts toward the cap.
    response = tenant.post(CHAT, b"x" * (1 << 20), headers={"Content-Type": "application/json"})
    assert response.status == 400, response.body[:200]
    assert response.error["code"] == "invalid_json"


def test_pipelined_requests_each_start_a_fresh_head(gateway: GatewayProcess) -> None:
    # Three requests in one write, each head 40 KiB: together over the cap, each one under it.
    filler = b"X-Filler: " + b"v" * (40 * 1024) + b"\r\n"
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"Connection: close\r\n\r\n"
    answer, _ = _exchange(gateway, [(0.0, one + one + last)])
    assert answer.count(b"HTTP/1.1 200 OK") == 3, answer[:300]
    assert b"431" not in answer


def test_a_whole_response_arrives_in_one_read(gateway: GatewayProcess, tenant: Tenant) -> None:
    # Head and body leave in one write: a client reading once has the whole response, never the head alone.
    requests = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tenant.key.encode() + b"\r\n\r\n",
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Authorization: Bearer " + tenant.key.encode() + b"\r\n\r\n{}",
    ]
    with _connect(gateway, timeout=10) as sock:
        for _ in range(20):
            for payload in requests:
                sock.sendall(payload)
                status, headers, body = _parsed(sock.recv(1 << 20))
                assert len(body) == int(headers["content-length"]), (status, headers, body[:200])


def test_expect_100_continue_is_answered_before_the_body_is_sent(gateway: GatewayProcess, tenant: Tenant) -> None:
    with _connect(gateway, timeout=10) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\nExpect: 100-continue\r\nAuthorization: Bearer "
                     + tenant.key.encode() + b"\r\n\r\n")
        assert sock.recv(1 << 16) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(1 << 16)
        status, headers, body = _parsed(answer)
        while len(body) < int(headers["content-length"]):
            body += sock.recv(1 << 16)
    assert status.startswith(b"HTTP/1.1 400 "), status
    assert json.loads(body)["error"]["param"] == "model"  # the body was read: it is what the 400 is about


@pytest.fixture(scope="module")
def impatient_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway that gives a request head one second, and lets a body pause for one second."""
    config = {"server": {"request_head_timeout_seconds": 1, "request_body_timeout_seconds": 1}, "deployments": []}
    gateway = GatewayProcess(tmp_path_factory.mktemp("impatient"), config=config, admin_token=ADMIN_TOKEN).start()
    yield gateway
    gateway.stop()


@pytest.mark.parametrize(
    "sends",
    [
        [(0.0, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")],  # a head that stops before its blank line
        [(0.0, b"GET /healthz HTTP/1.1\r\n")] + [(0.3, b"X-Drip: 1\r\n")] * 8,  # one header every 0.3 s
    ],
    ids=["unfinished", "slow-drip"],
)
def test_a_head_that_does_not_arrive_in_time_is_408(
    impatient_gateway: GatewayProcess, sends: list[tuple[float, bytes]]
) -> None:
    answer, elapsed = _exchange(impatient_gateway, sends)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:200]
    assert b"x-request-id: req_" in head
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert elapsed < 5  # cut off at the timeout, not when the client gives up (the drip lasts 2.4 s)


def _post_head(path: str, token: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(impatient_gateway: GatewayProcess) -> None:
    # No request, so no 408: an unasked-for answer could be read as the answer to a later request.
    answer, elapsed = _exchange(impatient_gateway, [])
    assert answer == b""
    assert elapsed < 5


def test_a_body_that_trickles_within_the_pause_limit_is_served_and_keep_alive_idles(
    impatient_gateway: GatewayProcess,
) -> None:
    # Five pieces 0.6 s apart (3 s in all, each pause under the 1 s limit), then 1.5 s idle on the
    # kept-alive connection, then a second request: both answered, nothing timed out.
    body = json.dumps({"id": "trickled", "name": "A body sent in five pieces"}).encode()
    pieces = [body[i : i + 12] for i in range(0, len(body), 12)]
    assert len(pieces) == 5
    again = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    sends = [(0.0, _post_head("/admin/v1/workspaces", ADMIN_TOKEN, len(body)))]
    sends += [(0.6, piece) for piece in pieces] + [(1.5, again)]
    answer, _ = _exchange(impatient_gateway, sends)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    assert answer.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 200 OK" in answer
    assert b"408" not in answer


@pytest.mark.parametrize("sent", [0, 10], ids=["no-body-at-all", "part-of-the-body"])
def test_a_body_that_stops_arriving_is_408_and_logged_as_such(impatient_gateway: GatewayProcess, sent: int) -> None:
    tenant = new_tenant(impatient_gateway)
    body = json.dumps({"model": "none", "input": "x" * 100}).encode()
    head = _post_head("/v1/embeddings", tenant.key, len(body))
    answer, elapsed = _exchange(impatient_gateway, [(0.0, head + body[:sent])])
    status, _, payload = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:300]
    assert b"x-request-id: req_" in status
    assert json.loads(payload)["error"]["code"] == "request_timeout"
    assert elapsed < 5
    rows = admin(impatient_gateway, "GET", f"/requests?workspace_id={tenant.workspace_id}").json()["data"]
    assert [(row["path"], row["status"]) for row in rows] == [("/v1/embeddings", 408)]


def test_a_stalled_body_on_an_admin_route_is_408_too(impatient_gateway: GatewayProcess) -> None:
    head = _post_head("/admin/v1/workspaces", ADMIN_TOKEN, 100)
    answer, elapsed = _exchange(impatient_gateway, [(0.0, head + b'{"name": ')])
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:300]
    assert elapsed < 5
