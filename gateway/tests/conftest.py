"""Fixtures shared by every gateway test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from runinfra_gateway.testing import LlamaServer, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real, throwaway PostgreSQL server for the whole session (one for the money, webhooks and core suites)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    """One real llama.cpp server (SmolLM2-135M) for the whole session: the upstream engine of every suite."""
    server = LlamaServer().start(timeout=120)
    yield server
    server.stop()
