"""A deployment served by an OpenAI-compatible engine over HTTP (vLLM, SGLang, llama.cpp, Ollama, TGI).

Connections are pooled and kept alive. A deployment may list several replicas:
requests go to the least busy one that is up, and a request that cannot even
connect moves to the next replica (only before the engine has answered a
byte: a stream is never restarted elsewhere). Health checks mark replicas down
and up in the background. Streams are parsed incrementally and each chunk's
bytes are passed on untouched. Closing a stream early, or cancelling a
non-streaming call, closes the upstream connection so the engine stops
generating.

Failures map onto the error table in :mod:`._upstream_errors`: nothing to
connect to → 503 with ``Retry-After``; connection refused or lost → 502;
timeouts → 504; engine 4xx → 400 with the engine's message; engine 5xx → 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import struct
import time
from typing import Any, AsyncIterator, Mapping, Sequence

import orjson

from runinfra_gateway.backends._answer_shapes import completion_fault, embeddings_fault, transcription_fault
from runinfra_gateway.backends._http_client import (
    BodyTooLarge,
    ConnectFailed,
    ConnectionLost,
    Endpoint,
    HttpClient,
    ProtocolError,
    Response,
)
from runinfra_gateway.backends._read_chunks import read_chunk
from runinfra_gateway.backends._replicas import Replica, ReplicaSet
from runinfra_gateway.backends._sse_reader import SSEOverflow, SSEReader
from runinfra_gateway.backends._upstream_config import UpstreamConfig
from runinfra_gateway.backends._upstream_errors import error_from_upstream, upstream_message
from runinfra_gateway.backends._usage_estimate import estimated_usage
from runinfra_gateway.backends.base import (
    AudioResult,
    ChatChunk,
    GeneratedImages,
    Operation,
    ProbeResult,
    TranscriptionInput,
)
from runinfra_gateway.billing import reported_tokens
from runinfra_gateway.errors import GatewayError, deployment_error, invalid_request
from runinfra_gateway.shaping.responses import responses_to_chat

__all__ = ["UpstreamBackend"]

_ERROR_BODY_LIMIT = 64 * 1024
_AUDIO_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}


class UpstreamBackend:
    """The :class:`~runinfra_gateway.backends.base.Backend` of an upstream deployment."""

    def __init__(self, deployment_id: str, config: UpstreamConfig) -> None:
        self.deployment_id = deployment_id
        self._config = config
        self._model = config.model
        self._secret = config.api_key
        self._replicas = ReplicaSet(
            list(config.base_urls),
            policy=config.load_balancing,
            cooldown_seconds=config.health_check_interval_seconds or 5.0,
        )
        # Request head lines, encoded once (the key is never logged; it lives only in these bytes).
        auth = b"Authorization: Bearer " + config.api_key.encode("latin-1") + b"\r\n" if config.api_key else b""
        self._auth_headers = auth
        self._json_headers = b"Content-Type: application/json\r\n" + auth
        self._stream_headers = self._json_headers + b"Accept: text/event-stream\r\n"
        self._endpoints = {url: Endpoint.from_url(url) for url in config.base_urls}
        self._client: HttpClient | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._closed = False
        self._endings: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, deployment_id: str, table: Mapping[str, Any]) -> UpstreamBackend:
        """Build from a ``[[deployments]]`` table; raises ``ValueError`` naming a bad key."""
        return cls(deployment_id, UpstreamConfig.from_table(deployment_id, table))

    def __repr__(self) -> str:
        return f"UpstreamBackend({self.deployment_id!r}, replicas={list(self._config.base_urls)!r})"

    @property
    def replicas(self) -> list[Replica]:
        """The replicas and their state (in flight, down until, last error), for status pages."""
        return self._replicas.replicas

    # -- operations ---------------------------------------------------------------------------

    async def chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = self._upstream_body(body)
        request.pop("stream_options", None)
        request["stream"] = False
        completion = await self._post_json("/chat/completions", request)
        fault = completion_fault(completion)
        if fault is not None:
            raise deployment_error(
                f"The upstream engine of {self.deployment_id!r} answered a malformed chat completion: {fault}."
            )
        if reported_tokens(completion.get("usage")) is None:  # none, or counts that cannot be charged
            completion["usage"] = estimated_usage(request, _completion_tokens_guess(completion))
        return completion

    async def chat_stream(self, body: Mapping[str, Any]) -> AsyncIterator[ChatChunk]:
        """Chunks as the engine sends them; the engine is contacted on the first ``__anext__``.

        Errors before the first chunk are raised there (the edge can still answer
        with a status); later ones are raised mid-stream. ``aclose()`` closes the
        upstream connection.
        """
        request = self._upstream_body(body)
        request["stream"] = True
        options = request.get("stream_options")
        request["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        loop = asyncio.get_running_loop()
        started = loop.time()
        replica, response = await self._send(
            "/chat/completions", orjson.dumps(request), self._stream_headers,
            started + self._config.first_byte_timeout_seconds,
        )
        deadline = started + self._config.stream_timeout_seconds
        idle = self._config.timeout_seconds
        finished = False  # [DONE] arrived: the engine is done, the connection may be kept
        try:
            if response.status >= 300:
                raise await self._error_response(response)
            reader = SSEReader()
            usage_seen = False
            content_deltas = 0
            last: dict[str, Any] = {}
            done = False
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                piece = await response.read_any(loop.time() + min(idle, left))
                if not piece:
                    done = b"[DONE]" in reader.close()
                    break
                payloads = reader.feed(piece)
                if not payloads:
                    continue
                # Parse the whole read before yielding any of it: the chunks go out together (see _read_chunks),
                # and a malformed frame still lets every good chunk before it through.
                parsed: list[tuple[bytes, dict[str, Any]]] = []
                failure: GatewayError | None = None
                for payload in payloads:
                    if payload == b"[DONE]":
                        done = True
                        break
                    try:
                        data = self._parse_event(payload)
                    except GatewayError as exc:
                        failure = exc
                        break
                    parsed.append((payload, data))
                    if data.get("usage") is not None and reported_tokens(data["usage"]) is not None:
                        usage_seen = True  # otherwise an estimate follows the engine's last chunk
                    choices = data.get("choices")
                    if choices and type(choices) is list:  # counted for the usage estimate, if the engine sends none
                        delta = choices[0].get("delta") if type(choices[0]) is dict else None
                        if type(delta) is dict and delta.get("content"):
                            content_deltas += 1
                if parsed:
                    last = parsed[-1][1]
                    final = len(parsed) - 1
                    for index, (payload, data) in enumerate(parsed):
                        yield read_chunk(payload, data, more_ready=index < final)
                if failure is not None:
                    raise failure
                if done:
                    break
            if not done:
                raise deployment_error(
                    f"The upstream stream of {self.deployment_id!r} ended before [DONE]; the answer may be cut short."
                )
            finished = True
            if not usage_seen:
                yield ChatChunk.from_dict({
                    "id": last.get("id", "chatcmpl-" + secrets.token_hex(12)),
                    "object": "chat.completion.chunk",
                    "created": last.get("created", int(time.time())),
                    "model": last.get("model", request.get("model")),
                    "choices": [],
                    "usage": estimated_usage(request, content_deltas),
                })
        except TimeoutError:
            raise deployment_error(
                f"The upstream stream of {self.deployment_id!r} went silent for {self._config.timeout_seconds:g} s "
                "or ran past its stream_timeout_seconds.",
                status=504,
            ) from None
        except SSEOverflow as exc:
            raise deployment_error(f"The upstream stream of {self.deployment_id!r} is malformed: {exc}.") from None
        except (ConnectionLost, ProtocolError) as exc:
            raise deployment_error(
                f"The connection to the upstream engine of {self.deployment_id!r} broke mid-stream "
                f"({type(exc).__name__})."
            ) from None
        finally:
            replica.in_flight -= 1
            if not finished:
                response.close()  # the engine sees the disconnect and stops generating
            elif response.at_eof():
                response.release()
            else:
                self._release_when_ended(response)

    async def embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = self._upstream_body(body)
        request.pop("encoding_format", None)  # float vectors: the request path encodes base64 itself
        result = await self._post_json("/embeddings", request)
        given = body.get("input")
        fault = embeddings_fault(result, len(given) if isinstance(given, list) else 1)
        if fault is not None:
            raise deployment_error(
                f"The upstream engine of {self.deployment_id!r} answered malformed embeddings: {fault}."
            )
        return result

    async def images(self, body: Mapping[str, Any]) -> GeneratedImages:
        request = self._upstream_body(body)
        request["response_format"] = "b64_json"
        result = await self._post_json("/images/generations", request)
        data = result.get("data")
        if not isinstance(data, list) or not data or not all(
            isinstance(item, dict) and isinstance(item.get("b64_json"), str) for item in data
        ):
            raise deployment_error(f"The upstream engine of {self.deployment_id!r} answered without b64_json images.")
        created = result.get("created")
        if not isinstance(created, int) or isinstance(created, bool):
            created = int(time.time())
        return GeneratedImages(created=created, images=[item["b64_json"] for item in data])

    async def speech(self, body: Mapping[str, Any]) -> AudioResult:
        request = self._upstream_body(body)
        fmt = str(request.get("response_format") or "mp3")
        _status, headers, content = await self._exchange("/audio/speech", orjson.dumps(request), self._json_headers)
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if not content_type or content_type == "application/octet-stream":
            content_type = _AUDIO_TYPES.get(fmt, "application/octet-stream")
        if not content:
            raise deployment_error(f"The upstream engine of {self.deployment_id!r} returned empty audio.")
        return AudioResult(content=content, content_type=content_type, seconds=_audio_seconds(content, fmt))

    async def transcribe(self, upload: TranscriptionInput) -> dict[str, Any]:
        # Forwarded byte for byte: the multipart body the client sent, with its boundary.
        raw_type = upload.raw_content_type
        if not raw_type.isascii() or any(ord(ch) < 32 or ord(ch) == 127 for ch in raw_type):
            raise invalid_request("The upload's Content-Type cannot be forwarded.", param="file")
        content_type = raw_type.encode("ascii")
        headers = self._auth_headers + b"Content-Type: " + content_type + b"\r\n"
        _status, _, content = await self._exchange("/audio/transcriptions", upload.raw_body, headers)
        result = self._json_object(content)
        fault = transcription_fault(result)
        if fault is not None:
            raise deployment_error(
                f"The upstream engine of {self.deployment_id!r} answered a malformed transcription: {fault}."
            )
        return result

    async def verify(self, operations: Sequence[Operation]) -> list[ProbeResult]:
        return [await self._probe(operation) for operation in operations]

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._endings):
            task.cancel()
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the HTTP exchange --------------------------------------------------------------------

    def _upstream_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = dict(body)
        if self._model is not None:
            request["model"] = self._model
        return request

    def _release_when_ended(self, response: Response) -> None:
        """After ``[DONE]`` the body's last bytes (a chunked terminator) may still be on the way: wait for them
        off the stream's path, then keep the connection instead of opening a new one for the next stream."""

        async def end() -> None:
            try:
                await response.read(_ERROR_BODY_LIMIT, deadline=asyncio.get_running_loop().time() + 1.0)
            except (ConnectionLost, ProtocolError, TimeoutError):
                pass
            finally:
                if response.at_eof():
                    response.release()
                else:
                    response.close()

        task = asyncio.get_running_loop().create_task(end())
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    def _open_client(self) -> HttpClient:
        if self._closed:
            raise deployment_error(f"Deployment {self.deployment_id!r} is shutting down.", status=503,
                                   retry_after_seconds=1)
        context = None
        if self._config.tls_ca_file is not None:
            context = ssl.create_default_context(cafile=self._config.tls_ca_file)
        self._client = HttpClient(
            max_connections=self._config.max_connections,
            connect_timeout=self._config.connect_timeout_seconds,
            ssl_context=context,
        )
        if self._config.health_check_interval_seconds > 0:
            self._health_task = asyncio.get_running_loop().create_task(self._health_loop())
        return self._client

    async def _send(self, path: str, data: bytes, headers: bytes, deadline: float) -> tuple[Replica, Response]:
        """Send to the best replica that accepts a connection; the response is open and its replica counted busy.

        ``deadline`` (loop time) is for the response head: the first-byte timeout.
        """
        client = self._client or self._open_client()
        candidates = self._replicas.candidates()
        if not candidates:
            raise deployment_error(
                f"Every upstream replica of {self.deployment_id!r} is down.",
                status=503,
                retry_after_seconds=self._replicas.retry_after_seconds(),
            )
        failure = ""
        timed_out = False
        for replica in candidates:
            endpoint = self._endpoints[replica.base_url]
            replica.in_flight += 1
            try:
                response = await client.request(
                    b"POST", endpoint, endpoint.base_path + path, headers, data, deadline=deadline
                )
            except ConnectFailed as exc:
                # Nothing reached the engine: mark the replica down and try the next one.
                replica.in_flight -= 1
                timed_out = exc.timed_out
                failure = str(exc)
                self._replicas.mark_down(replica, failure)
                continue
            except ConnectionLost as exc:
                replica.in_flight -= 1
                if not exc.before_response:
                    raise deployment_error(
                        f"The connection to the upstream engine of {self.deployment_id!r} broke mid-response."
                    ) from None
                # Dropped before any response byte: safe to send elsewhere.
                failure = "connection lost before the response"
                timed_out = False
                continue
            except TimeoutError:
                replica.in_flight -= 1
                raise deployment_error(
                    f"The upstream engine of {self.deployment_id!r} did not answer within "
                    f"{self._config.first_byte_timeout_seconds:g} s.",
                    status=504,
                ) from None
            except ProtocolError:
                replica.in_flight -= 1
                raise deployment_error(
                    f"The upstream engine of {self.deployment_id!r} sent an invalid HTTP response."
                ) from None
            except BaseException:
                replica.in_flight -= 1
                raise
            return replica, response
        raise deployment_error(
            f"Could not reach the upstream engine of {self.deployment_id!r} ({failure}).",
            status=504 if timed_out else 502,
        )

    async def _exchange(self, path: str, data: bytes, headers: bytes) -> tuple[int, dict[str, str], bytes]:
        """A whole non-streaming exchange: ``(status, headers, body)`` of a 2xx answer, else the mapped error."""
        now = asyncio.get_running_loop().time()
        deadline = now + self._config.timeout_seconds
        replica, response = await self._send(
            path, data, headers, min(deadline, now + self._config.first_byte_timeout_seconds)
        )
        complete = False
        try:
            if response.status >= 300:
                raise await self._error_response(response)
            content = await response.read(max_bytes=self._config.max_response_bytes, deadline=deadline)
            complete = True
            return response.status, response.headers, content
        except TimeoutError:
            raise deployment_error(
                f"The upstream engine of {self.deployment_id!r} did not finish within "
                f"{self._config.timeout_seconds:g} s.",
                status=504,
            ) from None
        except BodyTooLarge:
            raise deployment_error(
                f"The upstream engine of {self.deployment_id!r} answered with more than "
                f"{self._config.max_response_bytes} bytes (max_response_bytes)."
            ) from None
        except (ConnectionLost, ProtocolError) as exc:
            raise deployment_error(
                f"The connection to the upstream engine of {self.deployment_id!r} broke ({type(exc).__name__})."
            ) from None
        finally:
            replica.in_flight -= 1
            if complete:
                response.release()
            else:
                response.close()  # cancelled or failed: drop the connection so the engine stops

    async def _post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        _, _, content = await self._exchange(path, orjson.dumps(body), self._json_headers)
        return self._json_object(content)

    async def _error_response(self, response: Response) -> GatewayError:
        deadline = asyncio.get_running_loop().time() + min(5.0, self._config.timeout_seconds)
        try:
            body = await response.read(_ERROR_BODY_LIMIT, deadline=deadline)
        except (ConnectionLost, ProtocolError, TimeoutError):
            body = b""
        if 300 <= response.status < 400:
            return deployment_error(
                f"The upstream engine of {self.deployment_id!r} redirected ({response.status}); "
                "check its base_url."
            )
        return error_from_upstream(
            response.status, body, response.headers, deployment_id=self.deployment_id, secret=self._secret
        )

    def _json_object(self, content: bytes) -> dict[str, Any]:
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise deployment_error(f"The upstream engine of {self.deployment_id!r} answered with malformed JSON.")
        return value

    def _parse_event(self, payload: bytes) -> dict[str, Any]:
        """One stream event's JSON object; a malformed frame or an error event is a deployment error."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise deployment_error(f"The upstream stream of {self.deployment_id!r} sent a malformed event.")
        if "error" in data and "choices" not in data:
            message, _, _ = upstream_message(payload, secret=self._secret)
            raise deployment_error(f"The upstream engine of {self.deployment_id!r} failed mid-stream: {message}")
        return data

    # -- health and verification --------------------------------------------------------------

    def _health_path(self, replica: Replica) -> str:
        path = self._config.health_check_path
        return path if path.startswith("/") else f"{self._endpoints[replica.base_url].base_path}/{path}"

    async def _health_loop(self) -> None:
        interval = self._config.health_check_interval_seconds
        while True:
            # A replica answering requests right now is evidently up; probing it anyway would cost the engine
            # work, and llama-cpp-python's server (by default) ends a running stream when another request comes.
            idle = [replica for replica in self._replicas.replicas if not replica.in_flight]
            await asyncio.gather(*(self._check(replica, min(5.0, interval)) for replica in idle))
            await asyncio.sleep(interval)

    async def _check(self, replica: Replica, timeout: float) -> None:
        assert self._client is not None
        endpoint = self._endpoints[replica.base_url]
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            response = await self._client.request(
                b"GET", endpoint, self._health_path(replica), self._auth_headers, deadline=deadline
            )
            try:
                await response.read(_ERROR_BODY_LIMIT, deadline=deadline)
            finally:
                response.close()
            healthy = 200 <= response.status < 300
            reason = f"health check answered {response.status}"
        except TimeoutError:
            if replica.in_flight:
                # Busy serving us (llama.cpp's server answers /models only between generations): alive.
                return
            healthy, reason = False, "health check timed out"
        except (ConnectFailed, ConnectionLost, ProtocolError) as exc:
            healthy, reason = False, f"health check failed ({type(exc).__name__})"
        if healthy:
            self._replicas.mark_up(replica)
        else:
            self._replicas.mark_down(replica, reason)

    async def _probe(self, operation: Operation) -> ProbeResult:
        started = time.perf_counter()
        try:
            details = await self._run_probe(operation)
        except GatewayError as exc:
            return ProbeResult(operation, False, exc.message, (time.perf_counter() - started) * 1000)
        return ProbeResult(operation, True, "ok", (time.perf_counter() - started) * 1000, details)

    async def _run_probe(self, operation: Operation) -> dict[str, Any]:
        model = self._model or self.deployment_id
        if operation in ("chat.completions", "responses"):
            if operation == "responses":
                body = responses_to_chat({"model": model, "input": "Say OK.", "max_output_tokens": 1})
            else:
                body = {"model": model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}
            completion = await self.chat(body)
            return {"usage": completion.get("usage")}
        if operation == "embeddings":
            result = await self.embeddings({"model": model, "input": "verification probe"})
            first = result["data"][0] if result["data"] else None
            if not isinstance(first, dict) or not isinstance(first.get("embedding"), list) or not first["embedding"]:
                raise deployment_error("the embeddings probe returned no vector")
            return {"dimensions": len(first["embedding"])}
        if operation == "images.generate":
            body = {"model": model, "prompt": "a red circle", "n": 1}
            if self._config.probe_image_size:
                body["size"] = self._config.probe_image_size
            images = await self.images(body)
            return {"images": len(images.images)}
        if operation == "audio.speech":
            audio = await self.speech(
                {"model": model, "input": "OK.", "voice": self._config.probe_voice, "response_format": "wav"}
            )
            return {"content_type": audio.content_type, "bytes": len(audio.content)}
        if operation == "audio.transcriptions":
            upload = _silence_upload(model)
            result = await self.transcribe(upload)
            if not isinstance(result.get("text"), str):
                raise deployment_error("the transcription probe returned no 'text'")
            return {}
        raise deployment_error(f"unknown operation {operation!r}")


def _completion_tokens_guess(completion: Mapping[str, Any]) -> int:
    text = ""
    for choice in completion.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            text += message["content"]
    return (len(text) + 3) // 4


def _audio_seconds(content: bytes, fmt: str) -> float:
    """Duration of WAV (from its header) or raw PCM (24 kHz, 16-bit mono, OpenAI's pcm); 0.0 when unknown."""
    if fmt == "pcm":
        return len(content) / 48_000
    if content[:4] == b"RIFF" and content[8:12] == b"WAVE" and len(content) >= 44:
        byte_rate: int = struct.unpack_from("<I", content, 28)[0]
        data_at = content.find(b"data", 36, len(content) - 4)  # a "data" chunk id with its size after it
        if byte_rate and data_at >= 0:
            size = min(struct.unpack_from("<I", content, data_at + 4)[0], len(content) - data_at - 8)
            return float(max(0, size) / byte_rate)
    return 0.0


def _silence_upload(model: str) -> TranscriptionInput:
    """Half a second of 16 kHz silence as a multipart upload, for the transcription probe."""
    frames = b"\x00\x00" * 8000
    wav = (
        b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
        + b"data" + struct.pack("<I", len(frames)) + frames
    )
    boundary = "runinfra-probe-" + secrets.token_hex(8)
    fields = {"model": model, "response_format": "json"}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="probe.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + wav + f"\r\n--{boundary}--\r\n".encode()
    return TranscriptionInput(
        file=wav,
        filename="probe.wav",
        file_content_type="audio/wav",
        fields=fields,
        raw_body=body,
        raw_content_type=f"multipart/form-data; boundary={boundary}",
    )
