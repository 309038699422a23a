"""``runinfra serve``: start the gateway."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from runinfra_gateway.data_dir import make_data_dir
from runinfra_gateway.settings import ConfigError, load_settings

__all__ = ["add_serve_command"]

_DESCRIPTION = """\
Start the gateway.

Without --config, it serves the embedded default: small real models on CPU for
every operation (chat, responses, embeddings, images, speech, transcription), a
'default' workspace with credits and a 'voice' pipeline. On the first start it
prints an admin token, a workspace key and a pipeline key, once; only their
hashes are stored.

With --config FILE (TOML), it serves exactly the deployments the file lists; an
empty list starts no engine (a gateway that only fronts upstream engines).
SIGHUP re-reads the file's workspaces, deployments and pipelines without a
restart: new and changed deployments are verified, removed ones stop; a file
that does not validate changes nothing. Other settings need a restart; a
reload names the ones that changed in the file (never their values).

Signals: SIGTERM/SIGINT drain in-flight requests and streams, flush the
ledger and exit 0; SIGHUP reloads the config file (above).

Settings come from the file, then RUNINFRA_* environment variables
(RUNINFRA_HOST, RUNINFRA_PORT, RUNINFRA_DATA_DIR, RUNINFRA_DATABASE_URL,
RUNINFRA_PUBLIC_BASE_URL, RUNINFRA_MAX_BODY_BYTES, RUNINFRA_REDIS_URL), then
these flags. RUNINFRA_ADMIN_TOKEN sets the admin token (otherwise one is
generated on the first start).

Health: GET /healthz (alive), GET /readyz (200 once every configured
deployment is verified), GET /metrics (Prometheus).
"""


def add_serve_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="start the gateway", description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML file listing deployments and settings")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="where the SQLite store and the ledger journal live (default ./runinfra-data)")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    default_document = None
    if args.config is None:
        from runinfra_gateway.engines import default_config

        default_document = default_config()
    overrides = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    try:
        settings = load_settings(args.config, default_document=default_document, overrides=overrides)
    except ConfigError as exc:
        print(f"runinfra: invalid configuration: {exc}", file=sys.stderr)
        return 2
    problem = _unusable_data_dir(settings.data_dir)
    if problem is not None:
        print(f"runinfra: cannot keep files in the data directory '{settings.data_dir}': {problem}; choose another "
              "with --data-dir or RUNINFRA_DATA_DIR", file=sys.stderr)
        return 2
    from runinfra_gateway.cli.server import run_server

    return run_server(settings)


def _unusable_data_dir(path: Path) -> str | None:
    """Why the gateway could not create files in ``path`` (made if missing), or None when it can."""
    if path.exists() and not path.is_dir():
        return "it is a file, not a directory"
    try:
        make_data_dir(path)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
