"""A throwaway PostgreSQL server for the money tests (a real one: initdb, postgres, loopback only)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


def _binary(name: str) -> str:
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name) or (installed[0] if installed else None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is missing (scripts/setup installs the Debian postgresql package)")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package creates the postgres user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a fresh cluster on 127.0.0.1 with trust auth; yields a psycopg URL to its ``postgres`` database."""
    directory = Path(tempfile.mkdtemp(prefix="runinfra-pg-"))
    data = directory / "data"
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    subprocess.run(
        _as_server_user([_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = _free_port()
    # fsync off: these tests kill the gateway, never the database server.
    command = [_binary("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(directory)]
    command += ["-c", "fsync=off", "-c", "max_connections=50"]
    server = subprocess.Popen(
        _as_server_user(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
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
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(directory, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server; returns its URL."""
    base = server_url.rsplit("/", 1)[0]
    with psycopg.connect(server_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"
