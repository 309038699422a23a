"""ONNX Runtime session options shared by the engines that run ONNX models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["cpu_session"]


def cpu_session(model: Path, threads: int) -> Any:
    """A CPU session with ``threads`` intra-op threads that sleep instead of spinning when idle.

    Several engines share one process and the machine's cores; spinning
    threads would steal CPU from the others (and from the event loop).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
