"""Reading an embedded deployment's engine options (the pass-through part of its config table)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..real_numbers import is_number

__all__ = ["EngineOptions"]


class EngineOptions:
    """Typed reads of a deployment table; a bad value raises ``ValueError`` naming the key."""

    def __init__(self, deployment_id: str, table: Mapping[str, Any]) -> None:
        self.deployment_id = deployment_id
        self._table = table

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._table.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"deployment {self.deployment_id!r}: {key!r} must be a non-empty string")
        return value

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        return Path(value).expanduser() if value is not None else None

    def integer(self, key: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
        value = self._table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"deployment {self.deployment_id!r}: {key!r} must be an integer >= {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"deployment {self.deployment_id!r}: {key!r} must be at most {maximum}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._table.get(key, default)
        # TOML has nan and inf: a NaN passes every comparison false, so a nan limit would be no limit.
        if not is_number(value) or not minimum <= value < math.inf:
            raise ValueError(f"deployment {self.deployment_id!r}: {key!r} must be a finite number >= {minimum:g}")
        return float(value)

    def strings(self, key: str, default: list[str]) -> list[str]:
        value = self._table.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"deployment {self.deployment_id!r}: {key!r} must be a list of strings")
        return list(value)

    def threads(self) -> int:
        """CPU threads per model instance: the config's, else half the cores.

        Every engine of the process shares the machine; with all cores each,
        their threads contend and llama.cpp's barrier waits grow tenfold on a
        busy 2-core box (measured: 0.2 s vs 1.8-5 s for the same answer).
        """
        return self.integer("threads", max(1, (os.cpu_count() or 2) // 2))

    def data_dir(self) -> Path:
        from .pinning import data_dir

        return data_dir(self.text("data_dir"))
