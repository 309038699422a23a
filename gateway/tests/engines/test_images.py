"""The digits diffusion model: PNGs of the requested size that a classifier reads as the requested digit."""

from __future__ import annotations

import io
import os
import signal
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runinfra_gateway.backends.base import GeneratedImages
from runinfra_gateway.backends.embedded import EmbeddedBackend
from runinfra_gateway.engines.digits_diffusion import DigitsModel, digit_in_prompt, render, sample
from runinfra_gateway.engines.png import decode_png, encode_png

from .conftest import Loop
from .helpers import expect_error


@pytest.fixture(scope="module")
def classifier() -> object:
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    digits = load_digits()
    return SVC(gamma=0.001).fit(digits.data, digits.target)


def _pngs(answer: GeneratedImages) -> list[np.ndarray]:
    return [decode_png(answer.as_png(index)) for index in range(len(answer.images))]


def _as_8x8(pixels: np.ndarray) -> np.ndarray:
    """Back to the 8x8, 0-16 ink scale the classifier was trained on (block means of the centred square)."""
    side = min(pixels.shape)
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    square = pixels[top : top + side, left : left + side].astype(np.float64)
    block = side // 8
    blocks = square[: block * 8, : block * 8].reshape(8, block, 8, block).mean(axis=(1, 3))
    return (255.0 - blocks) / 255.0 * 16.0


@pytest.mark.parametrize("size", ["256x256", "64x32", "1024x1024"])
def test_pngs_have_the_requested_size(loop: Loop, digits: EmbeddedBackend, size: str) -> None:
    answer = loop.run(digits.images({"prompt": "a handwritten 4", "n": 2, "size": size}))
    width, height = (int(v) for v in size.split("x"))
    images = _pngs(answer)
    assert len(images) == 2
    for pixels in images:
        assert pixels.shape == (height, width)
        assert int(pixels.max()) - int(pixels.min()) > 100
    assert isinstance(answer.created, int)


def test_a_classifier_recognises_the_requested_digit(loop: Loop, digits: EmbeddedBackend, classifier: object) -> None:
    prompts = {0: "zero", 1: "the number 1", 2: "a two", 3: "3", 4: "four", 5: "digit 5", 6: "six",
               7: "a handwritten seven", 8: "8", 9: "Nine, please"}
    correct = total = 0
    for digit, prompt in prompts.items():
        answer = loop.run(digits.images({"prompt": prompt, "n": 5, "size": "64x64"}))
        samples = np.array([_as_8x8(p).reshape(-1) for p in _pngs(answer)])
        predicted = classifier.predict(samples)  # type: ignore[attr-defined]
        correct += int((predicted == digit).sum())
        total += len(samples)
        assert (predicted == digit).sum() >= 3, (digit, predicted)
    assert correct / total >= 0.8


def test_samples_differ_between_requests(loop: Loop, digits: EmbeddedBackend) -> None:
    first = loop.run(digits.images({"prompt": "7", "size": "32x32"}))
    second = loop.run(digits.images({"prompt": "7", "size": "32x32"}))
    assert first.images[0] != second.images[0]


def test_prompts_name_digits_as_numerals_or_words() -> None:
    assert digit_in_prompt("Draw the digit seven") == 7
    assert digit_in_prompt("a 3 in blue ink") == 3
    assert digit_in_prompt("ZERO") == 0
    assert digit_in_prompt("someone") is None  # 'one' inside a word does not count
    assert digit_in_prompt("a cat") is None
    assert digit_in_prompt("1024 cats") is None


def test_bad_requests_name_their_field(loop: Loop, digits: EmbeddedBackend) -> None:
    cases = [
        ({"prompt": "a cat on a sofa"}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "7", "n": 11}, "n"),
        ({"prompt": "7", "n": 0}, "n"),
        ({"prompt": "7", "size": "2048x2048"}, "size"),
        ({"prompt": "7", "size": "big"}, "size"),
        ({"prompt": "7", "size": "4x4"}, "size"),
        ({"prompt": "7", "response_format": "jpeg"}, "response_format"),
    ]
    for body, param in cases:
        error = expect_error(loop.run, digits.images(body))
        assert (error.status, error.param) == (400, param), body
    error = expect_error(loop.run, digits.images({"prompt": "a cat"}))
    assert "0-9" in error.message


