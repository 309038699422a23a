"""``runinfra workspaces|keys|credits``: the admin API from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from runinfra_gateway.cli.admin_client import AdminClient, AdminError
from runinfra_gateway.cli.table import print_table

__all__ = ["add_admin_commands", "admin_client", "admin_parent", "run_admin"]

_DEFAULT_BASE_URL = "http://127.0.0.1:8080"


def admin_parent() -> argparse.ArgumentParser:
    """Options shared by every command that talks to the admin API."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("gateway")
    group.add_argument("--base-url", default=None,
                       help=f"gateway URL (default: $RUNINFRA_BASE_URL or {_DEFAULT_BASE_URL})")
    group.add_argument("--admin-token", default=None, help="admin token (default: $RUNINFRA_ADMIN_TOKEN)")
    group.add_argument("--json", action="store_true", help="print the raw JSON answer")
    return parent


def admin_client(args: argparse.Namespace, *, timeout: float = 30.0) -> AdminClient:
    """The admin API client the command's options (or environment) name; ``timeout`` bounds each call."""
    token = args.admin_token or os.environ.get("RUNINFRA_ADMIN_TOKEN")
    if not token:
        raise AdminError("no admin token: pass --admin-token or set RUNINFRA_ADMIN_TOKEN")
    base_url = args.base_url or os.environ.get("RUNINFRA_BASE_URL") or _DEFAULT_BASE_URL
    return AdminClient(base_url, token, timeout=timeout)


def run_admin(args: argparse.Namespace, action: Callable[[AdminClient], Any],
              show: Callable[[Any], None]) -> int:
    """Run one admin call; errors go to stderr as one line (exit 1), results to stdout."""
    try:
        result = action(admin_client(args))
    except AdminError as exc:
        kind = f" ({exc.type})" if exc.type else ""
        print(f"runinfra: error{kind}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        show(result)
    return 0


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    print_table([[row.get(column) for column in columns] for row in rows], columns)


# -- workspaces --------------------------------------------------------------------------------


def _workspaces_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name}
    if args.credits is not None:
        body["credits_cents"] = args.credits
    return run_admin(args, lambda c: c.request("POST", "/workspaces", body),
                     lambda r: print(f"created workspace {r['id']} ({r['name']})"))


def _workspaces_list(args: argparse.Namespace) -> int:
    return run_admin(args, lambda c: c.request("GET", "/workspaces"),
                     lambda r: _table(r["data"], ["id", "name", "created"]))


# -- keys --------------------------------------------------------------------------------------


def _keys_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"scope": args.scope}
    if args.workspace:
        body["workspace_id"] = args.workspace
    if args.pipeline:
        body["pipeline_id"] = args.pipeline
    if args.name:
        body["name"] = args.name
    if args.requests_per_minute:
        body["requests_per_minute"] = args.requests_per_minute
    if args.tokens_per_minute:
        body["tokens_per_minute"] = args.tokens_per_minute

    def show(result: dict[str, Any]) -> None:
        where = f"pipeline {result['pipeline_id']}" if result["pipeline_id"] else f"workspace {result['workspace_id']}"
        print(f"created key {result['id']} ({result['scope']} scope, {where})")
        print("secret (shown once, store it now):")
        print(result["secret"])

    return run_admin(args, lambda c: c.request("POST", "/keys", body), show)


def _keys_list(args: argparse.Namespace) -> int:
    path = "/keys" + (f"?workspace_id={AdminClient.quote(args.workspace)}" if args.workspace else "")
    return run_admin(args, lambda c: c.request("GET", path),
                     lambda r: _table(r["data"], ["id", "prefix", "scope", "workspace_id", "pipeline_id", "name",
                                                  "revoked"]))


def _keys_revoke(args: argparse.Namespace) -> int:
    return run_admin(args, lambda c: c.request("DELETE", f"/keys/{AdminClient.quote(args.key_id)}"),
                     lambda r: print(f"revoked key {r['id']} ({r['prefix']}...)"))


