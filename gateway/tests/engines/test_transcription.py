"""Whisper and PocketSphinx: containers, verbose_json, language and prompt, and hostile uploads."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from runinfra_gateway.backends.embedded import EmbeddedBackend
from runinfra_gateway.engines._text import word_error_rate
from runinfra_gateway.engines.audio_codecs import encode_with_ffmpeg

from .conftest import Engines, Loop
from .helpers import expect_error, upload, wav_samples

SENTENCE = "Please send the quarterly report to the finance team by Friday."


@pytest.fixture(scope="module")
def spoken(loop: Loop, flite: EmbeddedBackend) -> bytes:
    audio = loop.run(flite.speech({"input": SENTENCE, "response_format": "wav", "voice": "slt"}))
    return audio.content


def _containers(loop: Loop, flite: EmbeddedBackend, wav: bytes) -> dict[str, bytes]:
    samples, rate = wav_samples(wav)
    files = {"wav": wav}
    for fmt in ("flac", "mp3", "opus"):
        files[fmt] = loop.run(flite.speech({"input": SENTENCE, "response_format": fmt, "voice": "slt"})).content
    files["webm"] = encode_with_ffmpeg(samples, rate, container="webm", codec="libopus", rate=48_000)
    files["m4a"] = encode_with_ffmpeg(samples, rate, container="ipod", codec="aac", rate=rate)
    return files


@pytest.mark.parametrize("name", ["whisper", "sphinx"])
def test_every_container_is_decoded_and_transcribed(
    loop: Loop, flite: EmbeddedBackend, spoken: bytes, name: str, request: pytest.FixtureRequest
) -> None:
    backend: EmbeddedBackend = request.getfixturevalue(name)
    for fmt, data in _containers(loop, flite, spoken).items():
        text = loop.run(backend.transcribe(upload(data)))["text"]
        assert word_error_rate(SENTENCE, text) <= 0.35, (fmt, text)


@pytest.mark.parametrize("name", ["whisper", "sphinx"])
def test_verbose_json_has_segments_with_timestamps(
    loop: Loop, spoken: bytes, name: str, request: pytest.FixtureRequest
) -> None:
    backend: EmbeddedBackend = request.getfixturevalue(name)
    answer = loop.run(backend.transcribe(upload(spoken, response_format="verbose_json")))
    assert answer["language"] == "english"
    samples, rate = wav_samples(spoken)
    assert answer["duration"] == pytest.approx(samples.size / rate, abs=0.05)
    segments = answer["segments"]
    assert segments
    for segment in segments:
        assert 0.0 <= segment["start"] < segment["end"] <= answer["duration"] + 0.01
    assert segments == sorted(segments, key=lambda s: s["start"])
    assert word_error_rate(SENTENCE, " ".join(s["text"] for s in segments)) <= 0.35
    assert word_error_rate(SENTENCE, answer["text"]) <= 0.35


def test_whisper_language_and_prompt(loop: Loop, whisper: EmbeddedBackend, spoken: bytes) -> None:
    answer = loop.run(whisper.transcribe(upload(spoken, language="en", prompt="Quarterly finance report.")))
    assert word_error_rate(SENTENCE, answer["text"]) <= 0.35
    error = expect_error(loop.run, whisper.transcribe(upload(spoken, language="fr")))
    assert (error.status, error.param) == (400, "language")
    error = expect_error(loop.run, whisper.transcribe(upload(spoken, response_format="srt")))
    assert (error.status, error.param) == (400, "response_format")
    error = expect_error(loop.run, whisper.transcribe(upload(spoken, temperature="hot")))
    assert error.param == "temperature"


@pytest.mark.parametrize(("said", "prompt", "spelling"), [
    ("Please send the quarterly report to Kaitlyn by Friday.", "KATELYNN", "KATELYNN"),
    ("The new engine is called Zylofon.", "Zilophon engine", "Zilophon"),
])
def test_whisper_spells_a_word_as_the_prompt_does(
    loop: Loop, flite: EmbeddedBackend, whisper: EmbeddedBackend, said: str, prompt: str, spelling: str
) -> None:
    # The prompt conditions the decoder like text said just before the audio: a name it spells is written so.
    audio = loop.run(flite.speech({"input": said, "response_format": "wav", "voice": "slt"})).content
    assert spelling not in loop.run(whisper.transcribe(upload(audio)))["text"]
    assert spelling in loop.run(whisper.transcribe(upload(audio, prompt=prompt)))["text"]


def _bad_uploads(spoken: bytes) -> list[tuple[str, bytes, str]]:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    return [
        ("empty", b"", "invalid_value"),
        ("png", png, "unsupported_media_type"),
        ("text", b"hello, this is not audio at all" * 10, "unsupported_media_type"),
        ("playlist", playlist, "unsupported_media_type"),
        ("truncated header", spoken[:30], "invalid_value"),
        ("corrupt wav", spoken[:44] + bytes(np.random.default_rng(0).integers(0, 256, 20, dtype=np.uint8)),
         "invalid_value"),
        ("corrupt ogg", b"OggS" + bytes(range(256)) * 20, "invalid_value"),
        ("corrupt mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 400, "invalid_value"),
    ]


@pytest.mark.parametrize("name", ["whisper", "sphinx"])
def test_bad_audio_is_a_clear_400_and_the_engine_keeps_working(
    loop: Loop, spoken: bytes, name: str, request: pytest.FixtureRequest
) -> None:
    backend: EmbeddedBackend = request.getfixturevalue(name)
    for label, data, code in _bad_uploads(spoken):
        error = expect_error(loop.run, backend.transcribe(upload(data)))
        assert (error.status, error.type, error.code, error.param) == (400, "invalid_request_error", code, "file"), (
            label,
            error.message,
        )
        assert "etc/passwd" not in error.message
    assert word_error_rate(SENTENCE, loop.run(backend.transcribe(upload(spoken)))["text"]) <= 0.35


def test_an_hour_long_upload_over_the_size_limit_is_413(loop: Loop, whisper: EmbeddedBackend) -> None:
    import soundfile

    hour = io.BytesIO()
    soundfile.write(hour, np.zeros(3600 * 8000, dtype=np.int16), 8000, format="WAV", subtype="PCM_U8")
    data = hour.getvalue()
    assert len(data) > 25 * 1024 * 1024
    error = expect_error(loop.run, whisper.transcribe(upload(data)))
    assert (error.status, error.code) == (413, "request_too_large")


def test_audio_longer_than_the_duration_limit_is_413_even_when_small(loop: Loop, engines: Engines) -> None:
    short_limit = engines.get("sphinx-short", engine="pocketsphinx", max_audio_seconds=5)
    import soundfile

    quiet = io.BytesIO()
    soundfile.write(quiet, np.zeros(16_000 * 20, dtype=np.int16), 16_000, format="FLAC")
    assert len(quiet.getvalue()) < 100_000
    error = expect_error(loop.run, short_limit.transcribe(upload(quiet.getvalue())))
    assert (error.status, error.code) == (413, "request_too_large")


def test_pocketsphinx_refuses_a_prompt_it_cannot_use(loop: Loop, sphinx: EmbeddedBackend, spoken: bytes) -> None:
    from runinfra_gateway.backends.embedded import describe

    params: Any = describe({"engine": "pocketsphinx"}).params["audio.transcriptions"]
    assert "prompt" not in params
    assert "prompt" in describe({"engine": "whisper"}).params["audio.transcriptions"]
    error = expect_error(loop.run, sphinx.transcribe(upload(spoken, prompt="finance")))
    assert (error.status, error.code, error.param) == (400, "unsupported_parameter", "prompt")


def test_a_caller_that_goes_away_stops_a_long_transcription(
    loop: Loop, flite: EmbeddedBackend, whisper: EmbeddedBackend, spoken: bytes
) -> None:
    import asyncio
    import contextlib

    import soundfile

    # Twelve minutes of speech: 24 windows of 30 seconds, most of a minute of the only worker's time.
    minutes = loop.run(flite.speech({"input": (SENTENCE + " ") * 60, "response_format": "wav"}))
    samples, rate = wav_samples(minutes.content)
    long = io.BytesIO()
    soundfile.write(long, np.tile(samples, 3), rate, format="FLAC")
    assert samples.size * 3 / rate > 600
    before = whisper.engine.counters["cancelled"]

    async def start_then_go_away() -> None:
        waiting = asyncio.ensure_future(whisper.transcribe(upload(long.getvalue())))
        await asyncio.sleep(2.0)  # decoded, and the first window is being transcribed
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting

    loop.run(start_then_go_away())
    started = time.monotonic()
    assert word_error_rate(SENTENCE, loop.run(whisper.transcribe(upload(spoken)))["text"]) <= 0.35
    assert time.monotonic() - started < 20  # the worker is free after the window it was on, not the whole file
    assert whisper.engine.counters["cancelled"] == before + 1
