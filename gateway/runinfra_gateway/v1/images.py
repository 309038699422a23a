"""POST /images/generations: PNGs from the backend, returned inline or as short-lived absolute URLs."""

from __future__ import annotations

from typing import Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.backends.base import GeneratedImages
from runinfra_gateway.billing import Usage
from runinfra_gateway.params import check_fields
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.charging import Reply, run_charged
from runinfra_gateway.v1.request import JsonRequest

__all__ = ["IMAGE_FILES_PREFIX", "images_generate"]

IMAGE_FILES_PREFIX = "/v1/images/files/"
_MAX_IMAGES = 10


def _check(body: dict[str, Any]) -> tuple[int, str]:
    prompt = body.get("prompt")
    if prompt is None:
        raise errors.invalid_request("'prompt' is required.", code="missing_field", param="prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise errors.invalid_request("'prompt' must be a non-empty string.", param="prompt")
    count = body.get("n", 1)
    if count is None:
        count = 1
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= _MAX_IMAGES:
        raise errors.invalid_request(f"'n' must be an integer from 1 to {_MAX_IMAGES}.", param="n")
    response_format = body.get("response_format") or "url"
    if response_format not in ("url", "b64_json"):
        raise errors.invalid_request("'response_format' must be 'url' or 'b64_json'.", param="response_format")
    return count, response_format


async def images_generate(state: GatewayState, call: Call, request: JsonRequest) -> None:
    body = request.body
    runtime = request.deployment(state, "images.generate")
    check_fields(body, runtime.allowed["images.generate"], runtime.id)
    requested, response_format = _check(body)
    backend_body = {**body, "response_format": "b64_json", "n": requested}

    async def work() -> Reply:
        assert runtime.backend is not None
        generated = await runtime.backend.images(backend_body)
        count = min(len(generated.images), requested)  # an engine's extra images are neither sent nor charged
        if response_format == "b64_json":
            data = [{"b64_json": _checked_base64(runtime.id, generated, index)} for index in range(count)]
        else:
            data = [{"url": _short_lived_url(state, runtime.id, generated, index)} for index in range(count)]
        return Reply(orjson.dumps({"created": generated.created, "data": data}), b"application/json",
                     Usage(images=count))

    await run_charged(state, call, runtime, "images.generate", body, request.raw, work)


def _short_lived_url(state: GatewayState, deployment_id: str, generated: GeneratedImages, index: int) -> str:
    return f"{state.public_base_url}{IMAGE_FILES_PREFIX}{state.image_urls.put(_png(deployment_id, generated, index))}"


def _checked_base64(deployment_id: str, generated: GeneratedImages, index: int) -> str:
    """Image ``index`` as base64 text; text an engine sent is decoded once first, so garbage is never charged."""
    if isinstance(generated.images[index], str):
        _png(deployment_id, generated, index)
    return generated.as_base64(index)


def _png(deployment_id: str, generated: GeneratedImages, index: int) -> bytes:
    try:
        png = generated.as_png(index)
    except ValueError:
        png = b""
    if not png:
        raise errors.deployment_error(f"Deployment {deployment_id!r} returned undecodable image data.")
    return png
