"""Chat chunks that say whether more chunks of the same network read follow them.

One read from an engine often carries several SSE events (always, when the
engine is fast or the network batches). Writing each chunk to the client as its
own send costs a system call per event; a consumer that sees ``more_ready``
may hold the bytes and write them with the last chunk of the read, which adds
no waiting (those chunks were all in hand already). The gateway's shapers
(:mod:`runinfra_gateway.shaping`) do exactly that; any other consumer can
ignore the flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runinfra_gateway.backends.base import ChatChunk

__all__ = ["ReadChunk", "read_chunk"]


@dataclass(frozen=True)
class ReadChunk(ChatChunk):
    """A :class:`ChatChunk` with ``more_ready``: True when the next chunk is already in hand."""

    more_ready: bool = False


def read_chunk(payload: bytes, data: dict[str, Any], *, more_ready: bool) -> ReadChunk:
    """A chunk whose ``data`` is already parsed (seeding ``ChatChunk.data``'s cache, so nothing parses twice)."""
    # Built without the frozen dataclass __init__ (two object.__setattr__ calls per chunk, on the hot path of
    # every stream): the fields and ChatChunk.data's cached value all live in the instance __dict__.
    chunk = _new_chunk(ReadChunk)
    chunk.__dict__.update(payload=payload, more_ready=more_ready, data=data)
    return chunk


_new_chunk = object.__new__
