"""The CLI's tables: left-aligned columns, one line per row, whatever the cells hold."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

from runinfra_gateway.peer_text import printable

__all__ = ["print_table"]

_MAX_CELL = 1000


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: IO[str] | None = None) -> None:
    """Columns separated by two spaces; ``-`` for empty cells, ``(none)`` for no rows.

    Cells are made printable: a name or an engine's error with a line break or an escape sequence in it
    must neither break the table nor act on the terminal.
    """
    stream = out or sys.stdout
    if not rows:
        stream.write("(none)\n")
        return
    cells = [[("-" if v is None or v == "" else printable(str(v), _MAX_CELL)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    stream.write("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        stream.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