def _decoded_by_ffmpeg(png: bytes) -> np.ndarray:
    import av

    with av.open(io.BytesIO(png)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="gray")


def test_png_codec_round_trips_and_rejects_damage() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (17, 23), dtype=np.uint8)
    pixels[0, :3] = [0, 255, 1]  # differences that wrap modulo 256 under the Sub filter
    png = encode_png(pixels)
    assert np.array_equal(decode_png(png), pixels)
    assert np.array_equal(_decoded_by_ffmpeg(png), pixels)  # an independent decoder agrees
    # Our decoder also reads rows filtered other ways: here alternately None and Up.
    raw = np.concatenate([np.array([[0], [2]] * 8 + [[0]], np.uint8),
                          np.vstack([pixels[0], np.diff(pixels, axis=0)]).astype(np.uint8)], axis=1)
    raw[0::2, 1:] = pixels[0::2]
    start = png.index(b"IDAT") - 4
    body = zlib.compress(raw.tobytes())
    idat = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    assert np.array_equal(decode_png(png[:start] + idat + b"\x00\x00\x00\x00IEND\xaeB`\x82"), pixels)
    damaged = bytearray(png)
    damaged[40] ^= 0xFF
    with pytest.raises(ValueError, match=r"damaged|does not match"):
        decode_png(bytes(damaged))
    with pytest.raises(ValueError, match="signature"):
        decode_png(b"GIF89a")


