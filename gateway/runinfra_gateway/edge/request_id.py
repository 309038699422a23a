"""Request ids: ours on every response, and the client's own id recorded next to it."""

from __future__ import annotations

import itertools
import os
import re

__all__ = ["client_request_id", "new_request_id"]

# A client id we record and log verbatim must be short printable ASCII: nothing that
# could forge a log line or a header. Anything else is dropped, not "cleaned".
_CLIENT_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")

# Ids must be unique, not secret: a random per-process prefix (72 bits, so restarts and
# replicas never collide) and a counter. No system call per request.
_PREFIX = "req_" + os.urandom(9).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):010x}"


def client_request_id(raw: bytes | None) -> str | None:
    if raw is None or not _CLIENT_ID.match(raw):
        return None
    return raw.decode("ascii")
