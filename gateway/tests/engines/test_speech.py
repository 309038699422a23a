"""Piper and Flite speech: every format with its real Content-Type, voices, speed, and intelligibility."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from runinfra_gateway.backends.embedded import EmbeddedBackend, describe
from runinfra_gateway.engines._speech import speech_pieces
from runinfra_gateway.engines._text import word_error_rate
from runinfra_gateway.engines.audio_codecs import decode_audio, has_encoder, speech_formats

from .conftest import Engines, Loop
from .helpers import expect_error, upload, wav_samples

SENTENCE = "The weather today is sunny with a light breeze from the west."

EXPECTED = {
    "wav": ("audio/wav", b"RIFF"),
    "flac": ("audio/flac", b"fLaC"),
    "mp3": ("audio/mpeg", None),
    "opus": ("audio/ogg; codecs=opus", b"OggS"),
    "aac": ("audio/aac", b"\xff"),
}


def test_the_speech_formats_are_those_this_ffmpeg_encodes() -> None:
    # A PyAV built on a system FFmpeg without libopus (or aac) lists no opus, so a request for it is refused
    # by name like any unknown format; it was accepted and failed in the encoder with a 500.
    assert has_encoder("libopus")
    assert has_encoder("aac")
    assert not has_encoder("no-such-encoder")
    assert set(speech_formats()) == {*EXPECTED, "pcm"}


@pytest.mark.parametrize("name", ["piper", "flite"])
def test_every_format_decodes_to_the_same_speech(loop: Loop, name: str, request: pytest.FixtureRequest) -> None:
    backend: EmbeddedBackend = request.getfixturevalue(name)
    wav = loop.run(backend.speech({"input": SENTENCE, "response_format": "wav"}))
    reference = decode_audio(wav.content, max_seconds=60)
    assert reference.seconds == pytest.approx(wav.seconds, abs=0.05)
    assert 2.0 < wav.seconds < 8.0
    for fmt, (content_type, magic) in EXPECTED.items():
        audio = loop.run(backend.speech({"input": SENTENCE, "response_format": fmt}))
        assert audio.content_type == content_type
        if magic is not None:
            assert audio.content.startswith(magic), fmt
        decoded = decode_audio(audio.content, max_seconds=60)
        # Encoding keeps the call's own length (mp3/aac add up to a few frames of padding) ...
        assert decoded.seconds == pytest.approx(audio.seconds, abs=0.15), fmt
        # ... and every call says the same sentence: Piper's duration predictor is stochastic
        # (noise_w), so separate calls differ by up to ~0.3 s; Flite is deterministic.
        assert audio.seconds == pytest.approx(reference.seconds, rel=0.15), fmt
        assert float(np.sqrt(np.mean(decoded.samples**2))) > 0.02, fmt
    pcm = loop.run(backend.speech({"input": SENTENCE, "response_format": "pcm"}))
    assert pcm.content_type.startswith("audio/pcm")
    assert "rate=24000" in pcm.content_type
    samples = np.frombuffer(pcm.content, dtype="<i2")
    assert samples.size / 24_000 == pytest.approx(pcm.seconds, abs=0.05)
    assert pcm.seconds == pytest.approx(reference.seconds, rel=0.15)


def test_piper_speech_is_transcribed_back_by_whisper(
    loop: Loop, piper: EmbeddedBackend, whisper: EmbeddedBackend
) -> None:
    audio = loop.run(piper.speech({"input": SENTENCE, "response_format": "mp3"}))
    text = loop.run(whisper.transcribe(upload(audio.content)))["text"]
    assert word_error_rate(SENTENCE, text) <= 0.35, text


def test_flite_speech_is_transcribed_back_by_pocketsphinx(
    loop: Loop, flite: EmbeddedBackend, sphinx: EmbeddedBackend
) -> None:
    audio = loop.run(flite.speech({"input": SENTENCE, "response_format": "flac", "voice": "slt"}))
    text = loop.run(sphinx.transcribe(upload(audio.content)))["text"]
    assert word_error_rate(SENTENCE, text) <= 0.35, text


def test_speed_changes_the_duration(loop: Loop, piper: EmbeddedBackend, flite: EmbeddedBackend) -> None:
    for backend in (piper, flite):
        normal = loop.run(backend.speech({"input": SENTENCE, "response_format": "wav"}))
        fast = loop.run(backend.speech({"input": SENTENCE, "response_format": "wav", "speed": 2.0}))
        assert fast.seconds < normal.seconds * 0.7
        samples, rate = wav_samples(fast.content)
        assert samples.size / rate == pytest.approx(fast.seconds, abs=0.01)


def test_flite_voices_are_listed_and_sound_different(loop: Loop, flite: EmbeddedBackend) -> None:
    info = describe({"engine": "flite"})
    assert {"slt", "kal", "awb", "rms"} <= set(info.voices)
    assert flite.voices == info.voices
    slt = loop.run(flite.speech({"input": "Hello there.", "voice": "slt", "response_format": "wav"}))
    kal = loop.run(flite.speech({"input": "Hello there.", "voice": "kal", "response_format": "wav"}))
    assert slt.content != kal.content
    assert describe({"engine": "piper"}).voices == ("joe",)


def test_bad_requests_name_their_field(loop: Loop, piper: EmbeddedBackend, flite: EmbeddedBackend) -> None:
    cases = [
        ({"input": SENTENCE, "response_format": "ogg"}, "response_format", "invalid_value"),
        ({"input": SENTENCE, "response_format": "wma"}, "response_format", "invalid_value"),
        ({"input": SENTENCE, "voice": "alloy"}, "voice", "invalid_value"),
        ({"input": SENTENCE, "speed": 10}, "speed", "invalid_value"),
        ({"input": ""}, "input", "invalid_value"),
        ({"input": "x" * 4097}, "input", "invalid_value"),
        ({}, "input", "missing_field"),
        ({"input": SENTENCE, "ref_audio": "aGk=", "ref_text": "hi"}, "ref_audio", "unsupported_parameter"),
    ]
    for backend in (piper, flite):
        for body, param, code in cases:
            error = expect_error(loop.run, backend.speech(body))
            assert (error.status, error.param, error.code) == (400, param, code), body


def test_flite_reads_text_that_looks_like_options(loop: Loop, flite: EmbeddedBackend) -> None:
    audio = loop.run(flite.speech({"input": "-o /tmp/x --help", "response_format": "wav"}))
    assert audio.seconds > 0.5
    assert io.BytesIO(audio.content).read(4) == b"RIFF"


@pytest.mark.parametrize("text", ["...", "\x00\x01 \x7f", "\u202e\u200b", "😀", "hi\x00there"])
def test_text_with_little_or_nothing_to_say_is_still_valid_audio(
    loop: Loop, piper: EmbeddedBackend, flite: EmbeddedBackend, text: str
) -> None:
    for backend in (piper, flite):
        for fmt in ("wav", "flac", "mp3", "opus", "aac"):
            audio = loop.run(backend.speech({"input": text, "response_format": fmt}))
            decoded = decode_audio(audio.content, max_seconds=30)
            assert decoded.seconds == pytest.approx(audio.seconds, abs=0.15), (text, fmt)  # mp3/aac frame padding
            assert audio.seconds >= 0.09


def test_flite_speaks_a_word_followed_by_hundreds_of_punctuation_marks(loop: Loop, flite: EmbeddedBackend) -> None:
    # Flite itself corrupts its heap on these (exit 134, which was a 502 for the request).
    for text in ("word" + "." * 400, "Really" + "!?" * 300 + " yes", "end" + ".,;:" * 150):
        audio = loop.run(flite.speech({"input": text, "response_format": "wav"}))
        assert 0.2 < audio.seconds < 5.0, text


def test_flite_past_its_timeout_is_a_504_and_the_engine_serves_on(loop: Loop, engines: Engines) -> None:
    impatient = engines.get("flite-impatient", engine="flite", timeout_seconds=1, workers=1)
    digits = " ".join("1234567890" * 100)  # read one digit at a time: minutes of speech, seconds of work
    started = time.monotonic()
    error = expect_error(loop.run, impatient.speech({"input": digits, "response_format": "wav"}))
    assert time.monotonic() - started < 10
    assert (error.status, error.type) == (504, "deployment_error")
    assert "did not finish within 1 s" in error.message
    audio = loop.run(impatient.speech({"input": "Still here.", "response_format": "wav"}))  # the one worker is free
    assert audio.content.startswith(b"RIFF")


def test_piper_voices_a_long_sentence_in_pieces_and_loses_no_word(
    loop: Loop, piper: EmbeddedBackend, whisper: EmbeddedBackend
) -> None:
    # 66 words, 370 characters and no sentence end: more than one piece (see speech_pieces), all of it heard.
    text = " ".join([SENTENCE.rstrip(".").lower()] * 6)
    assert len(text) > 300
    audio = loop.run(piper.speech({"input": text, "response_format": "wav"}))
    heard = loop.run(whisper.transcribe(upload(audio.content)))["text"]
    assert word_error_rate(text, heard) <= 0.35, heard


@pytest.mark.parametrize("text", [
    "Hello there. How are you today? Fine, thanks, and you!",
    "one two three four five six seven eight nine ten eleven twelve",
    "x" * 95,
    "He said \"stop.\" Then he left, quickly; and nobody followed him home",
    "  padded   with   spaces  ",
])
def test_speech_pieces_keep_every_word_and_whole_sentences(text: str) -> None:
    pieces = speech_pieces(text, 20)
    assert all(0 < len(piece) <= 20 for piece in pieces), pieces
    assert "".join("".join(pieces).split()) == "".join(text.split())  # nothing lost, nothing added
    assert speech_pieces(text, 1000) == [text.strip()]


def test_speech_pieces_end_after_a_sentence_then_a_clause_then_a_word() -> None:
    assert speech_pieces("Hello there. How are you today? Fine, thanks, and you!", 20) == [
        "Hello there.", "How are you today?", "Fine, thanks,", "and you!"]
    assert speech_pieces("one two three four five six", 10) == ["one two", "three four", "five six"]
    assert speech_pieces("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