# -- credits -----------------------------------------------------------------------------------


def _show_balance(result: dict[str, Any]) -> None:
    print(f"workspace {result['workspace_id']}: balance {result['balance_cents']} cents "
          f"({result['held_cents']} cents held by requests in flight)")


def _credits_show(args: argparse.Namespace) -> int:
    return run_admin(args, lambda c: c.request("GET", f"/workspaces/{AdminClient.quote(args.workspace)}/credits"),
                     _show_balance)


def _credits_topup(args: argparse.Namespace) -> int:
    path = f"/workspaces/{AdminClient.quote(args.workspace)}/credits"
    return run_admin(args, lambda c: c.request("POST", path, {"cents": args.cents}), _show_balance)


def _cents(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of cents") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of cents")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_admin_commands(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    workspaces = subparsers.add_parser("workspaces", help="create and list workspaces",
                                       description="Create and list workspaces.")
    ws = workspaces.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = ws.add_parser("create", parents=[parent], help="create a workspace",
                           description="Create a workspace (optionally with starting credits).")
    create.add_argument("name", help="display name")
    create.add_argument("--credits", type=_cents, metavar="CENTS", help="starting credits in cents")
    create.set_defaults(handler=_workspaces_create)
    listing = ws.add_parser("list", parents=[parent], help="list workspaces", description="List workspaces.")
    listing.set_defaults(handler=_workspaces_list)

    keys = subparsers.add_parser("keys", help="create, list and revoke API keys",
                                 description="Create, list and revoke API keys.")
    ks = keys.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = ks.add_parser(
        "create", parents=[parent], help="create a key (its secret is printed once)",
        description="Create an API key. A workspace key reaches every verified deployment through the model "
        "field; a pipeline key reaches only /v1/PIPELINE/... . The secret is printed once.",
    )
    create.add_argument("--scope", choices=("workspace", "pipeline"), required=True, help="what the key may reach")
    create.add_argument("--workspace", metavar="ID", help="workspace id (workspace scope)")
    create.add_argument("--pipeline", metavar="ID", help="pipeline id (pipeline scope)")
    create.add_argument("--name", help="a label to recognise the key by")
    create.add_argument("--requests-per-minute", type=_positive, metavar="N", help="rate limit for this key")
    create.add_argument("--tokens-per-minute", type=_positive, metavar="N", help="token rate limit for this key")
    create.set_defaults(handler=_keys_create)
    listing = ks.add_parser("list", parents=[parent], help="list keys (never their secrets)",
                            description="List keys: id, prefix, scope, workspace, pipeline; never secrets.")
    listing.add_argument("--workspace", metavar="ID", help="only this workspace's keys")
    listing.set_defaults(handler=_keys_list)
    revoke = ks.add_parser("revoke", parents=[parent], help="revoke a key (takes effect immediately)",
                           description="Revoke a key; the next request with it gets 401.")
    revoke.add_argument("key_id", help="the key id (key_...), as 'keys list' shows")
    revoke.set_defaults(handler=_keys_revoke)

    credits = subparsers.add_parser("credits", help="show and top up a workspace's credits",
                                    description="Show and top up a workspace's credits.")
    cs = credits.add_subparsers(title="actions", metavar="ACTION", required=True)
    show = cs.add_parser("show", parents=[parent], help="show balance and held credits",
                         description="Show a workspace's balance (what it can spend) and credits held in flight.")
    show.add_argument("workspace", help="workspace id")
    show.set_defaults(handler=_credits_show)
    topup = cs.add_parser("topup", parents=[parent], help="add credits (negative debits, never below zero)",
                          description="Add credits in cents; a negative amount debits (never below zero).")
    topup.add_argument("workspace", help="workspace id")
    topup.add_argument("cents", type=_cents, help="amount in cents")
    topup.set_defaults(handler=_credits_topup)
