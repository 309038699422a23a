"""Both halves together: a real ``runinfra serve`` fronting a real llama.cpp engine plus light embedded
engines (MiniLM embeddings, Flite speech, PocketSphinx transcription), driven by
our SDK and by the ``openai`` package over real sockets."""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runinfra_gateway.testing import GatewayProcess, LlamaServer

ADMIN_TOKEN = "ria_e2e_" + secrets.token_urlsafe(24)


@dataclass
class Stack:
    gateway: GatewayProcess
    workspace_id: str
    key: str
    pipeline_key: str

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.gateway.base_url + "/admin/v1" + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def new_key(self, credits_cents: float) -> tuple[str, str]:
        workspace = self.admin("POST", "/workspaces", {"name": "e2e", "credits_cents": credits_cents})
        key = self.admin("POST", "/keys", {"scope": "workspace", "workspace_id": workspace["id"]})
        return workspace["id"], key["secret"]


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    server = LlamaServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = {
        "workspaces": [{"id": "e2e", "name": "E2E", "credits_cents": 500}],
        "deployments": [
            {"id": "smollm2", "backend": "upstream", "base_url": llama.base_url,
             "operations": ["chat.completions", "responses"],
             "params": ["temperature", "top_p", "max_tokens", "stop", "seed", "user", "metadata"],
             "prices": {"input_per_1k_tokens": 0.1, "output_per_1k_tokens": 0.2}},
            {"id": "minilm", "backend": "embedded", "engine": "onnx_embeddings", "operations": ["embeddings"],
             "prices": {"input_per_1k_tokens": 0.01}},
            {"id": "flite", "backend": "embedded", "engine": "flite", "operations": ["audio.speech"],
             "voice": "slt", "prices": {"per_1k_characters": 0.2}},
            {"id": "sphinx", "backend": "embedded", "engine": "pocketsphinx",
             "operations": ["audio.transcriptions"], "prices": {"per_audio_second": 0.01}},
        ],
        "pipelines": [{"id": "voice", "workspace": "e2e",
                       "deployments": {"speech_to_text": "sphinx", "llm": "smollm2", "text_to_speech": "flite"}}],
    }
    gateway = GatewayProcess(Path(tmp_path_factory.mktemp("e2e")), config=config, admin_token=ADMIN_TOKEN)
    gateway.start(timeout=180)
    assert "runinfra: ready" in gateway.stdout(), gateway.stdout()
    key = next(line.rsplit(" ", 1)[1] for line in gateway.stdout_lines if "workspace key for" in line)
    pipeline_key = next(line.rsplit(" ", 1)[1] for line in gateway.stdout_lines if "pipeline key for" in line)
    yield Stack(gateway, "e2e", key, pipeline_key)
    gateway.stop()
