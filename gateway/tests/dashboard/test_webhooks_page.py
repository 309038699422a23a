"""The Webhooks page's forms over real HTTP: choosing event types, editing an endpoint, hostile edits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import WORKSPACE, Gateway
from .http_session import DashboardSession


def _endpoints(gateway: Gateway, workspace: str = WORKSPACE) -> dict[str, dict[str, Any]]:
    listed = gateway.admin("GET", f"/webhooks/endpoints?workspace_id={workspace}")
    return {row["id"]: row for row in listed["data"]}


@pytest.fixture
def endpoint(gateway: Gateway, browser_session: DashboardSession) -> Iterator[dict[str, Any]]:
    """An endpoint made through the page's Add form, with two event types ticked; deleted afterwards."""
    before = set(_endpoints(gateway))
    answer = browser_session.post("/webhooks", [
        ("csrf_token", browser_session.csrf()), ("workspace_id", WORKSPACE),
        ("url", "http://127.0.0.1:9/original"), ("description", "before"),
        ("events", "webhook.test"), ("events", "key.created"),
    ])
    assert answer.status == 303
    page = browser_session.get("/webhooks").body
    assert "notice-error" not in page
    assert 'data-testid="one-time-secret"' in page
    (created,) = [row for id_, row in _endpoints(gateway).items() if id_ not in before]
    yield created
    gateway.admin("DELETE", f"/webhooks/endpoints/{created['id']}")


def _edit(session: DashboardSession, endpoint_id: str, fields: list[tuple[str, str]]) -> str:
    answer = session.post("/webhooks/edit", [("csrf_token", session.csrf()), ("endpoint_id", endpoint_id), *fields])
    assert answer.status == 303
    assert answer.location == "/dashboard/webhooks"
    return session.get("/webhooks").body


def test_the_add_form_subscribes_to_the_ticked_event_types(endpoint: dict[str, Any]) -> None:
    assert endpoint["events"] == ["key.created", "webhook.test"]
    assert endpoint["description"] == "before"


def test_an_endpoint_is_edited_in_place(
    gateway: Gateway, browser_session: DashboardSession, endpoint: dict[str, Any]
) -> None:
    page = _edit(browser_session, endpoint["id"], [
        ("url", "http://127.0.0.1:9/moved"), ("description", "after"), ("events", "credits.low"),
    ])
    assert "Endpoint http://127.0.0.1:9/moved is updated." in page
    edited = _endpoints(gateway)[endpoint["id"]]
    assert (edited["url"], edited["description"], edited["events"]) == ("http://127.0.0.1:9/moved", "after",
                                                                        ["credits.low"])
    assert edited["created"] == endpoint["created"]
    # The edit form shows what is stored: the new URL and only the ticked type checked.
    assert 'value="http://127.0.0.1:9/moved"' in page
    assert 'value="credits.low" checked' in page
    assert 'value="webhook.test" checked' not in page

    # Nothing ticked means every event, as the admin API's default.
    _edit(browser_session, endpoint["id"], [("url", "http://127.0.0.1:9/moved"), ("description", "")])
    assert _endpoints(gateway)[endpoint["id"]]["events"] == ["*"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([("url", "ftp://127.0.0.1/x")], "url"),
        ([("url", "javascript:alert(1)")], "url"),
        ([("url", "http://169.254.169.254/latest/meta-data")], "https"),
        ([("url", "")], "url"),
        ([("url", "http://127.0.0.1:9/ok"), ("events", "credits.stolen")], "unknown event type"),
        ([("url", "http://127.0.0.1:9/ok"), ("description", "d" * 501)], "description"),
    ],
)
def test_a_refused_edit_says_why_and_changes_nothing(
    gateway: Gateway, browser_session: DashboardSession, endpoint: dict[str, Any],
    fields: list[tuple[str, str]], message: str,
) -> None:
    page = _edit(browser_session, endpoint["id"], fields)
    assert "notice-error" in page
    assert message in page.split("notice-error", 1)[1].split("</div>", 1)[0]
    assert _endpoints(gateway)[endpoint["id"]] == endpoint


def test_another_workspaces_endpoint_cannot_be_edited_or_named(
    gateway: Gateway, browser_session: DashboardSession, endpoint: dict[str, Any]
) -> None:
    theirs = gateway.admin("POST", "/webhooks/endpoints", {"workspace_id": "acme", "url": "http://127.0.0.1:9/acme"})
    try:
        for endpoint_id in (theirs["id"], "we_does_not_exist", "../../admin", ""):
            page = _edit(browser_session, endpoint_id, [("url", "http://127.0.0.1:9/hijacked")])
            assert "notice-error" in page, endpoint_id
        page = _edit(browser_session, theirs["id"], [("url", "http://127.0.0.1:9/hijacked")])
        assert "No such webhook endpoint in this workspace." in page  # as if it did not exist
        assert _endpoints(gateway, "acme")[theirs["id"]]["url"] == "http://127.0.0.1:9/acme"
        assert _endpoints(gateway)[endpoint["id"]] == endpoint
    finally:
        gateway.admin("DELETE", f"/webhooks/endpoints/{theirs['id']}")


def test_an_edit_without_the_form_token_is_refused(
    gateway: Gateway, browser_session: DashboardSession, endpoint: dict[str, Any]
) -> None:
    answer = browser_session.post("/webhooks/edit", {"endpoint_id": endpoint["id"], "url": "http://127.0.0.1:9/x"})
    assert answer.status == 403
    assert _endpoints(gateway)[endpoint["id"]] == endpoint
