"""POST /embeddings: float vectors from the backend, base64 (little-endian float32) when asked."""

from __future__ import annotations

import base64
from array import array
from sys import byteorder
from typing import Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.billing import Usage, estimate_usage, reported_count
from runinfra_gateway.params import check_fields
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.charging import Reply, run_charged
from runinfra_gateway.v1.request import JsonRequest

__all__ = ["embeddings"]


def _check_input(value: Any) -> None:
    if value is None:
        raise errors.invalid_request("'input' is required.", code="missing_field", param="input")
    if isinstance(value, str):
        if not value:
            raise errors.invalid_request("'input' must not be empty.", param="input")
        return
    if not isinstance(value, list) or not value:
        raise errors.invalid_request("'input' must be a non-empty string or array of strings.", param="input")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise errors.invalid_request(f"'input[{index}]' must be a non-empty string.", param=f"input[{index}]")


def _as_base64(vector: Any) -> str:
    packed = array("f", vector)
    if byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


async def embeddings(state: GatewayState, call: Call, request: JsonRequest) -> None:
    body = request.body
    runtime = request.deployment(state, "embeddings")
    check_fields(body, runtime.allowed["embeddings"], runtime.id)
    _check_input(body.get("input"))
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64", None):
        raise errors.invalid_request("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise errors.invalid_request("'dimensions' must be a positive integer.", param="dimensions")
    backend_body = {k: v for k, v in body.items() if k != "encoding_format"}

    async def work() -> Reply:
        assert runtime.backend is not None
        result = await runtime.backend.embeddings(backend_body)
        result["model"] = runtime.id
        if encoding == "base64":
            for item in result.get("data") or ():
                if isinstance(item, dict) and isinstance(item.get("embedding"), list):
                    try:
                        item["embedding"] = _as_base64(item["embedding"])
                    except TypeError:  # an engine's vector of lists or strings: nothing to pack
                        raise errors.deployment_error(
                            f"Deployment {runtime.id!r} returned an embedding that is not a list of numbers."
                        ) from None
        raw_usage = result.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        tokens = reported_count(usage.get("prompt_tokens"))
        if tokens is None:
            tokens = reported_count(usage.get("total_tokens"))
        if tokens is None:  # none reported, or none chargeable: the hold's own estimate
            tokens = estimate_usage("embeddings", body).input_tokens
        return Reply(orjson.dumps(result), b"application/json", Usage(input_tokens=tokens))

    await run_charged(state, call, runtime, "embeddings", body, request.raw, work)
