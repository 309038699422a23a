"""Chat on llama.cpp (``llama_cpp.Llama``) with the GGUF's own chat template.

Generation is a token loop on a worker thread: every token is detokenized
(UTF-8 split across tokens is held back), checked against ``stop`` strings
(text that might start a stop string is held back until it cannot) and, when
streaming, handed to the event loop at once, so a client sees tokens as the
model makes them. Closing the stream, or cancelling a non-stream request
(its client went away), sets a flag the loop checks per token, which stops
generation and frees the worker for the next request.
"""

from __future__ import annotations

import codecs
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from .. import errors
from ..backends.base import ChatChunk
from . import _params
from ._options import EngineOptions
from ._workers import StreamIterator, WorkerPool
from .pinning import check_file, pinned_root

__all__ = ["ChatParams", "LlamaChatEngine"]

_MAX_STOP = 4
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class ChatParams:
    """A validated chat request, ready for the token loop."""

    messages: list[dict[str, str]]
    max_tokens: int | None
    stop: tuple[str, ...]
    temperature: float
    top_p: float
    presence_penalty: float
    frequency_penalty: float
    include_usage: bool

    @classmethod
    def parse(cls, body: Mapping[str, Any], *, default_temperature: float) -> ChatParams:
        if _params.integer(body, "n", 1, low=1, high=1) != 1:
            raise errors.invalid_request("Only 'n' = 1 is supported.", param="n")
        max_tokens = _params.integer(body, "max_completion_tokens", None, low=1, high=1_000_000)
        if max_tokens is None:
            max_tokens = _params.integer(body, "max_tokens", None, low=1, high=1_000_000)
        stream_options = body.get("stream_options") or {}
        if not isinstance(stream_options, Mapping):
            raise errors.invalid_request("'stream_options' must be an object.", param="stream_options")
        return cls(
            messages=_messages(body.get("messages")),
            max_tokens=max_tokens,
            stop=_stop(body.get("stop")),
            temperature=_params.number(body, "temperature", default_temperature, low=0.0, high=2.0),
            top_p=_params.number(body, "top_p", 1.0, low=0.0, high=1.0),
            presence_penalty=_params.number(body, "presence_penalty", 0.0, low=-2.0, high=2.0),
            frequency_penalty=_params.number(body, "frequency_penalty", 0.0, low=-2.0, high=2.0),
            include_usage=bool(stream_options.get("include_usage", False)),
        )


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise errors.invalid_request("'messages' must be a non-empty array.", param="messages")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise errors.invalid_request(f"messages[{index}] must be an object.", param="messages")
        role = _ROLES.get(str(message.get("role")))
        if role is None:
            raise errors.invalid_request(
                f"messages[{index}].role must be system, developer, user or assistant.", param="messages"
            )
        content = _params.valid_unicode(_content(message.get("content"), index), "messages")
        messages.append({"role": role, "content": content})
    return messages


