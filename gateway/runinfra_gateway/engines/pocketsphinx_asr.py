"""Speech-to-text with PocketSphinx (CMU Sphinx, the en-US model inside its wheel).

Lighter than Whisper and BSD-licensed. It has no text prompt; verbose_json
segments are runs of words split at pauses of 0.3 s or more, with the
decoder's word timings (10 ms frames).
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..backends.base import TranscriptionInput
from ._options import EngineOptions
from ._transcription import AudioLimits, TranscriptionRequest, transcription_body
from ._workers import WorkerPool
from .audio_codecs import ASR_RATE, DecodedAudio
from .pinning import pinned_root

__all__ = ["PocketSphinxEngine"]

_FRAMES_PER_SECOND = 100
_PAUSE_FRAMES = 30


class PocketSphinxEngine:
    """A PocketSphinx decoder per worker, behind a bounded queue."""

    def __init__(self, deployment_id: str, options: EngineOptions) -> None:
        self.deployment_id = deployment_id
        self._options = options
        self._model_dir = options.path("model_dir")
        self.limits = AudioLimits.from_options(options)
        self.languages: tuple[str, ...] = ("en",)
        self.pool: WorkerPool[Any] = WorkerPool(
            deployment_id,
            self.load_model,
            workers=options.integer("workers", 1),
            queue_size=options.integer("queue_size", 8),
        )

    def load_model(self) -> Any:
        from pocketsphinx import Decoder

        if self._model_dir is None:
            root = pinned_root("pocketsphinx-en-us", cache_dir=self._options.data_dir()) / "model" / "en-us"
        else:
            root = self._model_dir
        return Decoder(
            hmm=str(root / "en-us"),
            lm=str(root / "en-us.lm.bin"),
            dict=str(root / "cmudict-en-us.dict"),
            samprate=ASR_RATE,
            loglevel="FATAL",
        )

    async def transcribe(self, upload: TranscriptionInput) -> dict[str, Any]:
        if upload.fields.get("prompt"):
            # PocketSphinx has no text conditioning; a prompt it would ignore is refused instead.
            raise errors.unsupported_parameter("prompt", self.deployment_id)
        request = TranscriptionRequest.parse(upload.fields, languages=self.languages)
        return await self.pool.run(lambda decoder: self.run(decoder, self.limits.decode(upload.file), request))

    def run(self, decoder: Any, audio: DecodedAudio, request: TranscriptionRequest) -> dict[str, Any]:
        """Transcribe decoded audio (on a worker thread)."""
        pcm = (audio.samples * 32767.0).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        text = hypothesis.hypstr.strip() if hypothesis is not None else ""
        segments = _segments([(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]) if text else []
        return transcription_body(request, text=text, language="en", duration=audio.seconds, segments=segments)


def _segments(words: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
    runs: list[list[tuple[str, int, int]]] = [[]]
    for word, start, end in words:
        if word.startswith("<") or word.startswith("["):
            if word == "<sil>" and end - start >= _PAUSE_FRAMES and runs[-1]:
                runs.append([])
            continue
        runs[-1].append((word.split("(")[0], start, end))
    segments: list[dict[str, Any]] = []
    for run in (r for r in runs if r):
        segments.append(
            {
                "id": len(segments),
                "start": _seconds(run[0][1]),
                "end": _seconds(run[-1][2] + 1),
                "text": " ".join(w for w, _, _ in run),
                "words": [{"word": w, "start": _seconds(s), "end": _seconds(e + 1)} for w, s, e in run],
            }
        )
    return segments




def _seconds(frame: int) -> float:
    return round(frame / _FRAMES_PER_SECOND, 2)
