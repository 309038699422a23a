"""Real embedded engines, loaded once per test session.

The engines run their models on worker threads and hand results to an asyncio
loop; one loop runs for the whole session in a background thread, so every
test talks to the same loaded models (loading them per test would cost
seconds each on a shared CPU). ``run(coro)`` runs a coroutine on that loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from runinfra_gateway.backends.embedded import EmbeddedBackend, create_embedded_backend

T = TypeVar("T")


class Loop:
    """An event loop on its own thread; ``run`` blocks the test until the coroutine finishes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="engine-tests-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 240.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines-data")


class Engines:
    """Builds embedded backends on demand, each once per session, and verifies them."""

    def __init__(self, loop: Loop, data_dir: Path) -> None:
        self._loop = loop
        self._data_dir = data_dir
        self._made: dict[str, EmbeddedBackend] = {}

    def get(self, deployment_id: str, **table: Any) -> EmbeddedBackend:
        if deployment_id not in self._made:
            table.setdefault("data_dir", str(self._data_dir))
            backend = create_embedded_backend(deployment_id, table)
            results = self._loop.run(backend.verify(list(backend.info.operations)))
            assert all(r.ok for r in results), [(r.operation, r.message) for r in results]
            self._made[deployment_id] = backend
        return self._made[deployment_id]

    def close(self) -> None:
        for backend in self._made.values():
            self._loop.run(backend.aclose())


@pytest.fixture(scope="session")
def engines(loop: Loop, data_dir: Path) -> Iterator[Engines]:
    made = Engines(loop, data_dir)
    yield made
    made.close()


@pytest.fixture(scope="session")
def chat(engines: Engines) -> EmbeddedBackend:
    return engines.get("smollm2", engine="llama_cpp", n_ctx=2048, queue_size=4)


@pytest.fixture(scope="session")
def embedder(engines: Engines) -> EmbeddedBackend:
    return engines.get("minilm", engine="onnx_embeddings")


@pytest.fixture(scope="session")
def piper(engines: Engines) -> EmbeddedBackend:
    return engines.get("piper-joe", engine="piper")


@pytest.fixture(scope="session")
def flite(engines: Engines) -> EmbeddedBackend:
    return engines.get("flite", engine="flite")


@pytest.fixture(scope="session")
def whisper(engines: Engines) -> EmbeddedBackend:
    return engines.get("whisper-tiny-en", engine="whisper")


@pytest.fixture(scope="session")
def sphinx(engines: Engines) -> EmbeddedBackend:
    return engines.get("pocketsphinx-en", engine="pocketsphinx")


@pytest.fixture(scope="session")
def digits(engines: Engines) -> EmbeddedBackend:
    # Fewer training steps than the default keep the suite lean; the classifier test still has to pass.
    return engines.get("digits", engine="digits_diffusion", train_steps=1500)
