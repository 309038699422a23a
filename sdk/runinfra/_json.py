"""Decoding JSON response bodies and stream frames with the least work per call.

``json.loads`` on bytes first sniffs the encoding and then runs two whitespace regexes
around the C scanner. Gateway bodies are UTF-8 objects, so the C scanner is called
directly; anything unusual (leading whitespace, trailing data, invalid text) falls back to
``json.loads`` for the exact standard result or error.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Union


__all__ = ["decode_json"]

_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner, set in __init__
_loads = json.loads


def decode_json(data: Union[bytes, bytearray, str]) -> Any:
    """``json.loads(data)``, faster for the common case; raises ``ValueError`` like it.

    Nesting too deep to decode is a ``ValueError`` too: the decoder recurses once per level, and a
    hostile body of ``[[[[…`` must not escape as a ``RecursionError`` past the SDK's typed errors.
    """
    try:
        try:
            text = data if isinstance(data, str) else data.decode("utf-8")
            value, end = _scan_once(text, 0)
        except (StopIteration, UnicodeDecodeError):
            return _loads(data)
        if end != len(text):
            return _loads(data)  # trailing whitespace is fine, anything else raises
        return value
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None
