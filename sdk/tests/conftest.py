"""Fixtures: real local servers on 127.0.0.1 (see ``sdk_servers``)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Iterator, Tuple

import pytest
from runinfra import RunInfra
from sdk_servers import API_KEY, Proxy, ScriptedServer, make_certificate_authority


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must not pick up a developer's proxy or key.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "RUNINFRA_API_KEY", "RUNINFRA_LOG", "REQUEST_METHOD"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[RunInfra]:
    with RunInfra(api_key=API_KEY, base_url=server.url, max_retries=0, timeout_seconds=5) as instance:
        yield instance


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path, Path]:
    return make_certificate_authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tls_server(certificates: Tuple[Path, Path, Path]) -> Iterator[ScriptedServer]:
    _, cert, key = certificates
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    scripted = ScriptedServer(tls=context, host_name="localhost")
    yield scripted
    scripted.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    instance = Proxy()
    yield instance
    instance.close()
