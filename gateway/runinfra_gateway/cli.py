"""The ``runinfra`` console script (placeholder until the gateway core lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("runinfra: the gateway is not built yet", file=sys.stderr)
    return 2
