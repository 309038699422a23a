"""Credits: prices, the ledger, holds and settlement.

Amounts are integers in micro-cents (``MICROCENTS_PER_CENT`` per cent) so the
smallest request is charged exactly; the API reports cents. See
:mod:`runinfra_gateway.billing.ledger` for the hold/settle cycle and what survives
a crash, and :mod:`runinfra_gateway.billing.prices` for how charges are computed.
"""

from runinfra_gateway.billing.journal import JournalCorrupt, JournalLocked
from runinfra_gateway.billing.ledger import Balance, Hold, Ledger
from runinfra_gateway.billing.prices import (
    MICROCENTS_PER_CENT,
    Prices,
    Usage,
    cents_to_microcents,
    estimate_usage,
    microcents_to_cents,
)
from runinfra_gateway.billing.reported import reported_count, reported_seconds, reported_tokens

__all__ = [
    "MICROCENTS_PER_CENT",
    "Balance",
    "Hold",
    "JournalCorrupt",
    "JournalLocked",
    "Ledger",
    "Prices",
    "Usage",
    "cents_to_microcents",
    "estimate_usage",
    "microcents_to_cents",
    "reported_count",
    "reported_seconds",
    "reported_tokens",
]
