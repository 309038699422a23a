"""A tiny class-conditional diffusion model of handwritten digits, in NumPy.

No image-generation weights can be downloaded here, so the embedded image
deployment trains its own on first start: a denoising diffusion model (DDPM
training objective, cosine noise schedule) over scikit-learn's bundled 8x8
handwritten digits, with a small MLP that predicts the noise from the noisy
image, the timestep and the digit class. Sampling is DDIM with
classifier-free guidance. Training takes seconds on a CPU; the weights are
saved in the data dir and reused. It draws the digits 0-9 named in the prompt
(as a numeral or a word), upscaled to the requested size, as PNG. Drawing runs
in a child process per worker (see :mod:`._digits_process`).
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import errors
from ..backends.base import GeneratedImages
from . import _params
from ._digits_process import DigitsProcess, DrawJob
from ._options import EngineOptions
from ._workers import WorkerPool
from .png import encode_png

__all__ = ["DigitsDiffusionEngine", "DigitsModel", "digit_in_prompt", "draw_pngs", "render", "sample", "train"]

Array = npt.NDArray[np.floating[Any]]

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGIT = re.compile(r"(?<![\w.])(\d)(?![\w.])|\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)
_STEPS = 200  # diffusion timesteps
_CLASSES = 10  # class index 10 is "no class" (classifier-free guidance)
_TIME_FEATURES = 32
_HIDDEN = 256
_WEIGHTS_VERSION = 1
_MAX_SIDE = 1024
_MAX_N = 10


def digit_in_prompt(prompt: str) -> int | None:
    """The first digit named in the prompt (``7``, ``seven``), or None."""
    match = _DIGIT.search(prompt)
    if match is None:
        return None
    if match.group(1) is not None:
        return int(match.group(1))
    return _WORDS.index(match.group(2).lower())


# -- the model -------------------------------------------------------------------------


def _alpha_bars() -> npt.NDArray[np.float64]:
    """Cosine schedule (Nichol & Dhariwal): the signal fraction left at each step."""
    s = 0.008
    t = np.arange(_STEPS + 1) / _STEPS
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    bars: npt.NDArray[np.float64] = np.clip(f[1:] / f[0], 1e-5, 0.9999)
    return bars


def _time_features(t: npt.NDArray[np.int64]) -> Array:
    half = _TIME_FEATURES // 2
    freqs = np.exp(-math.log(1000.0) * np.arange(half) / half)
    angles = t[:, None].astype(np.float64) * freqs[None, :]
    features: Array = np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)
    return features


@dataclass
class DigitsModel:
    """The noise predictor: an MLP over (noisy image, time features, class one-hot)."""

    params: dict[str, Array]

    @classmethod
    def initial(cls, rng: np.random.Generator) -> DigitsModel:
        inputs = 64 + _TIME_FEATURES + _CLASSES + 1
        sizes = [(inputs, _HIDDEN), (_HIDDEN, _HIDDEN), (_HIDDEN, _HIDDEN), (_HIDDEN, 64)]
        params: dict[str, Array] = {}
        for i, (fan_in, fan_out) in enumerate(sizes):
            params[f"w{i}"] = rng.normal(0.0, math.sqrt(2.0 / fan_in), (fan_in, fan_out)).astype(np.float32)
            params[f"b{i}"] = np.zeros(fan_out, np.float32)
        params["w3"] *= 0.1
        return cls(params)

    def inputs(self, x: Array, t: npt.NDArray[np.int64], labels: npt.NDArray[np.int64]) -> Array:
        """The predictor's input rows: noisy image (64), time features, class one-hot (10 = no class)."""
        onehot = np.zeros((x.shape[0], _CLASSES + 1), np.float32)
        onehot[np.arange(x.shape[0]), labels] = 1.0
        return np.concatenate([x.astype(np.float32), _time_features(t), onehot], axis=1)

    def predict(self, inputs: Array) -> Array:
        """The predicted noise for each row of ``inputs`` (laid out as :meth:`inputs` makes them)."""
        h = inputs
        p = self.params
        for i in range(3):
            h = np.maximum(h @ p[f"w{i}"] + p[f"b{i}"], 0.0)
        out: Array = h @ p["w3"] + p["b3"]
        return out

    def loss_and_grads(
        self, x: Array, t: npt.NDArray[np.int64], labels: npt.NDArray[np.int64], target: Array
    ) -> tuple[float, dict[str, Array]]:
        p = self.params
        activations = [self.inputs(x, t, labels)]
        for i in range(3):
            activations.append(np.maximum(activations[-1] @ p[f"w{i}"] + p[f"b{i}"], 0.0))
        out = activations[-1] @ p["w3"] + p["b3"]
        diff = out - target
        loss = float(np.mean(diff**2))
        grad = 2.0 * diff / diff.size
        grads: dict[str, Array] = {}
        for i in range(3, -1, -1):
            grads[f"w{i}"] = activations[i].T @ grad
            grads[f"b{i}"] = grad.sum(axis=0)
            if i:
                grad = (grad @ p[f"w{i}"].T) * (activations[i] > 0)
        return loss, grads


