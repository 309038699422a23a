"""The dashboard's pure parts: snippet text, inline SVG, the session store (no server needed)."""

from __future__ import annotations

import ast
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from runinfra_gateway.backends.base import OPERATIONS
from runinfra_gateway.dashboard.charts import bar_chart, sparkline
from runinfra_gateway.dashboard.sessions import SessionStore
from runinfra_gateway.dashboard.snippets import snippets_for

ROOT = "https://gw.example.com/v1"


@pytest.mark.parametrize("pipeline_id", [None, "pipe_123"])
def test_every_snippet_is_valid_python_or_shell(pipeline_id: str | None) -> None:
    operations: list[tuple[str, str | None]] = [(op, "org/model:v1") for op in OPERATIONS]
    if pipeline_id:
        operations.append(("voice.pipeline", None))
    groups = snippets_for(root_base_url=ROOT, operations=operations, pipeline_id=pipeline_id,
                          voices={"org/model:v1": "alloy"})
    assert [g.operation for g in groups] == [op for op, _ in operations]
    for group in groups:
        for snippet in group.snippets:
            if snippet.language == "python":
                ast.parse(snippet.code)
            else:
                assert subprocess.run(["bash", "-n", "-c", snippet.code], check=False).returncode == 0


def test_native_snippets_keep_the_root_url_and_openai_snippets_scope_it() -> None:
    (group,) = snippets_for(root_base_url=ROOT + "/", operations=[("chat.completions", "m")], pipeline_id="pipe_123")
    flavours = {s.flavour: s.code for s in group.snippets}
    assert f'base_url="{ROOT}"' in flavours["native"]
    assert 'pipeline_id="pipe_123"' in flavours["native"]
    assert f'base_url="{ROOT}/pipe_123"' in flavours["openai"]
    assert f"{ROOT}/pipe_123/chat/completions" in flavours["curl"]
    assert all("RUNINFRA_API_KEY" in code for code in flavours.values())


def test_the_voice_pipeline_has_no_openai_snippet_and_needs_a_pipeline() -> None:
    (group,) = snippets_for(root_base_url=ROOT, operations=[("voice.pipeline", None)], pipeline_id="voice")
    assert [s.flavour for s in group.snippets] == ["native", "curl"]
    with pytest.raises(ValueError, match="pipeline_id"):
        snippets_for(root_base_url=ROOT, operations=[("voice.pipeline", None)])
    with pytest.raises(ValueError, match="no snippet"):
        snippets_for(root_base_url=ROOT, operations=[("images.edit", "m")])


def test_hostile_ids_stay_inside_their_string_literals() -> None:
    model = "m\"); import os; os.system('id') #'"
    (group,) = snippets_for(root_base_url=ROOT, operations=[("chat.completions", model)])
    for snippet in group.snippets:
        if snippet.language == "python":
            tree = ast.parse(snippet.code)
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
            assert not any(isinstance(c.func, ast.Attribute) and c.func.attr == "system" for c in calls)
        else:
            assert "'\"'\"'" in snippet.code or "'\\''" in snippet.code  # the quote is shell-escaped


def test_charts_are_well_formed_svg_and_escape_labels() -> None:
    label = "<script>alert(1)</script> & co"
    for svg in (
        sparkline([1.0, 5.0, 2.5], label=label, unit=" ms"),
        sparkline([], label=label),
        sparkline([0.0, 0.0], label=label),
        bar_chart([("2026-11-26", 3.0), ("2026-11-27", 0.0)], label=label),
        bar_chart([], label=label),
    ):
        root = ET.fromstring(str(svg))  # noqa: S314 - markup we just generated
        assert root.tag.endswith("svg")
        assert "<script>" not in str(svg)
        assert "&lt;script&gt;" in str(svg)


def test_sessions_expire_when_idle_and_on_revocation() -> None:
    store = SessionStore(idle_timeout=0.2, absolute_timeout=60, max_sessions=3)
    session_id, session = store.create()
    assert store.get(session_id) is session
    assert session.csrf_token not in repr(session)
    time.sleep(0.3)
    assert store.get(session_id) is None
    ids = [store.create()[0] for _ in range(4)]
    assert len(store) == 3
    assert store.get(ids[0]) is None  # the least recently seen one made room
    assert store.revoke_all() == 3
    assert all(store.get(i) is None for i in ids)
    assert store.get("x" * 10_000) is None
    assert store.get(None) is None


def test_a_pending_secret_is_popped_once_and_only_by_its_kind() -> None:
    _, session = SessionStore().create()
    session.pending_secret = {"kind": "webhook", "secret": "whsec_x"}
    assert session.pop_pending_secret() is None  # the API Keys page does not take a webhook secret
    assert session.pop_pending_secret("webhook") == {"kind": "webhook", "secret": "whsec_x"}
    assert session.pop_pending_secret("webhook") is None
    assert not session.check_csrf(None)
    assert not session.check_csrf(session.csrf_token + "x")
    assert session.check_csrf(session.csrf_token)


def test_the_deployments_page_refreshes_itself_only_while_verification_runs() -> None:
    from runinfra_gateway.dashboard.render import _environment

    template = _environment.get_template("deployments.html")
    base = {"prefix": "/dashboard", "session": None, "title": "Deployments", "section": "deployments",
            "workspaces": [], "workspace_id": None, "webhooks_available": False, "flashes": [],
            "current_path": "/dashboard/deployments", "deployments": [], "window_label": "24 hours",
            "bucket_label": "hourly"}
    running = template.render({**base, "counts": {"active": 1, "failed": 0, "verifying": 1}})
    settled = template.render({**base, "counts": {"active": 2, "failed": 0, "verifying": 0}})
    assert '<meta http-equiv="refresh" content="3">' in running
    assert "http-equiv" not in settled
