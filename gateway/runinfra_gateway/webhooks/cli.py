"""``runinfra webhooks ...``: endpoints, secret rotation, test events, the delivery log and replay.

Registered through the core CLI's command-module hook
(``register(subparsers, admin_parent)``); every command calls
``/admin/v1/webhooks`` with ``--base-url`` / ``--admin-token``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from runinfra_gateway.cli.admin_client import AdminClient
from runinfra_gateway.cli.commands import run_admin
from runinfra_gateway.webhooks.events import EVENT_TYPES

__all__ = ["register"]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _show_endpoint(endpoint: dict[str, Any]) -> None:
    state = "enabled" if endpoint["enabled"] else f"disabled ({endpoint.get('disabled_reason') or 'no reason'})"
    print(f"{endpoint['id']}  {endpoint['url']}  workspace={endpoint['workspace_id']}  "
          f"events={','.join(endpoint['events'])}  {state}")
    if endpoint.get("previous_secret_expires"):
        print(f"  previous secret keeps signing until {_when(endpoint['previous_secret_expires'])}")


def _show_secret(endpoint: dict[str, Any]) -> None:
    _show_endpoint(endpoint)
    print("signing secret (shown once, store it now, e.g. as RUNINFRA_WEBHOOK_SECRET):")
    print(endpoint["secret"])


def _show_endpoints(result: dict[str, Any]) -> None:
    if not result["data"]:
        print("(none)")
    for endpoint in result["data"]:
        _show_endpoint(endpoint)


def _show_deliveries(result: dict[str, Any]) -> None:
    if not result["data"]:
        print("(none)")
    for delivery in result["data"]:
        print(f"{delivery['id']}  event={delivery['event_id']}  endpoint={delivery['endpoint_id']}  "
              f"{delivery['origin']}  {delivery['state']}  attempts={delivery['attempts']}")
        for attempt in delivery["attempt_log"]:
            status = attempt["status"] if attempt["status"] is not None else "---"
            error = f"  error={attempt['error']}" if attempt["error"] else ""
            print(f"  #{attempt['attempt']} {_when(attempt['started_at'])}  {status}  "
                  f"{attempt['latency_ms']:.1f} ms  {attempt['outcome']}{error}")


def _show_events(result: dict[str, Any]) -> None:
    if not result["data"]:
        print("(none)")
    for event in result["data"]:
        print(f"{event['id']}  {_when(event['created'])}  {event['type']}  workspace={event['workspace']}")


def _show_queued(result: Any) -> None:
    deliveries = result["data"] if isinstance(result, dict) and "data" in result else [result["delivery"]]
    for delivery in deliveries:
        print(f"queued delivery {delivery['id']} of event {delivery['event_id']} to endpoint {delivery['endpoint_id']}")


def _query(**params: str | int | None) -> str:
    pairs = [f"{k}={AdminClient.quote(str(v))}" for k, v in params.items() if v is not None]
    return "?" + "&".join(pairs) if pairs else ""


def _event_list(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def _path(endpoint_id: str, action: str = "") -> str:
    return f"/webhooks/endpoints/{AdminClient.quote(endpoint_id)}{action}"


def _create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"workspace_id": args.workspace, "url": args.url}
    if args.events:
        body["events"] = _event_list(args.events)
    if args.description:
        body["description"] = args.description
    return run_admin(args, lambda c: c.request("POST", "/webhooks/endpoints", body), _show_secret)


def _list(args: argparse.Namespace) -> int:
    path = "/webhooks/endpoints" + _query(workspace_id=args.workspace)
    return run_admin(args, lambda c: c.request("GET", path), _show_endpoints)


def _update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.url is not None:
        body["url"] = args.url
    if args.events is not None:
        body["events"] = _event_list(args.events)
    if args.description is not None:
        body["description"] = args.description
    return run_admin(args, lambda c: c.request("PATCH", _path(args.endpoint_id), body), _show_endpoint)


def _delete(args: argparse.Namespace) -> int:
    return run_admin(args, lambda c: c.request("DELETE", _path(args.endpoint_id)),
                     lambda r: print(f"deleted endpoint {r['id']} and its delivery log"))


def _disable(args: argparse.Namespace) -> int:
    return run_admin(args, lambda c: c.request("POST", _path(args.endpoint_id, "/disable")), _show_endpoint)


def _enable(args: argparse.Namespace) -> int:
    return run_admin(args, lambda c: c.request("POST", _path(args.endpoint_id, "/enable")), _show_endpoint)


def _rotate(args: argparse.Namespace) -> int:
    body = {"overlap_seconds": args.overlap_seconds} if args.overlap_seconds is not None else {}
    return run_admin(args, lambda c: c.request("POST", _path(args.endpoint_id, "/rotate"), body), _show_secret)


def _test(args: argparse.Namespace) -> int:
    return run_admin(args, lambda c: c.request("POST", _path(args.endpoint_id, "/test")), _show_queued)


def _deliveries(args: argparse.Namespace) -> int:
    path = "/webhooks/deliveries" + _query(endpoint_id=args.endpoint, event_id=args.event, limit=args.limit)
    return run_admin(args, lambda c: c.request("GET", path), _show_deliveries)


def _events(args: argparse.Namespace) -> int:
    path = "/webhooks/events" + _query(workspace_id=args.workspace, limit=args.limit)
    return run_admin(args, lambda c: c.request("GET", path), _show_events)


def _replay(args: argparse.Namespace) -> int:
    body = {"endpoint_id": args.endpoint} if args.endpoint else {}
    path = f"/webhooks/events/{AdminClient.quote(args.event_id)}/replay"
    return run_admin(args, lambda c: c.request("POST", path, body), _show_queued)


def _threshold(args: argparse.Namespace) -> int:
    path = f"/webhooks/workspaces/{AdminClient.quote(args.workspace)}/credits-low-threshold"
    return run_admin(
        args,
        lambda c: c.request("PUT", path, {"cents": args.cents}),
        lambda r: print(f"credits.low fires for {r['workspace_id']} under {r['credits_low_threshold_cents']} cents"),
    )


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 500:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 500")
    return int(text)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be a non-negative number")
    return value


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    """Add ``runinfra webhooks ACTION`` (the core CLI's command-module hook)."""
    webhooks = subparsers.add_parser(
        "webhooks",
        help="signed webhook endpoints, deliveries and replay",
        description="Register endpoints that receive signed events (RunInfra-Signature), rotate their secrets, "
        "send test events, read the delivery log and replay past events.",
    )
    actions = webhooks.add_subparsers(title="actions", metavar="ACTION", required=True)

    create = actions.add_parser("create", parents=[parent], help="register an endpoint (secret printed once)",
                                description="Register an https endpoint for a workspace; prints its signing "
                                "secret once.")
    create.add_argument("--workspace", required=True, metavar="ID", help="workspace id")
    create.add_argument("--url", required=True, help="https URL the events are POSTed to")
    create.add_argument("--events", metavar="TYPES",
                        help=f"comma-separated event types (default: all): {', '.join(EVENT_TYPES)}")
    create.add_argument("--description", help="a note to recognise the endpoint by")
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", parents=[parent], help="list endpoints (never their secrets)",
                                 description="List webhook endpoints.")
    listing.add_argument("--workspace", metavar="ID", help="only this workspace's endpoints")
    listing.set_defaults(handler=_list)

    for name, handler, text in (
        ("disable", _disable, "stop delivering to an endpoint (pending deliveries wait)"),
        ("enable", _enable, "deliver to an endpoint again (pending deliveries resume)"),
        ("test", _test, "send a webhook.test event to an endpoint"),
        ("delete", _delete, "remove an endpoint, its secrets and its delivery log (its events stay, replayable)"),
    ):
        action = actions.add_parser(name, parents=[parent], help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("endpoint_id", help="the endpoint id (we_...)")
        action.set_defaults(handler=handler)

    update = actions.add_parser("update", parents=[parent], help="change an endpoint's URL, events or description",
                                description="Change an endpoint's URL, event filter or description; its id and "
                                "signing secret stay. Deliveries not yet made go to the new URL; a new event filter "
                                "applies to events from now on.")
    update.add_argument("endpoint_id", help="the endpoint id (we_...)")
    update.add_argument("--url", help="the new receiver URL (https; http only for allowed hosts)")
    update.add_argument("--events", metavar="TYPES", help="comma-separated event types, or * for all")
    update.add_argument("--description", help="a new note")
    update.set_defaults(handler=_update)

    rotate = actions.add_parser("rotate", parents=[parent], help="new signing secret; the old one overlaps",
                                description="Give an endpoint a new signing secret (printed once). The old "
                                "secret keeps signing too (a second v1= entry) until the overlap ends.")
    rotate.add_argument("endpoint_id", help="the endpoint id (we_...)")
    rotate.add_argument("--overlap-seconds", type=_non_negative, metavar="S",
                        help="how long the old secret keeps signing (default: the gateway's, 24 h)")
    rotate.set_defaults(handler=_rotate)

    deliveries = actions.add_parser("deliveries", parents=[parent], help="the delivery log: every attempt",
                                    description="Deliveries, newest first, each with every attempt's status, "
                                    "latency and error.")
    deliveries.add_argument("--endpoint", metavar="ID", help="only this endpoint's deliveries")
    deliveries.add_argument("--event", metavar="ID", help="only this event's deliveries")
    deliveries.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    deliveries.set_defaults(handler=_deliveries)

    events = actions.add_parser("events", parents=[parent], help="past events (to replay)",
                                description="Past events, newest first.")
    events.add_argument("--workspace", metavar="ID", help="only this workspace's events")
    events.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    events.set_defaults(handler=_events)

    replay = actions.add_parser("replay", parents=[parent], help="send a past event again (same id)",
                                description="Send a past event again, with the same id and body, to one "
                                "endpoint or to every enabled endpoint that receives its type.")
    replay.add_argument("event_id", help="the event id (evt_...)")
    replay.add_argument("--endpoint", metavar="ID", help="only to this endpoint")
    replay.set_defaults(handler=_replay)

    threshold = actions.add_parser("credits-threshold", parents=[parent], help="when credits.low fires",
                                   description="Set the balance (cents) under which a workspace gets credits.low.")
    threshold.add_argument("workspace", help="workspace id")
    threshold.add_argument("cents", type=_non_negative, help="threshold in cents")
    threshold.set_defaults(handler=_threshold)
