"""The admin API and the ``runinfra`` console script (real subprocesses against a real gateway)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from runinfra_gateway.testing import GatewayProcess

from .conftest import ADMIN_TOKEN, ObservingUpstream, admin, new_tenant, request

RUNINFRA = str(Path(sys.executable).parent / "runinfra")


def cli(
    gateway: GatewayProcess | None, *args: str, token: str | None = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
    if gateway is not None:
        env["RUNINFRA_BASE_URL"] = gateway.base_url
    if token is not None:
        env["RUNINFRA_ADMIN_TOKEN"] = token
    return subprocess.run([RUNINFRA, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_console_script_starts_without_the_server_stack() -> None:
    # Every command builds the whole parser: the database, ASGI and engine stacks (seconds of imports)
    # must load only when `serve` runs, so operator commands answer at once.
    probe = ("import sys; from runinfra_gateway.cli import build_parser; build_parser(); "
             "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    heavy = {"sqlalchemy", "alembic", "starlette", "uvicorn", "llama_cpp", "onnxruntime", "numpy", "aiohttp"}
    assert heavy.isdisjoint(loaded.stdout.split()), loaded.stdout


def test_help_is_helpful() -> None:
    top = cli(None, "--help")
    assert top.returncode == 0
    for command in ("serve", "workspaces", "keys", "credits"):
        assert command in top.stdout
    serve = cli(None, "serve", "--help")
    assert serve.returncode == 0
    for flag in ("--host", "--port", "--config", "--data-dir", "RUNINFRA_ADMIN_TOKEN", "/readyz"):
        assert flag in serve.stdout
    keys = cli(None, "keys", "create", "--help")
    assert "--scope" in keys.stdout
    assert "--base-url" in keys.stdout


def test_bad_flags_exit_2_with_a_message() -> None:
    result = cli(None, "keys", "create", "--scope", "galaxy")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    result = cli(None, "credits", "topup", "ws", "lots")
    assert result.returncode == 2
    assert "not a number of cents" in result.stderr
    result = cli(None, "serve", "--port", "eighty")
    assert result.returncode == 2


class _NotAGateway(http.server.BaseHTTPRequestHandler):
    """Another web server at the URL the CLI was given: HTML, or JSON nested 100,000 deep; no x-request-id."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.startswith("/hostile/"):  # answers like a gateway, with text meant for the terminal
            error = {"message": "denied\x1b[2J\nruninfra: ready", "type": "auth_error\x1b[31m"}
            body = json.dumps({"error": error}).encode()
            self.send_response(403)
            self.send_header("x-request-id", "req_1")
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        deep = self.path.startswith("/deep/")
        body, kind = (b"[" * 100_000 + b"]" * 100_000, "application/json") if deep else (b"<h1>hi</h1>", "text/html")
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_base_url_that_is_not_a_gateway_is_named_in_one_line() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        for base in (origin, origin + "/deep"):
            env.update(RUNINFRA_BASE_URL=base, RUNINFRA_ADMIN_TOKEN=ADMIN_TOKEN, RUNINFRA_API_KEY="rik_" + "k" * 43)
            for args in (["keys", "list"], ["workspaces", "list"], ["webhooks", "list"]):
                result = subprocess.run([RUNINFRA, *args], capture_output=True, text=True, env=env, timeout=60,
                                        check=False)
                assert result.returncode == 1, (args, result.stderr)
                assert "does not answer like a runinfra gateway" in result.stderr
                assert "Traceback" not in result.stderr
            doctor = subprocess.run([RUNINFRA, "doctor"], capture_output=True, text=True, env=env, timeout=60,
                                    check=False)
            assert doctor.returncode == 1
            assert "[FAIL] gateway reachable" in doctor.stdout
            assert "not as a runinfra gateway does" in doctor.stdout
            assert "Traceback" not in doctor.stderr
    finally:
        server.shutdown()


def test_a_servers_error_text_cannot_act_on_the_terminal() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
        env.update(RUNINFRA_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}/hostile",
                   RUNINFRA_ADMIN_TOKEN=ADMIN_TOKEN)
        for args in (["keys", "list"], ["workspaces", "list"], ["webhooks", "list"], ["deployments", "list"]):
            result = subprocess.run([RUNINFRA, *args], capture_output=True, text=True, env=env, timeout=60,
                                    check=False)
            assert result.returncode != 0, (args, result.stderr)
            assert "denied?[2J?runinfra: ready" in result.stderr, (args, result.stderr)
            assert "\x1b" not in result.stderr
            assert "\nruninfra: ready" not in result.stderr
    finally:
        server.shutdown()


def test_serve_refuses_a_hostile_config_file_with_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    for path, reason in ((deep, "nested too deeply"), (Path("/dev/zero"), "larger than 4 MiB")):
        result = cli(None, "serve", "--config", str(path), "--port", "0")
        assert result.returncode == 2, result.stderr
        assert reason in result.stderr
        assert "Traceback" not in result.stderr


