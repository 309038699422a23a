"""Audio in and out: real encoders for speech, a real decoder for uploads.

Speech leaves as wav/flac (libsndfile), mp3 (LAME), opus in Ogg and aac in
ADTS (FFmpeg via PyAV), or raw 16-bit PCM at 24 kHz (what OpenAI clients
expect of ``pcm``). Uploads are decoded by FFmpeg (PyAV) to 16 kHz mono
float32; the container is recognised from its magic bytes first and FFmpeg is
told which demuxer to use, so an upload can never steer FFmpeg into a
playlist or concat demuxer that opens other files or URLs.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import errors
from ..backends.base import AudioResult

__all__ = [
    "CONTENT_TYPES",
    "DecodedAudio",
    "decode_audio",
    "encode_speech",
    "encode_with_ffmpeg",
    "has_encoder",
    "sniff_container",
    "speech_formats",
]

ASR_RATE = 16_000
_PCM_RATE = 24_000

#: response_format -> the Content-Type of what is sent.
CONTENT_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "pcm": f"audio/pcm; rate={_PCM_RATE}; channels=1; encoding=s16le",
}

#: The formats FFmpeg encodes: encoder, container and sample rate (None: the voice's own). PyPI's PyAV has
#: both encoders; a PyAV built against a system FFmpeg may lack either.
_FFMPEG_FORMATS: dict[str, tuple[str, str, int | None]] = {
    "opus": ("libopus", "ogg", 48_000),
    "aac": ("aac", "adts", None),
}


@functools.cache
def speech_formats() -> tuple[str, ...]:
    """The ``response_format`` values this install encodes; another is refused by name, not failed with a 500."""
    return tuple(fmt for fmt in CONTENT_TYPES if fmt not in _FFMPEG_FORMATS or has_encoder(_FFMPEG_FORMATS[fmt][0]))


def has_encoder(name: str) -> bool:
    """Whether this FFmpeg build (PyAV's) has the encoder ``name``."""
    import av

    try:
        av.Codec(name, "w")
    except ValueError:  # av's UnknownCodecError
        return False
    return True


# -- encoding -------------------------------------------------------------------------


def encode_speech(samples: npt.NDArray[np.int16], sample_rate: int, fmt: str) -> AudioResult:
    """Encode mono int16 ``samples`` as ``fmt``: the bytes, their Content-Type and duration.

    Text with nothing to pronounce ("...") yields no samples; it is sent as a
    short silence, since some encoders cannot make a file of zero samples.
    """
    minimum = sample_rate // 10
    if samples.size < minimum:
        samples = np.concatenate([samples.astype(np.int16), np.zeros(minimum - samples.size, np.int16)])
    if fmt == "wav":
        body = _soundfile(samples, sample_rate, "WAV", "PCM_16")
    elif fmt == "flac":
        body = _soundfile(samples, sample_rate, "FLAC", "PCM_16")
    elif fmt == "mp3":
        body = _lame(samples, sample_rate)
    elif fmt == "pcm":
        body = resample(samples, sample_rate, _PCM_RATE).astype("<i2").tobytes()
    elif fmt in _FFMPEG_FORMATS and fmt in speech_formats():
        codec, container, rate = _FFMPEG_FORMATS[fmt]
        body = encode_with_ffmpeg(samples, sample_rate, container=container, codec=codec, rate=rate or sample_rate)
    else:
        raise errors.invalid_request(
            f"'response_format' {fmt!r} is not supported; use one of {', '.join(speech_formats())}.",
            param="response_format",
        )
    return AudioResult(body, CONTENT_TYPES[fmt], samples.size / sample_rate)


def _soundfile(samples: npt.NDArray[np.int16], sample_rate: int, container: str, subtype: str) -> bytes:
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, samples, sample_rate, format=container, subtype=subtype)
    return out.getvalue()


def _lame(samples: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(64)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(1)
    encoder.set_quality(5)
    body: bytes = encoder.encode(samples.astype("<i2").tobytes()) + encoder.flush()
    return body


def encode_with_ffmpeg(
    samples: npt.NDArray[np.int16], sample_rate: int, *, container: str, codec: str, rate: int
) -> bytes:
    """Mono 16-bit ``samples`` encoded by FFmpeg (through PyAV) as ``codec`` at ``rate`` Hz in ``container``."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as output:
        stream: Any = output.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return out.getvalue()


def resample(samples: npt.NDArray[np.int16], rate_in: int, rate_out: int) -> npt.NDArray[np.int16]:
    """Band-limited resampling of mono int16 (FFmpeg's swresample)."""
    if rate_in == rate_out or samples.size == 0:
        return samples
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate_out)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate_in
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


# -- decoding -------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedAudio:
    """An upload as 16 kHz mono float32 in [-1, 1]."""

    samples: npt.NDArray[np.float32]
    container: str

    @property
    def seconds(self) -> float:
        return self.samples.size / ASR_RATE


_FORMATS_TEXT = "wav, flac, mp3, ogg/opus, webm, m4a/mp4, aac"


def sniff_container(data: bytes) -> str | None:
    """The FFmpeg demuxer for ``data`` judged by its magic bytes, or None if it is no audio container we read."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"RF64"):
        return "wav"
    if head[:4] == b"RF64":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS sync word (layer bits 00)
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"  # MPEG audio frame sync
    return None


def decode_audio(data: bytes, *, max_seconds: float, param: str = "file") -> DecodedAudio:
    """Decode an upload to 16 kHz mono float32; clear 400s for empty, wrong-type or corrupt audio, 413 when too long."""
    if not data:
        raise errors.invalid_request("The audio file is empty.", param=param)
    container = sniff_container(data)
    if container is None:
        raise errors.invalid_request(
            f"The upload is not audio this gateway reads ({_FORMATS_TEXT}).",
            code="unsupported_media_type",
            param=param,
        )
    import av

    limit = int(max_seconds * ASR_RATE)
    chunks: list[npt.NDArray[np.float32]] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=container) as source:
            if not source.streams.audio:
                raise errors.invalid_request(
                    "The upload has no audio stream.", code="unsupported_media_type", param=param
                )
            stream = source.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=ASR_RATE)
            for frame in source.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    total += chunk.size
                    if total > limit:
                        raise errors.GatewayError(
                            413,
                            "invalid_request_error",
                            f"The audio is longer than this deployment's {max_seconds:g}-second limit.",
                            code="request_too_large",
                            param=param,
                        )
                    chunks.append(chunk)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except errors.GatewayError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise errors.invalid_request(
            f"The audio could not be decoded as {container}: {_ffmpeg_reason(exc)}.", param=param
        ) from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if samples.size < ASR_RATE // 50:
        raise errors.invalid_request("The audio contains no samples to transcribe.", param=param)
    return DecodedAudio(np.clip(samples, -1.0, 1.0), container)


def _ffmpeg_reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip()
    # FFmpeg messages can carry the source name; ours is an in-memory buffer, so keep the reason only.
    return text.split(":")[-1].strip()[:120] or type(exc).__name__
