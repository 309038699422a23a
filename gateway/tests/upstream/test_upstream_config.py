"""The upstream deployment table: bad values fail at start with a message naming the key, never a secret."""

from __future__ import annotations

from typing import Any

import pytest
from runinfra_gateway.backends.upstream import UpstreamBackend


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ({}, "base_url"),
        ({"base_url": "http://a/v1", "base_urls": ["http://b/v1"]}, "not both"),
        ({"base_urls": []}, "base_urls"),
        ({"base_urls": ["http://a/v1", 5]}, "base_urls[1]"),
        ({"base_url": "ftp://a/v1"}, "base_url"),
        ({"base_url": "http:///v1"}, "base_url"),
        ({"base_url": "http://user:hunter2@a/v1"}, "credentials"),
        ({"base_url": "http://a/v1?key=hunter2"}, "query"),
        ({"base_url": "http://a/v1", "timeout_seconds": 0}, "timeout_seconds"),
        ({"base_url": "http://a/v1", "timeout_seconds": "60"}, "timeout_seconds"),
        ({"base_url": "http://a/v1", "first_byte_timeout_seconds": -1}, "first_byte_timeout_seconds"),
        ({"base_url": "http://a/v1", "connect_timeout_seconds": float("nan")}, "connect_timeout_seconds"),
        ({"base_url": "http://a/v1", "load_balancing": "random"}, "load_balancing"),
        ({"base_url": "http://a/v1", "max_connections": 0}, "max_connections"),
        ({"base_url": "http://a/v1", "max_response_bytes": 10}, "max_response_bytes"),
        ({"base_url": "https://a/v1", "tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file"),
        ({"base_url": "http://a/v1/modèle"}, "base_url"),
        ({"base_url": "http://a/v1\r\nX-Injected: 1"}, "base_url"),
        ({"base_url": "http://a/v1", "api_key": "hunter2\r\nX-Injected: 1"}, "API key"),
        ({"base_url": "http://a/v1", "health_check_interval_seconds": -1}, "health_check_interval_seconds"),
        ({"base_url": "http://a/v1", "health_check_interval_seconds": float("nan")}, "health_check_interval_seconds"),
        ({"base_url": "http://a/v1", "health_check_interval_seconds": float("inf")}, "health_check_interval_seconds"),
        ({"base_url": "http://a/v1", "model": ""}, "model"),
        ({"base_url": "http://a/v1", "api_key_env": "RUNINFRA_TEST_UNSET_VARIABLE"}, "RUNINFRA_TEST_UNSET_VARIABLE"),
    ],
)
def test_bad_tables_are_refused_by_key(table: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match="deployment 'dep'") as caught:
        UpstreamBackend.from_config("dep", table)
    assert names in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_api_key_from_the_environment_stays_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNINFRA_TEST_UPSTREAM_KEY", "sk-very-secret")
    backend = UpstreamBackend.from_config("dep", {"base_url": "http://127.0.0.1:1/v1/",
                                                  "api_key_env": "RUNINFRA_TEST_UPSTREAM_KEY"})
    assert "sk-very-secret" not in repr(backend)
    assert "sk-very-secret" not in repr(backend._config)
    assert backend.replicas[0].base_url == "http://127.0.0.1:1/v1"