def test_serve_refuses_a_data_dir_it_cannot_write_with_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x", encoding="utf-8")
    for data_dir, reason in ((a_file, "it is a file, not a directory"), (a_file / "below", "Not a directory")):
        result = cli(None, "serve", "--data-dir", str(data_dir), "--port", "0")
        assert result.returncode == 2, result.stderr
        assert f"cannot keep files in the data directory '{data_dir}': {reason}" in result.stderr
        assert "--data-dir or RUNINFRA_DATA_DIR" in result.stderr
        assert "Traceback" not in result.stderr
        assert "ERROR" not in result.stderr


def test_workspaces_keys_credits_round_trip(gateway: GatewayProcess) -> None:
    created = cli(gateway, "workspaces", "create", "CLI team", "--credits", "12.5", "--json")
    assert created.returncode == 0, created.stderr
    workspace_id = json.loads(created.stdout)["id"]
    listed = cli(gateway, "workspaces", "list")
    assert workspace_id in listed.stdout

    key = cli(gateway, "keys", "create", "--scope", "workspace", "--workspace", workspace_id, "--name", "ci", "--json")
    assert key.returncode == 0, key.stderr
    key_info = json.loads(key.stdout)
    secret = key_info["secret"]
    assert secret.startswith("rik_")
    assert request(gateway.v1, "GET", "/models", key=secret).status == 200

    human = cli(gateway, "keys", "create", "--scope", "workspace", "--workspace", workspace_id)
    assert "shown once" in human.stdout
    keys = cli(gateway, "keys", "list", "--workspace", workspace_id)
    assert key_info["id"] in keys.stdout
    assert secret not in keys.stdout
    # A name with a line break and an escape sequence stays on its row and does not act on the terminal.
    odd = admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": workspace_id,
                                           "name": "two\nlines \x1b[2J"}).json()
    rows = cli(gateway, "keys", "list", "--workspace", workspace_id).stdout.splitlines()
    assert "two?lines ?[2J" in next(row for row in rows if odd["id"] in row)
    assert len(rows) == 4  # the header and three keys

    shown = cli(gateway, "credits", "show", workspace_id, "--json")
    assert json.loads(shown.stdout)["balance_cents"] == 12.5
    topped = cli(gateway, "credits", "topup", workspace_id, "7.5")
    assert topped.returncode == 0
    assert "balance 20.0 cents" in topped.stdout

    revoked = cli(gateway, "keys", "revoke", key_info["id"])
    assert revoked.returncode == 0
    assert request(gateway.v1, "GET", "/models", key=secret).status == 401


def test_wrong_or_missing_admin_token(gateway: GatewayProcess) -> None:
    wrong = cli(gateway, "workspaces", "list", token="ria_wrong_token_123456789")
    assert wrong.returncode == 1
    assert "auth_error" in wrong.stderr
    assert "ria_wrong_token_123456789" not in wrong.stderr + wrong.stdout
    missing = cli(gateway, "workspaces", "list", token=None)
    assert missing.returncode == 1
    assert "RUNINFRA_ADMIN_TOKEN" in missing.stderr


def test_unreachable_gateway_is_one_clear_line() -> None:
    env_gateway = GatewayProcess.__new__(GatewayProcess)
    env_gateway.base_url = "http://127.0.0.1:9"
    result = cli(env_gateway, "workspaces", "list")
    assert result.returncode == 1
    assert "cannot reach the gateway" in result.stderr
    assert "Traceback" not in result.stderr


