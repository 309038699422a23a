"""Fixtures shared by every gateway test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from runinfra_gateway.testing import postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real, throwaway PostgreSQL server for the whole session (one for the money, webhooks and core suites)."""
    with postgres_server() as url:
        yield url
