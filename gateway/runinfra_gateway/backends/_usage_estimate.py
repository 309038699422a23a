"""Usage for engines that do not report it (llama.cpp's Python server ignores
``stream_options.include_usage``): an estimate, so a stream is still charged.

Output tokens are counted as content deltas (engines stream one token per
delta); input tokens are estimated from the prompt's characters (about four
per token, plus a few per message for the chat template).
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["estimate_prompt_tokens", "estimated_usage"]


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    characters = 0
    messages = body.get("messages")
    count = 0
    for message in messages if isinstance(messages, list) else ():
        count += 1
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            characters += len(content)
        elif isinstance(content, list):
            characters += sum(
                len(part["text"]) for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return max(1, (characters + 3) // 4 + 4 * count)


def estimated_usage(body: Mapping[str, Any], completion_tokens: int) -> dict[str, Any]:
    prompt_tokens = estimate_prompt_tokens(body)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
