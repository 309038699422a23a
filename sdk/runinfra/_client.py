"""``RunInfra``: the client, and the request loop every operation goes through."""

from __future__ import annotations

import os
import time

from ._audio import AudioResponse
from ._base_url import DEFAULT_BASE_URL, parse_base_url, scope_to_pipeline
from ._error_mapping import error_for_status, error_from_payload
from ._errors import (
    REDACTED,
    RunInfraError,
    RunInfraStreamParseError,
    RunInfraTransportError,
    invalid_options,
    printable,
    raise_unchained,
    redact,
    redact_decoded,
    redact_headers,
    translate_transport_error,
)
from ._logging import client_logger
from ._options import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BASE_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    ResolvedOptions,
    check_max_retries,
    check_retry_base_seconds,
    check_timeout_seconds,
    new_client_request_id,
    resolve_request_options,
)
from ._retry import Retry
from ._streaming import RunInfraStream, iter_json_events, iter_sse
from ._version import __version__
from ._wire import RunInfraRequest, RunInfraResponse, header_value

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Callable, Collection, Dict, Mapping, Optional, Union

__all__ = ["RunInfra"]

if TYPE_CHECKING:
    from ._types import Transport


def _check_api_key(api_key: object) -> str:
    if api_key is None:
        api_key = os.environ.get("RUNINFRA_API_KEY")
        if api_key is None:
            raise invalid_options("api_key is required (pass api_key= or set RUNINFRA_API_KEY)", param="api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise invalid_options("api_key must be a non-blank string", param="api_key")
    if not api_key.isascii() or not api_key.isprintable() or " " in api_key or len(api_key) > 4096:
        # Never echo the value: it is a secret even when malformed.
        raise invalid_options("api_key must be printable ASCII without spaces", param="api_key")
    return api_key


def _loggable(text: Optional[str]) -> Optional[str]:
    # Server text in a log line: an escape sequence must not drive the terminal that shows the log.
    return None if text is None else printable(text)


def _noop() -> None:
    return None


class _Core:
    """Everything a request needs: base URL, secret headers, defaults, transport, logger."""

    __slots__ = (
        "base",
        "default_headers",
        "logger",
        "max_retries",
        "owns_transport",
        "retry_base_seconds",
        "secret",
        "secret_bytes",
        "timeout",
        "transport",
    )

    def __init__(
        self,
        secret: str,
        base: Any,
        timeout: float,
        max_retries: int,
        retry_base_seconds: float,
        transport: Optional[Transport],
    ) -> None:
        self.secret = secret
        self.secret_bytes = secret.encode("ascii")
        self.base = base
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds
        self.default_headers = {
            "Authorization": f"Bearer {secret}",
            "Accept": "application/json",
            "User-Agent": f"runinfra-python/{__version__}",
            "X-RunInfra-SDK": "python",
            "X-RunInfra-SDK-Version": __version__,
        }
        self.logger = client_logger()
        if transport is None:
            from ._transport import HTTPTransport

            self.transport: Transport = HTTPTransport()
            self.owns_transport = True
        else:
            if not callable(transport):
                raise invalid_options("transport must be a callable taking a RunInfraRequest", param="transport")
            self.transport = transport
            self.owns_transport = False

    def __repr__(self) -> str:
        return f"<runinfra client core for {self.base.url}>"

    def options(self, raw: Optional[Mapping[str, object]]) -> ResolvedOptions:
        return resolve_request_options(
            raw,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_base_seconds=self.retry_base_seconds,
            api_key=self.secret,
        )

    # --- the request loop -------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        body: Optional[bytes],
        content_type: Optional[str],
        options: ResolvedOptions,
        *,
        replay_safe: bool,
        stream: bool = False,
        accept: Optional[str] = None,
    ) -> RunInfraResponse:
        """Send with retries; return the first success, or raise the typed error."""
        headers = self.default_headers.copy()
        client_request_id = options.client_request_id or new_client_request_id()
        headers["X-Client-Request-Id"] = client_request_id
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        if options.idempotency_key is not None:
            headers["Idempotency-Key"] = options.idempotency_key
        if options.headers:
            for name, value in options.headers.items():
                lowered = name.lower()
                for default in ("Accept", "User-Agent"):  # the only SDK defaults an app may replace
                    if default.lower() == lowered and default != name:
                        del headers[default]
                headers[name] = value
        url = self.base.url + path
        retry = Retry(options.max_retries, options.retry_base_seconds)
        logger = self.logger
        while True:
            request = RunInfraRequest(method, url, headers, body, stream, options.timeout)
            started = time.perf_counter() if logger is not None else 0.0
            if logger is not None:
                logger.debug("runinfra request %s %s client_request_id=%s", method, self._path(url), client_request_id)
            try:
                response = self._call_transport(request)
            except RunInfraTransportError as transport_error:
                if not retry.is_retry_after_transport_error(replay_safe, transport_error._transient):
                    raise
                delay = retry.get_backoff_time()
                self._log_retry(method, url, transport_error.__class__.__name__, delay, retry)
                retry = retry.increment()
                time.sleep(delay)
                continue
            status = response.status
            if logger is not None:
                logger.info(
                    "runinfra %s %s -> %s in %.1f ms request_id=%s client_request_id=%s",
                    method,
                    self._path(url),
                    status,
                    (time.perf_counter() - started) * 1000,
                    _loggable(header_value(response.headers, "x-request-id")),
                    client_request_id,
                )
            if 200 <= status < 300:
                return response
            error = error_for_status(status, response.headers, self._read_error_body(response), self.secret)
            if retry.is_retry(replay_safe, status, error.type):
                delay = retry.sleep_seconds(header_value(response.headers, "retry-after"))
                self._log_retry(method, url, f"status {status}", delay, retry)
                retry = retry.increment()
                time.sleep(delay)
                continue
            raise_unchained(error)

    def _call_transport(self, request: RunInfraRequest) -> RunInfraResponse:
        try:
            response = self.transport(request)
            response.headers = redact_headers(response.headers, self.secret)
            return response
        except RunInfraError:
            raise
        except Exception as exc:
            translated = translate_transport_error(exc, self.secret, None)
            if translated is None:
                raise
        raise_unchained(translated)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_error_body(self, response: RunInfraResponse) -> bytes:
        try:
            return response.read()[:1_000_000]
        except RunInfraError:
            return b""

    def _path(self, url: str) -> str:
        return redact(url[len(self.base.url) - len(self.base.prefix) :], self.secret)

    def _log_retry(self, method: str, url: str, reason: str, delay: float, retry: Retry) -> None:
        if self.logger is not None:
            self.logger.info(
                "runinfra retrying %s %s after %s in %.2f s (retry %d of %d)",
                method,
                self._path(url),
                reason,
                delay,
                retry.retries_done + 1,
                retry.total,
            )

    # --- result shapes ----------------------------------------------------------------------

    def json_result(self, response: RunInfraResponse) -> Any:
        """The JSON object body, with ``_request_id`` and ``_idempotent_replay`` added."""
        from ._json import decode_json

        headers = response.headers
        request_id = header_value(headers, "x-request-id")
        body = response.body if isinstance(response.body, bytes) else response.read()
        if self.secret_bytes in body:
            body = body.replace(self.secret_bytes, REDACTED.encode("ascii"))
        try:
            result = decode_json(body)
        except ValueError:
            result = None
        if b"\\" in body:  # an escaped key slips past the byte replacement above
            result = redact_decoded(result, self.secret)
        if type(result) is not dict:
            raise_unchained(
                RunInfraError(
                    "the gateway answered with a body that is not a JSON object",
                    type="invalid_response",
                    status_code=response.status,
                    request_id=request_id,
                )
            )
        if request_id is not None:
            result["_request_id"] = request_id
        replay = header_value(headers, "x-runinfra-idempotent-replay")
        if replay is not None and replay.strip().lower() == "true":
            result["_idempotent_replay"] = True
        return result

    def audio_result(self, response: RunInfraResponse) -> AudioResponse:
        content_type = header_value(response.headers, "content-type") or "application/octet-stream"
        return AudioResponse(response.read(), content_type, header_value(response.headers, "x-request-id"))

    def stream_result(self, response: RunInfraResponse, final_types: Collection[str] = ()) -> RunInfraStream:
        """The response's events; it must end at ``[DONE]`` or after an event of ``final_types``."""
        request_id = header_value(response.headers, "x-request-id")
        body = response.body
        close_body: Callable[[], None] = _noop
        if isinstance(body, (bytes, bytearray)):
            chunks = iter((bytes(body),))
        else:
            chunks = iter(body)
            close_body = getattr(body, "close", _noop)
        content_type = header_value(response.headers, "content-type")
        if content_type is not None and not content_type.lower().startswith("text/event-stream"):
            close_body()
            raise_unchained(
                RunInfraStreamParseError(
                    f"expected an event stream, the gateway answered {content_type[:100]!r}", request_id=request_id
                )
            )
        secret = self.secret

        def raise_error(error: Dict[str, Any], event: Optional[str]) -> None:
            raise_unchained(error_from_payload(error, status=None, request_id=request_id, secret=secret))

        events = iter_json_events(
            iter_sse(chunks, request_id),
            request_id,
            raise_error,
            remainder=chunks,
            close_body=close_body,
            secret=self.secret_bytes,
            final_types=final_types,
        )
        return RunInfraStream(events, request_id, close_body)


