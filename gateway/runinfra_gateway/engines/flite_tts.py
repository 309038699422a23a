"""Text-to-speech with Flite (the Debian ``flite`` binary and its built-in voices).

A permissively licensed alternative to Piper: each request runs the binary
once on a worker thread (text through a file, so no input can become an
argument), reads the WAV it writes and encodes it like any other speech.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors
from ..backends.base import AudioResult
from ._options import EngineOptions
from ._speech import SpeechRequest
from ._workers import WorkerPool
from .audio_codecs import encode_speech

__all__ = ["FliteEngine"]

# awb_time only reads clock times; the others are general voices.
_GENERAL_VOICES = ("slt", "kal", "kal16", "awb", "rms")
# Flite corrupts its heap on a word followed by a few hundred punctuation marks ("word" and 400 dots: "malloc():
# corrupted top size", exit 134), a 502 for the request. A run of them is cut to three, which reads the same.
_PUNCTUATION_RUN = re.compile(r"([\"'`.,:;!?(){}\[\]]{3})[\"'`.,:;!?(){}\[\]]+")


class FliteEngine:
    """The flite binary, run by ``workers`` threads."""

    def __init__(self, deployment_id: str, options: EngineOptions) -> None:
        self.deployment_id = deployment_id
        self._binary = options.text("binary", "flite") or "flite"
        self.default_voice = options.text("voice", "slt") or "slt"
        self.voices: tuple[str, ...] = tuple(options.strings("voices", list(_GENERAL_VOICES)))
        if self.default_voice not in self.voices:
            raise ValueError(f"deployment {deployment_id!r}: voice {self.default_voice!r} is not in its voices")
        self._path = ""
        # A hung flite is killed after this long. The longest input takes far less here: a 4,000-digit number,
        # read digit by digit as 974 s of speech, takes 22.7 s.
        self._timeout_seconds = options.number("timeout_seconds", 60.0, minimum=1.0)
        self.pool: WorkerPool[str] = WorkerPool(
            deployment_id,
            self.load_model,
            workers=options.integer("workers", 2),
            queue_size=options.integer("queue_size", 16),
        )

    def load_model(self) -> str:
        path = shutil.which(self._binary)
        if path is None:
            raise FileNotFoundError(f"the {self._binary!r} binary is not installed (Debian package flite)")
        listed = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            [path, "-lv"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        missing = [v for v in self.voices if v not in listed.split()]
        if missing:
            raise ValueError(f"flite lacks the voices {missing}")
        return path

    async def speak(self, body: Mapping[str, Any]) -> AudioResult:
        request = SpeechRequest.parse(body, voices=self.voices, default_voice=self.default_voice)
        return await self.pool.run(lambda binary: self.synthesize(binary, request))

    def synthesize(self, binary: str, request: SpeechRequest) -> AudioResult:
        import soundfile

        with tempfile.TemporaryDirectory(prefix="runinfra-flite-") as tmp:
            text_file, wav_file = Path(tmp) / "input.txt", Path(tmp) / "speech.wav"
            text_file.write_text(_PUNCTUATION_RUN.sub(r"\1", request.text), encoding="utf-8")
            command = [binary, "-voice", request.voice, "-f", str(text_file), "-o", str(wav_file)]
            if request.speed != 1.0:
                command += ["--setf", f"duration_stretch={1.0 / request.speed:.4f}"]
            try:
                done = subprocess.run(  # noqa: S603 - argv list, no shell; text goes through a file
                    command, capture_output=True, timeout=self._timeout_seconds, check=False
                )
            except subprocess.TimeoutExpired:  # run() has killed it
                raise errors.deployment_error(
                    f"flite did not finish within {self._timeout_seconds:g} s (the deployment's timeout_seconds).",
                    status=504,
                ) from None
            if done.returncode != 0 or not wav_file.exists():
                raise errors.deployment_error(f"flite failed (exit {done.returncode}).", status=502)
            samples, rate = soundfile.read(wav_file, dtype="int16", always_2d=False)
        mono = np.asarray(samples, dtype=np.int16).reshape(-1)
        return encode_speech(mono, int(rate), request.response_format)
