"""Helpers shared by the engine tests: errors, uploads and audio files made with real encoders."""

from __future__ import annotations

import io
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from runinfra_gateway.backends.base import TranscriptionInput
from runinfra_gateway.errors import GatewayError


def upload(data: bytes, **fields: str) -> TranscriptionInput:
    return TranscriptionInput(data, "speech.bin", "application/octet-stream", fields, b"", "")


def expect_error(run: Callable[[Coroutine[Any, Any, Any]], Any], coro: Coroutine[Any, Any, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        run(coro)
    return caught.value


def wav_samples(wav: bytes) -> tuple[npt.NDArray[np.int16], int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    return np.asarray(samples, dtype=np.int16), int(rate)
