"""The ``runinfra`` console script: ``serve`` plus the operator commands over the admin API.

Other packages add subcommands through :func:`register_commands` hooks: a
module ``runinfra_gateway.cli.ops`` (the dashboard owner's deployments,
models, chat, speak, transcribe, doctor) is picked up if present and must
define ``register(subparsers, admin_parent)``; each command it adds sets
``handler=callable(args) -> int`` with ``set_defaults``. ``admin_parent``
carries ``--base-url`` and ``--admin-token`` for commands that call the admin API.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from runinfra_gateway import __version__
from runinfra_gateway.cli.commands import add_admin_commands, admin_parent
from runinfra_gateway.cli.serve import add_serve_command

__all__ = ["build_parser", "main"]

#: Modules whose ``register(subparsers, admin_parent)`` adds commands, in order.
COMMAND_MODULES: tuple[str, ...] = ("runinfra_gateway.cli.ops", "runinfra_gateway.webhooks.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runinfra",
        description="Run and operate a runinfra gateway: an OpenAI-compatible gateway with keys, "
        "credits, rate limits and verified deployments.",
        epilog="Run 'runinfra COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"runinfra-gateway {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    parent = admin_parent()
    add_serve_command(subparsers)
    add_admin_commands(subparsers, parent)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = handler(args)
    return result