def train(*, steps: int = 2000, batch: int = 128, seed: int = 0) -> DigitsModel:
    """Train the noise predictor on sklearn's 8x8 digits (DDPM objective, Adam)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.data / 8.0 - 1.0).astype(np.float32)
    classes = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    model = DigitsModel.initial(rng)
    bars = _alpha_bars()
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in model.params.items()}
    beta1, beta2, base_lr = 0.9, 0.999, 2e-3
    for step in range(1, steps + 1):
        index = rng.integers(0, len(images), batch)
        x0 = images[index]
        labels = np.where(rng.random(batch) < 0.1, _CLASSES, classes[index])
        t = rng.integers(0, _STEPS, batch)
        noise = rng.normal(size=x0.shape).astype(np.float32)
        a = bars[t][:, None].astype(np.float32)
        xt = np.sqrt(a) * x0 + np.sqrt(1.0 - a) * noise
        _, grads = model.loss_and_grads(xt, t, labels, noise)
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        for key, g in grads.items():
            m, v = moments[key]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            m_hat = m / (1 - beta1**step)
            v_hat = v / (1 - beta2**step)
            model.params[key] -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    return model


def sample(
    model: DigitsModel, digit: int, count: int, rng: np.random.Generator, *, steps: int = 40, guidance: float = 3.0
) -> Array:
    """``count`` 8x8 images of ``digit`` in [0, 1] (ink), by guided DDIM (eta 0)."""
    bars = _alpha_bars()
    schedule = np.linspace(_STEPS - 1, 0, steps).round().astype(np.int64)
    x = rng.normal(size=(count, 64))
    # Both predictions of the guidance in one batch (rows [0, count) name the digit, the rest "no class"),
    # and the input rows built once, only the noisy image and the step's time features written per step:
    # half the NumPy calls of predicting each half on its own (2.0 vs 3.3 ms a sample).
    labels = np.concatenate([np.full(count, digit), np.full(count, _CLASSES)])
    inputs = model.inputs(np.concatenate([x, x]), np.zeros(2 * count, np.int64), labels)
    times = _time_features(schedule)
    time_columns = slice(64, 64 + _TIME_FEATURES)
    for i, t in enumerate(schedule):
        inputs[:count, :64] = x
        inputs[count:, :64] = x
        inputs[:, time_columns] = times[i]
        both = model.predict(inputs)
        eps_c, eps_u = both[:count], both[count:]
        eps = eps_u + guidance * (eps_c - eps_u)
        a = float(bars[t])
        x0 = np.clip((x - math.sqrt(1 - a) * eps) / math.sqrt(a), -1.0, 1.0)
        a_next = float(bars[schedule[i + 1]]) if i + 1 < len(schedule) else 1.0
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        x = math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps
    ink: Array = np.clip((x + 1.0) / 2.0, 0.0, 1.0).reshape(count, 8, 8)
    return ink


# -- images ----------------------------------------------------------------------------


def _resize(image: Array, height: int, width: int) -> Array:
    """Bilinear resampling (pixel centres aligned), separable: one small weight matrix per axis, two products."""
    return _bilinear_weights(height, image.shape[0]) @ image @ _bilinear_weights(width, image.shape[1]).T


def _bilinear_weights(size_out: int, size_in: int) -> Array:
    """Row ``i`` weighs the two input pixels either side of output pixel ``i``'s centre (one, at an edge)."""
    position = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, size_in - 1)
    fraction = position - low
    weights = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    weights[rows, low] += 1.0 - fraction
    weights[rows, high] += fraction
    return weights


def render(ink: Array, width: int, height: int) -> npt.NDArray[np.uint8]:
    """Dark ink on a white page: the 8x8 digit scaled into the largest centred square."""
    side = min(width, height)
    page = np.full((height, width), 255, dtype=np.uint8)
    # In place: at 1024x1024 every temporary is 8 MB of fresh pages to fault in.
    square = _resize(ink, side, side)
    np.subtract(1.0, square, out=square)
    square *= 255.0
    np.round(square, out=square)
    top, left = (height - side) // 2, (width - side) // 2
    page[top : top + side, left : left + side] = square.astype(np.uint8)
    return page


