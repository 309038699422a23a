"""The /v1 router: path → route, method check, key, pipeline scope, body, handler.

Routes are matched on the raw path, one percent-decoded segment at a time, so
``%2F`` or ``%2e%2e`` inside a pipeline id can never be read as a separator
or a traversal: the decoded id must match the pipeline id pattern or the
request is refused.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from runinfra_gateway import errors
from runinfra_gateway.edge.body import check_content_type, parse_json_object, read_body
from runinfra_gateway.settings import PIPELINE_ID_PATTERN
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.chat import chat_completions, responses
from runinfra_gateway.v1.embeddings import embeddings
from runinfra_gateway.v1.images import images_generate
from runinfra_gateway.v1.models import list_models, retrieve_model
from runinfra_gateway.v1.request import JsonRequest
from runinfra_gateway.v1.scope import pipeline_in_scope
from runinfra_gateway.v1.speech import speech
from runinfra_gateway.v1.transcriptions import transcriptions
from runinfra_gateway.v1.voice import voice_pipeline

__all__ = ["route_label", "serve_v1"]

_JSON_ROUTES = {
    ("chat", "completions"): chat_completions,
    ("responses",): responses,
    ("embeddings",): embeddings,
    ("images", "generations"): images_generate,
    ("audio", "speech"): speech,
}
_ROOT_NAMES = frozenset({"models", "chat", "responses", "embeddings", "images", "audio"})
_APPLICATION_JSON = b"application/json"


def _segments(call: Call) -> list[str]:
    raw = call.scope.get("raw_path") or call.path.encode("utf-8", "surrogateescape")
    if not raw.startswith(b"/v1/"):
        raise errors.not_found(call.path[:200])
    parts = raw[4:].split(b"/")
    if parts and parts[-1] == b"" and len(parts) > 1:
        parts.pop()  # one trailing slash is harmless
    try:
        if b"%" not in raw:  # the common case: nothing to decode
            return [part.decode("utf-8") for part in parts]
        return [unquote_to_bytes(part).decode("utf-8") for part in parts]
    except UnicodeDecodeError:
        raise errors.not_found(call.path[:200]) from None


def route_label(call: Call) -> str:
    """A bounded label for metrics: the operation, or a coarse route name."""
    return call.operation or "other"


def _method(call: Call, allowed: str) -> None:
    if call.method != allowed:
        raise errors.method_not_allowed(call.method[:16], allowed)


async def serve_v1(state: GatewayState, call: Call) -> None:
    segments = _segments(call)
    pipeline_id: str | None = None
    if segments and segments[0] not in _ROOT_NAMES:
        candidate, segments = segments[0], segments[1:]
        route = tuple(segments)
        known = (
            route in _JSON_ROUTES
            or route in (("pipeline",), ("audio", "transcriptions"))
            or route[:1] == ("models",)
        )
        if not known:
            raise errors.not_found(call.path[:200])
        if not PIPELINE_ID_PATTERN.match(candidate):
            raise errors.invalid_request("The pipeline id in the path is not valid.", param="pipeline_id")
        pipeline_id = candidate
    call.pipeline_id = pipeline_id
    route = tuple(segments)

    if route[:2] == ("images", "files") and len(route) == 3 and pipeline_id is None:
        _method(call, "GET")
        call.operation = "images.file"
        await state.image_urls.serve(route[2], call.scope, call.receive, call.send, call.request_id)
        call.status = 200
        return

    if route and route[0] == "models":
        _method(call, "GET")
        key = await state.keys.authenticate(call.headers.get(b"authorization"))
        call.key = key
        pipeline = pipeline_in_scope(state, key, pipeline_id)
        if len(route) == 1:
            await list_models(state, call, key, pipeline)
        else:
            await retrieve_model(state, call, key, pipeline, "/".join(route[1:]))
        return

    handler = _JSON_ROUTES.get(route)
    is_transcription = route == ("audio", "transcriptions")
    is_pipeline = route == ("pipeline",) and pipeline_id is not None
    if handler is None and not is_transcription and not is_pipeline:
        raise errors.not_found(call.path[:200])
    _method(call, "POST")
    key = await state.keys.authenticate(call.headers.get(b"authorization"))
    call.key = key
    pipeline = pipeline_in_scope(state, key, pipeline_id)
    raw = await read_body(call.receive, call.headers.get(b"content-length"), state.settings.max_body_bytes)
    if is_transcription:
        call.watch_disconnect()
        await transcriptions(state, call, key, pipeline, raw)
        return
    if is_pipeline:
        assert pipeline is not None
        call.watch_disconnect()
        await voice_pipeline(state, call, key, pipeline, raw)
        return
    assert handler is not None
    check_content_type(call.headers.get(b"content-type"), _APPLICATION_JSON)
    body = parse_json_object(raw)
    call.watch_disconnect()
    await handler(state, call, JsonRequest(call=call, key=key, pipeline=pipeline, body=body, raw=raw))