def _render_by_interp(ink: np.ndarray, width: int, height: int) -> np.ndarray:
    """The renderer as first written (np.interp row by row, then column by column): the oracle."""
    side = min(width, height)
    h, w = ink.shape
    ys = np.clip((np.arange(side) + 0.5) * h / side - 0.5, 0, h - 1)
    xs = np.clip((np.arange(side) + 0.5) * w / side - 0.5, 0, w - 1)
    rows = np.array([np.interp(xs, np.arange(w), row) for row in ink])
    square = np.array([np.interp(ys, np.arange(h), col) for col in rows.T]).T
    page = np.full((height, width), 255, dtype=np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    page[top : top + side, left : left + side] = (255.0 * (1.0 - square)).round().astype(np.uint8)
    return page


@pytest.mark.parametrize("size", [(1024, 1024), (64, 32), (37, 91), (8, 8)])
def test_rendering_matches_the_row_by_row_interpolation(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[0])
    for _ in range(3):
        ink = rng.random((8, 8))
        assert np.array_equal(render(ink, *size), _render_by_interp(ink, *size))


def _sample_step_by_step(model: DigitsModel, digit: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Guided DDIM as written down: the conditioned and the unconditioned prediction separately, every step."""
    from runinfra_gateway.engines.digits_diffusion import _CLASSES, _STEPS, _alpha_bars

    bars = _alpha_bars()
    schedule = np.linspace(_STEPS - 1, 0, 40).round().astype(np.int64)
    x = rng.normal(size=(count, 64))
    for i, t in enumerate(schedule):
        ts = np.full(count, t)
        eps_c = model.predict(model.inputs(x, ts, np.full(count, digit)))
        eps_u = model.predict(model.inputs(x, ts, np.full(count, _CLASSES)))
        eps = eps_u + 3.0 * (eps_c - eps_u)
        a, a_next = bars[t], (bars[schedule[i + 1]] if i + 1 < len(schedule) else 1.0)
        x0 = np.clip((x - np.sqrt(1 - a) * eps) / np.sqrt(a), -1.0, 1.0)
        eps = (x - np.sqrt(a) * x0) / np.sqrt(1 - a)
        x = np.sqrt(a_next) * x0 + np.sqrt(1 - a_next) * eps
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0).reshape(count, 8, 8)


@pytest.mark.parametrize("count", [1, 3])
def test_batched_guidance_samples_what_two_predictions_per_step_sample(count: int) -> None:
    model = DigitsModel.initial(np.random.default_rng(1))
    model.params["w3"] *= 10.0  # an untrained model's output layer starts near zero; make the noise matter
    for digit in (0, 7):
        batched = sample(model, digit, count, np.random.default_rng(digit), steps=40, guidance=3.0)
        reference = _sample_step_by_step(model, digit, count, np.random.default_rng(digit))
        assert batched.shape == (count, 8, 8)
        assert np.allclose(batched, reference, atol=1e-5), float(np.abs(batched - reference).max())
        assert not np.allclose(batched, sample(model, digit, count, np.random.default_rng(99)))


def test_damaged_saved_weights_are_replaced_by_training(loop: Loop, tmp_path: Any) -> None:
    from runinfra_gateway.backends.embedded import create_embedded_backend

    weights = tmp_path / "digits.npz"
    weights.write_bytes(b"not an npz file")
    backend = create_embedded_backend(
        "digits-damaged", {"engine": "digits_diffusion", "weights_path": str(weights), "train_steps": 50}
    )
    try:
        results = loop.run(backend.verify(["images.generate"]))
    finally:
        loop.run(backend.aclose())
    assert [r.ok for r in results] == [True]
    assert weights.read_bytes().startswith(b"PK")  # a fresh .npz (zip) replaced the damaged file


def _state_and_parent(pid: int) -> tuple[str, int]:
    """Fields 3 and 4 of ``/proc/<pid>/stat`` (after the command name, which may hold spaces); OSError once gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _sampler_processes(parent: int) -> set[int]:
    """PIDs of ``parent``'s digits sampler processes."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            _, ppid = _state_and_parent(int(entry.name))
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == parent and b"runinfra_gateway.engines._digits_process" in command:
            found.add(int(entry.name))
    return found


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state, _ = _state_and_parent(pid)
        except OSError:
            return True
        if state == "Z":  # exited, not yet reaped by its parent
            return True
        time.sleep(0.05)
    return False


def test_a_killed_sampler_process_fails_one_request_and_is_replaced(loop: Loop, tmp_path: Any) -> None:
    from runinfra_gateway.backends.embedded import create_embedded_backend

    before = _sampler_processes(os.getpid())
    backend = create_embedded_backend(
        "digits-crash", {"engine": "digits_diffusion", "weights_path": str(tmp_path / "w.npz"), "train_steps": 50}
    )
    try:
        assert [r.ok for r in loop.run(backend.verify(["images.generate"]))] == [True]
        (child,) = _sampler_processes(os.getpid()) - before
        os.kill(child, signal.SIGKILL)
        assert _gone(child, within=10)
        error = expect_error(loop.run, backend.images({"prompt": "a 3", "size": "64x64"}))
        assert error.status == 503
        assert "restarted" in error.message
        answer = loop.run(backend.images({"prompt": "a 3", "size": "64x64"}))
        assert decode_png(answer.as_png(0)).shape == (64, 64)
        (replacement,) = _sampler_processes(os.getpid()) - before
        assert replacement != child
    finally:
        loop.run(backend.aclose())
    assert _gone(replacement, within=10)  # closing the engine stops its process


def test_the_sampler_process_exits_when_the_gateway_is_killed(tmp_path: Any) -> None:
    from runinfra_gateway.testing import GatewayProcess

    digits = {"id": "digits", "backend": "embedded", "engine": "digits_diffusion", "operations": ["images.generate"]}
    config = {"deployments": [{**digits, "train_steps": 50}]}
    gateway = GatewayProcess(tmp_path / "gateway", config=config).start(timeout=120)
    try:
        assert gateway.process is not None
        children = _sampler_processes(gateway.process.pid)
        assert len(children) == 1
    finally:
        gateway.kill()  # SIGKILL: no shutdown code runs in the gateway
    (child,) = children
    assert _gone(child, within=10)
