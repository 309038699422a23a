"""Numbers read from JSON and TOML documents, where ``true`` must not pass for 1.

``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)`` holds: every number read from a
request body, a config file or an engine's answer goes through these instead of ``isinstance`` alone.
"""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = ["is_finite_number", "is_number"]


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool`` (NaN and infinity included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A number that is neither NaN nor infinite (TOML writes both; NaN fails every range check silently)."""
    return is_number(value) and math.isfinite(value)
