"""Supply chain: pinned versions and hashes, the verification cache, and bring-your-own weights."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

import pytest
from runinfra_gateway.backends.embedded import create_embedded_backend
from runinfra_gateway.engines.pinning import PINNED, PinnedWeights, WeightsMismatch, check_file, check_pin

from .conftest import Loop


def test_every_pin_matches_the_installed_weights(tmp_path: Path) -> None:
    for name, pin in PINNED.items():
        root = check_pin(pin, cache_dir=tmp_path)
        assert root.is_dir(), name
        assert importlib.metadata.version(pin.distribution) == pin.version


def test_a_wrong_hash_is_refused_with_both_hashes_named(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"real weights")
    good = hashlib.sha256(b"real weights").hexdigest()
    check_file(weights, good, cache_dir=tmp_path)
    with pytest.raises(WeightsMismatch) as caught:
        check_file(weights, "0" * 64, cache_dir=tmp_path)
    assert good in str(caught.value)
    assert "0" * 64 in str(caught.value)
    with pytest.raises(WeightsMismatch, match="missing"):
        check_file(tmp_path / "absent.bin", good, cache_dir=tmp_path)


def test_the_cache_is_keyed_by_size_and_mtime(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"AAAA")
    check_file(weights, hashlib.sha256(b"AAAA").hexdigest(), cache_dir=tmp_path)
    stat = weights.stat()
    # Same size, same mtime: trusted from the cache without hashing (that is what keeps start-up fast).
    weights.write_bytes(b"BBBB")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    check_file(weights, hashlib.sha256(b"AAAA").hexdigest(), cache_dir=tmp_path)
    # A new mtime means the file is hashed again, and the swap is caught.
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(WeightsMismatch):
        check_file(weights, hashlib.sha256(b"AAAA").hexdigest(), cache_dir=tmp_path)


def test_a_wrong_package_version_is_refused(tmp_path: Path) -> None:
    pin = PINNED["smollm2"]
    wrong = PinnedWeights(pin.distribution, "9.9.9", pin.module, pin.files)
    with pytest.raises(WeightsMismatch, match=r"pins 9\.9\.9"):
        check_pin(wrong, cache_dir=tmp_path)
    absent = PinnedWeights("no-such-weights-package", "1.0", "no_such_weights_package", {})
    with pytest.raises(WeightsMismatch, match="not installed"):
        check_pin(absent, cache_dir=tmp_path)


def test_own_weights_with_a_wrong_sha256_never_become_active(loop: Loop, tmp_path: Path) -> None:
    gguf = check_pin(PINNED["smollm2"], cache_dir=tmp_path) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    backend = create_embedded_backend(
        "byo-chat", {"engine": "llama_cpp", "model_path": str(gguf), "sha256": "f" * 64, "data_dir": str(tmp_path)}
    )
    try:
        results = loop.run(backend.verify(["chat.completions"]))
    finally:
        loop.run(backend.aclose())
    assert [r.ok for r in results] == [False]
    assert "sha256" in results[0].message


def test_own_weights_by_path_load_and_answer(loop: Loop, tmp_path: Path) -> None:
    root = check_pin(PINNED["smollm2"], cache_dir=tmp_path)
    gguf = root / "SmolLM2-135M-Instruct.Q4_1.gguf"
    sha = PINNED["smollm2"].files["SmolLM2-135M-Instruct.Q4_1.gguf"]
    backend = create_embedded_backend(
        "byo-chat-ok",
        {"engine": "llama_cpp", "model_path": str(gguf), "sha256": sha, "n_ctx": 256, "data_dir": str(tmp_path)},
    )
    try:
        results = loop.run(backend.verify(["chat.completions", "responses"]))
    finally:
        loop.run(backend.aclose())
    assert all(r.ok for r in results), results


def _bring_own(tmp_path: Path, pin: str, files: dict[str, str]) -> Path:
    """A user's own copy of pinned weights: ``files`` (their name here -> the pinned file) in a fresh folder."""
    root = check_pin(PINNED[pin], cache_dir=tmp_path)
    own = tmp_path / f"own-{pin}"
    own.mkdir()
    for name, pinned in files.items():
        (own / name).symlink_to(root / pinned)
    return own


def test_own_onnx_dir_piper_voice_and_whisper_dir_load_answer_and_are_pinned_by_sha256(
    loop: Loop, tmp_path: Path
) -> None:
    onnx_dir = _bring_own(tmp_path, "minilm", {"model.onnx": "model.onnx"})
    tokenizer = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    (onnx_dir / "tokenizer.json").symlink_to(check_pin(PINNED["minilm-tokenizer"], cache_dir=tmp_path) / tokenizer)
    voice_dir = _bring_own(tmp_path, "piper-joe", {"my-voice.onnx": "data/en_US-joe-medium.onnx",
                                                   "my-voice.onnx.json": "data/en_US-joe-medium.onnx.json"})
    whisper_files = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
    whisper_dir = _bring_own(tmp_path, "whisper-tiny-en", {name: f"model/{name}" for name in whisper_files})
    own = {
        "own-onnx": ({"engine": "onnx_embeddings", "model_dir": str(onnx_dir)},
                     PINNED["minilm"].files["model.onnx"]),
        "own-piper": ({"engine": "piper", "voice_path": str(voice_dir / "my-voice.onnx"), "voice": "mine"},
                      PINNED["piper-joe"].files["data/en_US-joe-medium.onnx"]),
        "own-whisper": ({"engine": "whisper", "model_dir": str(whisper_dir)},
                        PINNED["whisper-tiny-en"].files["model/model.bin"]),
    }
    for deployment_id, (table, sha256) in own.items():
        for pinned, should_load in ((sha256, True), ("0" * 64, False)):
            backend = create_embedded_backend(
                deployment_id, {**table, "sha256": pinned, "data_dir": str(tmp_path)}
            )
            try:
                results = loop.run(backend.verify(list(backend.info.operations)))
                if should_load:
                    # Each probe is a real request: an embedding of unit length, speech transcribed back,
                    # a spoken sentence transcribed.
                    assert all(r.ok for r in results), (deployment_id, results)
                    if deployment_id == "own-piper":
                        assert backend.voices == ("mine",)
                        audio = loop.run(backend.speech({"input": "Hello.", "voice": "mine", "response_format": "wav"}))
                        assert audio.content.startswith(b"RIFF")
                else:
                    assert [r.ok for r in results] == [False] * len(results), deployment_id
                    assert "0" * 64 in results[0].message, results[0].message
                    assert sha256 in results[0].message, results[0].message
            finally:
                loop.run(backend.aclose())