def test_admin_api_refuses_api_keys_and_bad_bodies(gateway: GatewayProcess) -> None:
    tenant = new_tenant(gateway)
    with_key = request(gateway.base_url + "/admin/v1", "GET", "/keys", key=tenant.key)
    assert with_key.status == 403
    assert with_key.error["type"] == "permission_denied"
    assert request(gateway.base_url + "/admin/v1", "GET", "/keys").status == 401
    bad = request(gateway.base_url + "/admin/v1", "POST", "/workspaces", body=b"{nope",
                  headers={"Content-Type": "application/json"}, key=ADMIN_TOKEN)
    assert bad.status == 400
    assert bad.error["code"] == "invalid_json"
    huge = request(gateway.base_url + "/admin/v1", "POST", "/workspaces", body=b'{"name": "' + b"x" * 2_000_000 + b'"}',
                   headers={"Content-Type": "application/json"}, key=ADMIN_TOKEN)
    assert huge.status == 413
    form = request(gateway.base_url + "/admin/v1", "POST", "/workspaces", body=b"name=x",
                   headers={"Content-Type": "application/x-www-form-urlencoded"}, key=ADMIN_TOKEN)
    assert form.status == 400
    assert form.error["code"] == "unsupported_media_type"
    nan = request(gateway.base_url + "/admin/v1", "POST", "/workspaces/ws_x/credits", body=b'{"cents": NaN}',
                  headers={"Content-Type": "application/json"}, key=ADMIN_TOKEN)
    assert nan.status == 400
    assert nan.error["code"] == "invalid_json"
    for bad_cents in ("lots", True, None, 1e13, -(10**13)):
        refused = admin(gateway, "POST", f"/workspaces/{tenant.workspace_id}/credits", {"cents": bad_cents})
        assert refused.status == 400
        assert refused.error["param"] == "cents"
    too_much = admin(gateway, "POST", f"/workspaces/{tenant.workspace_id}/credits", {"cents": 1e13})
    assert "1,000,000,000,000" in too_much.error["message"]
    for bad_limit in (0, -1, 2**31, 2**63 - 1, 1.5, "10"):  # 2**31 overflowed PostgreSQL's INTEGER: a 500
        refused = admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": tenant.workspace_id,
                                                   "requests_per_minute": bad_limit})
        assert refused.status == 400, bad_limit
        assert refused.error["param"] == "requests_per_minute"
        assert "from 1 to 2147483647" in refused.error["message"]
    long_name = admin(gateway, "POST", "/workspaces", {"name": "n" * 201})
    assert long_name.status == 400
    assert long_name.error["param"] == "name"
    unknown = admin(gateway, "POST", "/workspaces", {"name": "x", "colour": "red"})
    assert unknown.status == 400
    assert unknown.error["param"] == "colour"
    assert unknown.error["message"] == "Unknown field 'colour'; this call takes credits_cents, id, name."
    no_scope = admin(gateway, "POST", "/keys", {"scope": "pipeline"})
    assert no_scope.status == 400
    assert no_scope.error["param"] == "pipeline_id"
    assert admin(gateway, "DELETE", "/keys/key_missing").status == 404
    for bad_limit in ("abc", "-1", "%C2%B2"):  # "²" passes str.isdigit() and fails int(): it was a 500
        refused = admin(gateway, "GET", f"/requests?limit={bad_limit}")
        assert refused.status == 400, bad_limit
        assert refused.error["param"] == "limit"
    assert admin(gateway, "GET", "/workspaces/ws_missing/credits").status == 404


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"id": "x", "backend": "upstream", "operations": ["chat.completions"]}, "base_url"),
        ({"id": "x", "backend": "upstream", "base_url": "http://127.0.0.1:9/v1", "operations": ["chat"]},
         "operations[0]"),
        ({"id": "../x", "backend": "upstream", "base_url": "http://127.0.0.1:9/v1", "operations": ["embeddings"]},
         "id"),
        ({"id": "x", "backend": "upstream", "base_url": "http://127.0.0.1:9/v1", "operations": ["embeddings"],
          "prices": {"per_token": 1}}, "prices.per_token"),
    ],
)
def test_register_deployment_validation_names_the_field(gateway: GatewayProcess, payload: dict[str, object],
                                                        param: str) -> None:
    response = admin(gateway, "POST", "/deployments", payload)
    assert response.status == 400, response.body
    assert param in response.error["message"]


def test_registered_deployment_failing_verification_is_not_routable(gateway: GatewayProcess) -> None:
    created = admin(gateway, "POST", "/deployments", {
        "id": "registered-dead", "backend": "upstream", "base_url": "http://127.0.0.1:9/v1",
        "operations": ["embeddings"], "api_key": "sk-upstream-secret-123",
    })
    assert created.status == 201
    assert created.json()["status"] == "failed"
    assert "sk-upstream-secret-123" not in created.body.decode()
    listing = admin(gateway, "GET", "/deployments")
    assert "sk-upstream-secret-123" not in listing.body.decode()
    tenant = new_tenant(gateway)
    assert tenant.post("/embeddings", {"model": "registered-dead", "input": "x"}).status == 404
    again = admin(gateway, "POST", "/deployments/registered-dead/verify")
    assert again.json()["status"] == "failed"


def test_a_slow_verification_is_waited_for_and_a_timeout_says_so(
    slow_gateway: tuple[GatewayProcess, ObservingUpstream],
) -> None:
    gateway, upstream = slow_gateway
    upstream.probe_delay = 3.0
    try:
        impatient = cli(gateway, "deployments", "verify", "slow", "--timeout", "1")
        assert impatient.returncode == 4, impatient.stderr
        assert "did not answer within 1 s" in impatient.stderr
        assert "may still be running" in impatient.stderr
        assert "--timeout" in impatient.stderr
        assert ADMIN_TOKEN not in impatient.stderr + impatient.stdout
        patient = cli(gateway, "deployments", "verify", "slow")  # the default waits minutes, not 30 s
        assert patient.returncode == 0, patient.stderr
        assert "verified active" in patient.stdout
    finally:
        upstream.probe_delay = 0.0
    assert "default: 300" in cli(None, "deployments", "verify", "--help").stdout