class RunInfra:
    """The sync RunInfra client.

    ``pipeline_id`` scopes every route to one pipeline (stripped and URL-encoded; never
    scoped twice when ``base_url`` already names the same pipeline). ``transport`` replaces
    the pooled HTTP transport with any callable taking a ``RunInfraRequest``.
    """

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        pipeline_id: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout_seconds: Union[int, float] = DEFAULT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_base_seconds: Union[int, float] = DEFAULT_RETRY_BASE_SECONDS,
        transport: Optional[Transport] = None,
    ) -> None:
        from ._resources import Audio, Chat, Embeddings, Images, Models, Responses, Voice
        from .webhooks import Webhooks

        secret = _check_api_key(api_key)
        base = scope_to_pipeline(parse_base_url(DEFAULT_BASE_URL if base_url is None else base_url), pipeline_id)
        self._core = _Core(
            secret,
            base,
            check_timeout_seconds(timeout_seconds),
            check_max_retries(max_retries),
            check_retry_base_seconds(retry_base_seconds),
            transport,
        )
        self.models = Models(self._core)
        self.chat = Chat(self._core)
        self.responses = Responses(self._core)
        self.embeddings = Embeddings(self._core)
        self.images = Images(self._core)
        self.audio = Audio(self._core)
        self.voice = Voice(self._core)
        self.webhooks = Webhooks()

    @property
    def base_url(self) -> str:
        """The effective base URL, pipeline scope included."""
        return str(self._core.base.url)

    @property
    def pipeline_id(self) -> Optional[str]:
        """The (URL-encoded) pipeline the client is scoped to, if any."""
        segment: Optional[str] = self._core.base.pipeline_segment
        return segment

    @property
    def transport(self) -> Transport:
        return self._core.transport

    def close(self) -> None:
        """Close pooled connections (a transport passed in by the caller is left alone)."""
        if self._core.owns_transport:
            self._core.transport.close()  # type: ignore[attr-defined]

    def __enter__(self) -> RunInfra:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunInfra(base_url={self.base_url!r})"

    def __getstate__(self) -> Dict[str, Any]:
        raise TypeError("RunInfra clients hold a secret and open connections; create one per process")