def _size(value: Any) -> tuple[int, int]:
    if value is None or value == "auto":
        return 1024, 1024
    match = re.fullmatch(r"(\d{1,4})x(\d{1,4})", value) if isinstance(value, str) else None
    if match is None:
        raise errors.invalid_request("'size' must look like 512x512 (width x height).", param="size")
    width, height = int(match.group(1)), int(match.group(2))
    if not (8 <= width <= _MAX_SIDE and 8 <= height <= _MAX_SIDE):
        raise errors.invalid_request(f"'size' sides must be from 8 to {_MAX_SIDE} pixels.", param="size")
    return width, height


# -- the engine ------------------------------------------------------------------------


class DigitsDiffusionEngine:
    """Trains (or loads) the digits model once per worker and samples PNGs from it."""

    def __init__(self, deployment_id: str, options: EngineOptions) -> None:
        self.deployment_id = deployment_id
        self._options = options
        self._weights = options.path("weights_path")
        self._train_steps = options.integer("train_steps", 2000, minimum=10)
        self._sample_steps = options.integer("sample_steps", 40, minimum=2)
        self._guidance = options.number("guidance", 3.0)
        self.pool: WorkerPool[DigitsProcess] = WorkerPool(
            deployment_id,
            self._start_sampler,
            workers=options.integer("workers", 1),
            queue_size=options.integer("queue_size", 8),
            unload=DigitsProcess.close,
        )

    def weights_path(self) -> Path:
        if self._weights is not None:
            return self._weights
        return self._options.data_dir() / f"digits-diffusion-v{_WEIGHTS_VERSION}-{self._train_steps}.npz"

    def _start_sampler(self) -> DigitsProcess:
        return DigitsProcess(self._load().params)

    def _load(self) -> DigitsModel:
        path = self.weights_path()
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    loaded = DigitsModel({key: stored[key] for key in stored.files})
                expected = DigitsModel.initial(np.random.default_rng(0)).params
                if {k: v.shape for k, v in loaded.params.items()} == {k: v.shape for k, v in expected.items()}:
                    return loaded
                logging.getLogger(__name__).warning("%s does not hold this model's weights; training anew", path)
            except (OSError, ValueError, KeyError) as exc:
                logging.getLogger(__name__).warning("could not read %s (%s); training anew", path, exc)
        started = time.monotonic()
        with _one_blas_thread():
            model = train(steps=self._train_steps)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
            arrays: dict[str, Any] = dict(model.params)
            np.savez(tmp, **arrays)
            tmp.replace(path)
        except OSError as exc:  # serve from memory; the next start trains again
            logging.getLogger(__name__).warning("could not save the digits model to %s: %s", path, exc)
        _log_training(path, time.monotonic() - started)
        return model

    async def generate(self, body: Mapping[str, Any]) -> GeneratedImages:
        prompt = _params.required_text(body, "prompt", max_chars=4000)
        digit = digit_in_prompt(prompt)
        if digit is None:
            raise errors.invalid_request(
                "This image model draws the handwritten digits 0-9: name one in the prompt "
                "(for example 'a handwritten 7' or 'the digit seven').",
                param="prompt",
            )
        count = _params.integer(body, "n", 1, low=1, high=_MAX_N) or 1
        width, height = _size(body.get("size"))
        _params.choice(body, "response_format", "b64_json", ("b64_json", "url"))
        seed = secrets.randbits(64)  # np.random.bytes: ~0.1 ms of cold NumPy calls on the event loop
        job = DrawJob(digit, count, width, height, seed, self._sample_steps, self._guidance)
        pngs = await self.pool.run(lambda sampler: sampler.draw(job))
        return GeneratedImages(created=int(time.time()), images=pngs)


def draw_pngs(model: DigitsModel, job: DrawJob) -> list[bytes]:
    """PNG bytes of ``job.count`` samples (in the deployment's sampler process)."""
    rng = np.random.default_rng(job.seed)
    with _one_blas_thread():  # the deployment's one thread, for the sampling and the resizing products alike
        inks = sample(model, job.digit, job.count, rng, steps=job.steps, guidance=job.guidance)
        return [encode_png(render(ink, job.width, job.height)) for ink in inks]


def _log_training(path: Path, seconds: float) -> None:
    logging.getLogger(__name__).info("trained the digits diffusion model in %.1f s; saved to %s", seconds, path)


_blas: list[Any] = []
_blas_lock = threading.Lock()


def _one_blas_thread() -> Any:
    """Small matrices: BLAS threads only add synchronisation, and on a busy CPU they spin (10x slower here).

    The controller is made once: looking the BLAS libraries up costs ~2 ms, as much as a whole sample.
    """
    with _blas_lock:
        if not _blas:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

            _blas.append(ThreadpoolController())
    return _blas[0].limit(limits=1, user_api="blas")
