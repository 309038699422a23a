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


def encode_with_ffmpeg(samples: npt.NDArray[np.int16], rate: int, container: str, codec: str) -> bytes:
    """Audio in a container our encoders do not produce (webm, m4a), written by FFmpeg through PyAV."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as output:
        stream: Any = output.add_stream(codec, rate=48_000 if codec == "libopus" else rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return out.getvalue()


def wav_samples(wav: bytes) -> tuple[npt.NDArray[np.int16], int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    return np.asarray(samples, dtype=np.int16), int(rate)
