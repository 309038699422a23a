"""Text another party chose, made safe to show: an engine's error message, a webhook receiver's reply, a
client's request path in the log, a server's error text in the operator CLI.

It ends up in terminals (``runinfra serve``'s progress lines, ``runinfra webhooks deliveries``), logs and
pages, where an escape sequence must not act and a line break must not forge a line of its own.
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str, limit: int) -> str:
    """``text`` with every unprintable character (control characters, line breaks) as ``?``, at most ``limit`` long."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