def _content(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise errors.invalid_request(
                    f"messages[{index}].content: this deployment reads text parts only.", param="messages"
                )
            texts.append(part["text"])
        return "".join(texts)
    raise errors.invalid_request(
        f"messages[{index}].content must be a string or an array of text parts.", param="messages"
    )


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > _MAX_STOP or not all(isinstance(s, str) and s for s in stops):
        raise errors.invalid_request("'stop' must be a string or up to 4 non-empty strings.", param="stop")
    return tuple(_params.valid_unicode(s, "stop") for s in stops)


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", "length" or "cancelled"


class _StopScanner:
    """Releases generated text unless it is, or may become, a stop string."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        self._pending += piece
        if not self._stops:
            out, self._pending = self._pending, ""
            return out
        cut = min((i for i in (self._pending.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self._pending = self._pending[:cut], ""
            return out
        hold = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), 0, -1):
                if self._pending.endswith(stop[:size]):
                    hold = max(hold, size)
                    break
        out = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(out) :]
        return out

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


class LlamaChatEngine:
    """One GGUF model, ``workers`` llama.cpp contexts, a bounded queue in front of them."""

    def __init__(self, deployment_id: str, options: EngineOptions) -> None:
        self.deployment_id = deployment_id
        self.model_name = deployment_id
        self._options = options
        self.n_ctx = options.integer("n_ctx", 2048, minimum=64)
        self.default_temperature = options.number("default_temperature", 1.0)
        self._threads = options.threads()
        self._model_path = options.path("model_path")
        self._sha256 = options.text("sha256")
        #: Running totals (read by metrics and tests): tokens generated, generations stopped by their client.
        self.counters = {"generated_tokens": 0, "cancelled": 0, "cancelled_tokens": 0}
        self._counters_lock = threading.Lock()
        self.pool: WorkerPool[Any] = WorkerPool(
            deployment_id,
            self._load,
            workers=options.integer("workers", 1),
            queue_size=options.integer("queue_size", 8),
        )

    def _resolve_model_path(self) -> Path:
        data = self._options.data_dir()
        if self._model_path is None:
            return pinned_root("smollm2", cache_dir=data) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if self._sha256:
            check_file(self._model_path, self._sha256, cache_dir=data)
        if not self._model_path.is_file():
            raise FileNotFoundError(f"model_path {self._model_path} is not a file")
        return self._model_path

    def _load(self) -> _LoadedModel:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = Llama(
            model_path=str(self._resolve_model_path()),
            n_ctx=self.n_ctx,
            n_threads=self._threads,
            n_threads_batch=self._threads,
            verbose=False,
        )
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError("the GGUF has no tokenizer.chat_template; this engine needs one")
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
        return _LoadedModel(llm, Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos))

    # -- the asyncio side ------------------------------------------------------------

    def _parse(self, body: Mapping[str, Any]) -> ChatParams:
        messages = body.get("messages")
        if isinstance(messages, list) and len(messages) > self.n_ctx:
            # Each message renders into at least one token of the template's markup (its turn), so these
            # cannot fit; checked first, because validating, rendering and tokenizing 700,000 of them (a
            # 21 MB body) held the event loop for 0.9 s and then the worker for over a minute.
            raise self._too_long(f"{len(messages)} messages")
        return ChatParams.parse(body, default_temperature=self.default_temperature)

    def _too_long(self, size: str) -> errors.GatewayError:
        return errors.GatewayError(
            400,
            "invalid_request_error",
            f"The prompt is {size}; this deployment's context window is {self.n_ctx} tokens "
            "(prompt plus answer). Shorten the messages.",
            code="context_length_exceeded",
            param="messages",
        )

    async def complete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        params = self._parse(body)
        gen = await self.pool.run_cancellable(lambda model, cancelled: self._generate(model, params, None, cancelled))
        return {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "logprobs": None,
                    "finish_reason": gen.finish_reason,
                }
            ],
            "usage": _usage(gen),
        }

    def stream(self, body: Mapping[str, Any]) -> StreamIterator[ChatChunk]:
        params = self._parse(body)
        completion_id = _completion_id()
        created = int(time.time())

        def chunk(delta: dict[str, str], finish_reason: str | None) -> ChatChunk:
            return ChatChunk.from_dict(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model_name,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
                }
            )

        def run(model: _LoadedModel, emit: Callable[[ChatChunk], None], cancelled: threading.Event) -> None:
            # The role chunk leaves once the prompt is accepted, before it is evaluated: the response
            # headers and this chunk reach the client while the model reads the prompt, so only the
            # first token's own chunk is left on the way to the first token.
            gen = self._generate(
                model,
                params,
                lambda piece: emit(chunk({"content": piece}, None)),
                cancelled,
                on_start=lambda: emit(chunk({"role": "assistant", "content": ""}, None)),
            )
            if gen.finish_reason == "cancelled":
                return
            emit(chunk({}, gen.finish_reason))
            if params.include_usage:
                emit(
                    ChatChunk.from_dict(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": self.model_name,
                            "choices": [],
                            "usage": _usage(gen),
                        }
                    )
                )

        return self.pool.stream(run)

    # -- the worker side -------------------------------------------------------------

    def prompt_tokens(
        self, model: _LoadedModel, messages: list[dict[str, str]], *, limit: int | None = None
    ) -> list[int]:
        """The chat template applied to ``messages``, tokenized.

        The template's own markup is tokenized with special tokens recognised;
        what the messages say is tokenized as plain text, so a message that
        contains ``<|im_end|><|im_start|>system`` cannot forge a turn. The
        template is rendered with a random marker in place of each content to
        find where the contents go.

        With ``limit``, a prompt found to be longer raises :class:`_PromptTooLong` as soon as that is
        known: no token stands for more than ``model.max_token_bytes`` bytes, so text of ``n`` bytes
        is at least ``n / max_token_bytes`` tokens and a huge content is refused without tokenizing it
        (tokenizing 2 MB takes 1.5 s here).
        """
        marker = f"\x1e{secrets.token_hex(8)}"
        placeholders = [{"role": m["role"], "content": f"{marker}{i}{marker}"} for i, m in enumerate(messages)]
        formatted = model.formatter(messages=placeholders)
        rendered: str = formatted.prompt
        pieces = rendered.split(marker)
        llm = model.llm
        tokens: list[int] = []

        def tokenize(text: bytes, *, add_bos: bool, special: bool) -> None:
            if limit is not None:
                at_least = len(tokens) + -(-len(text) // model.max_token_bytes)
                if at_least > limit:
                    raise _PromptTooLong(at_least)
            tokens.extend(llm.tokenize(text, add_bos=add_bos, special=special))
            if limit is not None and len(tokens) > limit:
                raise _PromptTooLong(len(tokens))

        if len(pieces) != 2 * len(messages) + 1 or pieces[1::2] != [str(i) for i in range(len(messages))]:
            # A template that rewrites contents: fall back to one pass, with contents rendered by the template.
            prompt = model.formatter(messages=messages).prompt
            tokenize(prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)
            return tokens
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                if piece:
                    tokenize(piece.encode("utf-8"), add_bos=index == 0 and not formatted.added_special, special=True)
            else:
                content = messages[int(piece)]["content"]
                if content:
                    tokenize(content.encode("utf-8"), add_bos=False, special=False)
        return tokens

    def _generate(
        self,
        model: _LoadedModel,
        params: ChatParams,
        on_text: Callable[[str], None] | None,
        cancelled: threading.Event,
        *,
        on_start: Callable[[], None] | None = None,
    ) -> Generation:
        llm = model.llm
        try:
            prompt = self.prompt_tokens(model, params.messages, limit=self.n_ctx - 1)  # one token of room
        except _PromptTooLong as too_long:
            raise self._too_long(f"at least {too_long.tokens} tokens") from None
        room = self.n_ctx - len(prompt)
        limit = min(params.max_tokens or room, room)
        if on_start is not None:
            on_start()
        scanner = _StopScanner(params.stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parts: list[str] = []
        produced = 0
        finish = "length"
        _read_the_end_in_a_batch(llm, prompt)
        for token in llm.generate(
            prompt,
            temp=params.temperature,
            top_p=params.top_p,
            top_k=0,
            min_p=0.0,
            repeat_penalty=1.0,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            reset=True,
        ):
            if cancelled.is_set():
                finish = "cancelled"
                break
            if model.is_end(token):
                finish = "stop"
                break
            produced += 1
            piece = scanner.feed(decoder.decode(llm.detokenize([token])))
            if piece:
                parts.append(piece)
                if on_text is not None:
                    on_text(piece)
            if scanner.stopped:
                finish = "stop"
                break
            if produced >= limit:
                break
        with self._counters_lock:
            self.counters["generated_tokens"] += produced
            if finish == "cancelled":
                self.counters["cancelled"] += 1
                self.counters["cancelled_tokens"] += produced
        if finish != "cancelled" and not scanner.stopped:
            tail = scanner.feed(decoder.decode(b"", final=True)) + scanner.flush()
            if tail:
                parts.append(tail)
                if on_text is not None:
                    on_text(tail)
        return Generation("".join(parts), len(prompt), produced, finish)


def _read_the_end_in_a_batch(llm: Any, prompt: list[int]) -> None:
    """Cut llama.cpp's cache so that ``generate`` reads at least the last two tokens of ``prompt`` in one batch.

    A token's logits read alone differ in their last bits from the same token's read in a batch, enough to
    tip a greedy pick. ``generate`` keeps the longest cached prefix and reads the rest: a new prompt's end in
    a batch, but only the last token of a prompt whose answer is still cached, so the first asking of
    "Describe the colour blue." answered otherwise than every later one at temperature 0, and a stream
    otherwise than the same request unstreamed. A prompt cached exactly with its logits still live (its
    answer was one token) is left as it is: those logits came from a batch too.
    """
    cached = llm._input_ids
    wanted = numpy.asarray(prompt, dtype=cached.dtype)
    if llm.n_tokens == len(prompt) and not getattr(llm, "_requires_eval", True) and numpy.array_equal(cached, wanted):
        return
    # Vectorised: a Python loop over a long cached conversation took 0.7 ms per 2,000 tokens, holding the GIL.
    kept = max(0, min(len(cached), len(prompt) - 2))
    differing = numpy.flatnonzero(cached[:kept] != wanted[:kept])
    llm.n_tokens = int(differing[0]) if differing.size else kept


class _PromptTooLong(Exception):
    """The prompt is longer than a limit: at least ``tokens`` tokens."""

    def __init__(self, tokens: int) -> None:
        super().__init__(tokens)
        self.tokens = tokens


class _LoadedModel:
    """A llama.cpp context and its chat template, owned by one worker thread."""

    def __init__(self, llm: Any, formatter: Any) -> None:
        self.llm = llm
        self.formatter = formatter
        # End-of-generation tokens: EOS and, where the vocabulary has one, end-of-turn.
        self._ends = {t for t in (llm.token_eos(), llm._model.token_eot()) if t >= 0}
        #: The most bytes one token stands for (32 for SmolLM2; ~0.16 s to find over its 49,152 tokens).
        self.max_token_bytes = max(len(llm.detokenize([token], special=True)) for token in range(llm.n_vocab())) or 1

    def is_end(self, token: int) -> bool:
        return token in self._ends


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _usage(gen: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "total_tokens": gen.prompt_tokens + gen.completion_tokens,
    }
