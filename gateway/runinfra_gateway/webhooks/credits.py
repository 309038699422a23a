"""``credits.low`` and ``credits.depleted``: fired when settled money crosses a workspace's thresholds.

The ledger calls :func:`credit_events` inside the transaction that applies a
batch of journal records to the account rows, with each touched workspace's
funds before and after (balance plus holds: money not yet spent, so a hold that
is released again never looks like a crossing). The batch is applied exactly
once, so each crossing is announced once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from runinfra_gateway.webhooks.models import WebhookWorkspaceSettings
from runinfra_gateway.webhooks.outbox import enqueue_event

__all__ = ["credit_events", "funds"]

_MICROCENTS_PER_CENT = 1_000_000


def funds(session: Session, workspace_ids: Iterable[str]) -> dict[str, int]:
    """Balance plus held micro-cents of each workspace's credit account (0 where there is none yet)."""
    from runinfra_gateway.billing.models import CreditAccount

    ids = list(workspace_ids)
    found = {
        row.workspace_id: int(row.balance_microcents) + int(row.held_microcents)
        for row in session.execute(
            select(
                CreditAccount.workspace_id, CreditAccount.balance_microcents, CreditAccount.held_microcents
            ).where(CreditAccount.workspace_id.in_(ids))
        )
    }
    return {workspace: found.get(workspace, 0) for workspace in ids}


def credit_events(session: Session, before: Mapping[str, int], after: Mapping[str, int]) -> None:
    """Enqueue ``credits.low`` / ``credits.depleted`` for every workspace whose funds fell across a line."""
    fell = [w for w in after if w in before and after[w] < before[w]]
    if not fell:
        return
    thresholds = {
        row.workspace_id: int(row.credits_low_threshold_microcents)
        for row in session.scalars(
            select(WebhookWorkspaceSettings).where(WebhookWorkspaceSettings.workspace_id.in_(fell))
        )
    }
    for workspace in fell:
        old, new = before[workspace], after[workspace]
        threshold = thresholds.get(workspace)
        if threshold is not None and old > threshold >= new and new > 0:
            enqueue_event(
                session,
                workspace_id=workspace,
                type="credits.low",
                data={
                    "balance_cents": new / _MICROCENTS_PER_CENT,
                    "threshold_cents": threshold / _MICROCENTS_PER_CENT,
                },
            )
        if old > 0 >= new:
            enqueue_event(session, workspace_id=workspace, type="credits.depleted", data={"balance_cents": 0})
