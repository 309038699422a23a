"""The digits model in a child process: the parent's handle, and the child's job loop.

Sampling is hundreds of small NumPy calls that hold the GIL between them; in
the gateway's process every one of them competed with the event loop
(measured: 75 % of the in-process request rate at 256x256 with 4 in flight).
Each worker thread of a digits deployment owns one child, started as
``python -m runinfra_gateway.engines._digits_process`` and fed over its
stdin/stdout, and waits for it with the GIL released.

A plain subprocess rather than :mod:`multiprocessing`: nothing of the parent's
``__main__`` is imported again in the child, no resource-tracker process, and
when the gateway dies, even by SIGKILL, the child reads end-of-file on stdin
and exits. Frames are a 4-byte big-endian length and the bytes: the weights
(``.npz``) once, then per job a JSON request, answered by a JSON header and one
frame per PNG.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from typing import IO, Any

import numpy as np

from .. import errors

__all__ = ["DigitsProcess", "DrawJob"]

_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class DrawJob:
    """What one request asks the child for."""

    digit: int
    count: int
    width: int
    height: int
    seed: int
    steps: int
    guidance: float


class _ChildGone(Exception):
    """The child closed its end: it exited or was killed."""


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise _ChildGone
    (length,) = _LENGTH.unpack(head)
    payload = stream.read(length)
    if len(payload) < length:
        raise _ChildGone
    return payload


class DigitsProcess:
    """One child process holding the model; :meth:`draw` is called from one worker thread at a time."""

    def __init__(self, params: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **params)
        self._weights = buffer.getvalue()
        self._lock = threading.Lock()
        self._process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, a module of this package
            [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            _write_frame(process.stdin, self._weights)
            if _read_frame(process.stdout) != b"ready":
                raise _ChildGone
        except (_ChildGone, OSError):
            process.kill()
            process.wait()
            raise RuntimeError(f"the digits sampler process did not start (exit status {process.returncode})") from None
        return process

    def draw(self, job: DrawJob) -> list[bytes]:
        """PNG bytes of ``job.count`` samples; a child that died is replaced and the request gets a 503."""
        with self._lock:
            process = self._process
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                _write_frame(process.stdin, json.dumps(asdict(job)).encode())
                header = json.loads(_read_frame(process.stdout))
                if not header["ok"]:
                    raise RuntimeError(f"the digits sampler failed: {header['error']}")
                return [_read_frame(process.stdout) for _ in range(header["count"])]
            except (_ChildGone, OSError):
                process.kill()
                process.wait()
                try:
                    self._process = self._start()
                    outcome = "it has been restarted"
                except RuntimeError:
                    outcome = "it could not be restarted (the next request tries again)"
                raise errors.deployment_error(
                    f"The image engine's process stopped while drawing; {outcome}. Retry the request.",
                    status=503,
                    retry_after_seconds=1,
                ) from None

    def close(self) -> None:
        """End the child: it exits when its stdin closes."""
        with self._lock:
            process = self._process
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def main() -> None:
    """The child: read the weights, then answer jobs until stdin ends."""
    # Ctrl-C reaches the whole process group: the gateway drains its requests and then closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .digits_diffusion import DigitsModel, draw_pngs

    # Replies get their own descriptor and fd 1 becomes stderr: nothing printed can corrupt a frame.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    try:
        with np.load(io.BytesIO(_read_frame(requests)), allow_pickle=False) as stored:
            model = DigitsModel({key: stored[key] for key in stored.files})
        _write_frame(replies, b"ready")
        while True:
            job = DrawJob(**json.loads(_read_frame(requests)))
            try:
                pngs = draw_pngs(model, job)
            except Exception as exc:  # reported to the request, the child stays up
                _write_frame(replies, json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
                continue
            _write_frame(replies, json.dumps({"ok": True, "count": len(pngs)}).encode())
            for png in pngs:
                _write_frame(replies, png)
    except (_ChildGone, BrokenPipeError):
        return  # the gateway closed our stdin (shutdown) or is gone


if __name__ == "__main__":
    main()
