"""Embedded model engines: real models on CPU for every modality.

Each engine module wraps one runtime (llama.cpp, ONNX Runtime, Piper, Flite,
faster-whisper, PocketSphinx, and a NumPy diffusion model) behind worker
threads with a bounded queue; :mod:`runinfra_gateway.backends.embedded` maps
them onto the backend seam. :func:`default_config` is what ``runinfra serve``
runs with no config file: every modality, a default workspace and a voice
pipeline.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_DEPLOYMENTS", "default_config"]

#: The embedded default deployments (tables as a TOML config would spell them).
DEFAULT_DEPLOYMENTS: tuple[dict[str, Any], ...] = (
    {
        "id": "smollm2-135m-instruct",
        "backend": "embedded",
        "engine": "llama_cpp",
        "operations": ["chat.completions", "responses"],
        "n_ctx": 2048,
        "default_temperature": 0.3,
        "prices": {"input_per_1k_tokens": 0.01, "output_per_1k_tokens": 0.02},
    },
    {
        "id": "minilm-l6-v2",
        "backend": "embedded",
        "engine": "onnx_embeddings",
        "operations": ["embeddings"],
        "prices": {"input_per_1k_tokens": 0.001},
    },
    {
        "id": "piper-joe",
        "backend": "embedded",
        "engine": "piper",
        "operations": ["audio.speech"],
        "voice": "joe",
        "prices": {"per_1k_characters": 0.5},
    },
    {
        "id": "flite",
        "backend": "embedded",
        "engine": "flite",
        "operations": ["audio.speech"],
        "voice": "slt",
        "prices": {"per_1k_characters": 0.2},
    },
    {
        "id": "whisper-tiny-en",
        "backend": "embedded",
        "engine": "whisper",
        "operations": ["audio.transcriptions"],
        "prices": {"per_audio_second": 0.01},
    },
    {
        "id": "pocketsphinx-en",
        "backend": "embedded",
        "engine": "pocketsphinx",
        "operations": ["audio.transcriptions"],
        "prices": {"per_audio_second": 0.005},
    },
    {
        "id": "digits-diffusion",
        "backend": "embedded",
        "engine": "digits_diffusion",
        "operations": ["images.generate"],
        "prices": {"per_image": 0.5},
    },
)


def default_config() -> dict[str, Any]:
    """The TOML-equivalent document of the embedded default (fresh copies; callers may mutate them)."""
    return {
        "workspaces": [{"id": "default", "name": "Default workspace", "credits_cents": 1000}],
        "deployments": [
            {key: (dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value)
             for key, value in table.items()}
            for table in DEFAULT_DEPLOYMENTS
        ],
        "pipelines": [
            {
                "id": "voice",
                "workspace": "default",
                "deployments": {
                    "speech_to_text": "whisper-tiny-en",
                    "llm": "smollm2-135m-instruct",
                    "text_to_speech": "piper-joe",
                },
            }
        ],
    }
