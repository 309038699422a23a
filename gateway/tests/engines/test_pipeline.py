"""The voice pipeline: a spoken question in, a spoken answer out."""

from __future__ import annotations

import base64

import pytest
from runinfra_gateway.backends.embedded import EmbeddedBackend
from runinfra_gateway.engines._text import words
from runinfra_gateway.engines.audio_codecs import decode_audio
from runinfra_gateway.pipeline import run_voice_pipeline

from .conftest import Loop
from .helpers import expect_error


def _run(stt: EmbeddedBackend, llm: EmbeddedBackend, tts: EmbeddedBackend, audio: bytes, mime: str):  # type: ignore[no-untyped-def]
    return run_voice_pipeline(
        stt, llm, tts, audio, mime, stt_model="whisper-tiny-en", llm_model="smollm2", tts_model="piper-joe"
    )


@pytest.mark.parametrize(("speaker", "fmt", "mime"), [("piper", "mp3", "audio/mpeg"), ("flite", "wav", "audio/wav")])
def test_a_spoken_question_gets_a_spoken_answer(
    loop: Loop,
    whisper: EmbeddedBackend,
    chat: EmbeddedBackend,
    piper: EmbeddedBackend,
    speaker: str,
    fmt: str,
    mime: str,
    request: pytest.FixtureRequest,
) -> None:
    voice: EmbeddedBackend = request.getfixturevalue(speaker)
    question = loop.run(voice.speech({"input": "What is the capital of France?", "response_format": fmt}))
    envelope, stages = loop.run(_run(whisper, chat, piper, question.content, mime))
    heard = set(words(envelope["transcript"]))
    assert {"capital", "france"} <= heard, envelope["transcript"]
    assert envelope["response_text"].strip()
    assert envelope["object"] == "voice.pipeline.response"
    assert envelope["modality"] == "voice"
    assert envelope["model"] == "smollm2"
    assert envelope["content_type"] == "audio/wav"
    reply = decode_audio(base64.b64decode(envelope["audio_base64"]), max_seconds=120)
    assert reply.seconds > 0.5
    assert envelope["usage"]["output_tokens"] >= 1
    assert envelope["usage"]["input_tokens"] > 5
    assert envelope["usage"]["input_audio_seconds"] == pytest.approx(question.seconds, abs=0.1)
    latency = envelope["latency_ms"]
    assert set(latency) == {"speech_to_text", "llm", "text_to_speech", "total"}
    assert latency["total"] >= latency["speech_to_text"] + latency["llm"] + latency["text_to_speech"] - 1
    assert stages["speech_to_text"]["audio_seconds"] > 0
    assert stages["llm"]["output_tokens"] == envelope["usage"]["output_tokens"]
    assert stages["text_to_speech"]["characters"] == len(envelope["response_text"])


def test_bad_audio_is_a_clear_400(
    loop: Loop, whisper: EmbeddedBackend, chat: EmbeddedBackend, piper: EmbeddedBackend
) -> None:
    for data, code in ((b"", "invalid_value"), (b"not audio" * 20, "unsupported_media_type"),
                       (b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "invalid_value")):
        error = expect_error(loop.run, _run(whisper, chat, piper, data, "audio/wav"))
        assert (error.status, error.code) == (400, code)


def test_silence_is_a_400_saying_no_speech(
    loop: Loop, whisper: EmbeddedBackend, chat: EmbeddedBackend, piper: EmbeddedBackend
) -> None:
    import io

    import numpy as np
    import soundfile

    silence = io.BytesIO()
    soundfile.write(silence, np.zeros(16_000 * 2, dtype=np.int16), 16_000, format="WAV")
    error = expect_error(loop.run, _run(whisper, chat, piper, silence.getvalue(), "audio/wav"))
    assert error.status == 400
    assert "speech" in error.message.lower()
