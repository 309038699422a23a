"""The credit journal: an append-only file every hold, settle and adjustment is written to first.

Each record is one JSON line. Records are buffered as they are added and
:meth:`Journal.write` puts everything buffered into the file with a single
``os.write`` on an ``O_APPEND`` descriptor (the ledger calls it once per event-loop
pass, so the records of many requests share one system call). The kernel owns the
bytes once ``write`` returns, so a written record survives ``kill -9`` of the
gateway without an ``fsync`` on the hot path (a power cut can still lose the last
page; that is the price of not syncing per request). The
batch writer copies records into SQL; on start, the tail SQL has not seen yet is
replayed. Records with a sequence number at or below the SQL checkpoint are skipped,
so replaying twice changes nothing.

The journal is a series of segment files ``<name>.<first seq>``; a full segment is
sealed and a new one opened, and sealed segments are deleted once SQL holds all of
their records. An exclusive ``flock`` on ``<name>.lock`` keeps a second gateway
process from sharing the journal (the kernel drops it when the process dies).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Journal", "JournalCorrupt", "JournalLocked"]


class JournalLocked(RuntimeError):
    """Another live process holds this journal."""


class JournalCorrupt(RuntimeError):
    """A record in the middle of the journal cannot be read; refusing to guess at money."""


@dataclass
class _Segment:
    path: Path
    first_seq: int
    last_seq: int


class Journal:
    """Append records to the active segment; read every segment back in order."""

    def __init__(self, path: Path, *, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._active: _Segment | None = None
        self._active_bytes = 0
        self._sealed: list[_Segment] = []
        self._buffer: list[bytes] = []
        self._buffer_first_seq = 0
        self._buffer_last_seq = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def lock(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._sibling("lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalLocked(f"credit journal {self.path} is in use by another gateway process") from None
        self._lock_fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # -- reading (start-up only) ---------------------------------------------------------------

    def segments(self) -> list[Path]:
        prefix = self.path.name + "."
        found = []
        for entry in self.path.parent.glob(prefix + "*"):
            suffix = entry.name[len(prefix) :]
            if suffix.isdigit():
                found.append((int(suffix), entry))
        return [entry for _, entry in sorted(found)]

    def read(self) -> Iterator[dict[str, Any]]:
        """Every complete record of every segment, oldest first.

        A last line without its newline is a write the process did not finish (only a
        power cut or full disk can do that): skipped. Anything else unreadable stops
        the start-up with :class:`JournalCorrupt`.
        """
        for segment in self.segments():
            data = segment.read_bytes()
            lines = data.split(b"\n")
            torn_tail = lines.pop()  # b"" when the file ends with a newline
            for number, line in enumerate(lines, 1):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise JournalCorrupt(f"{segment.name}: line {number} is not a journal record") from None
                if not isinstance(record, dict) or not isinstance(record.get("s"), int):
                    raise JournalCorrupt(f"{segment.name}: line {number} is not a journal record")
                yield record
            del torn_tail

    def remove_all(self) -> None:
        """Delete every segment and drop the buffer (SQL holds all their records); the next write opens a fresh one."""
        self._buffer.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._active = None
        self._sealed.clear()
        for segment in self.segments():
            segment.unlink()

    # -- writing (hot path) ----------------------------------------------------------------------

    def add(self, seq: int, line: bytes) -> None:
        """Buffer one record (``line`` ends with a newline); it is in the file once :meth:`write` returns."""
        if not self._buffer:
            self._buffer_first_seq = seq
        self._buffer.append(line)
        self._buffer_last_seq = seq

    @property
    def buffered(self) -> bool:
        return bool(self._buffer)

    def write(self) -> None:
        """Write every buffered record with a single system call (a segment never splits a write)."""
        if not self._buffer:
            return
        if self._fd is None or self._active_bytes >= self.segment_bytes:
            self._open_segment(self._buffer_first_seq)
        assert self._fd is not None
        assert self._active is not None
        data = b"".join(self._buffer)
        self._buffer.clear()
        written = os.write(self._fd, data)
        if written != len(data):  # regular files only write short on a full disk
            raise OSError(f"credit journal: short write ({written} of {len(data)} bytes)")
        self._active_bytes += written
        self._active.last_seq = self._buffer_last_seq

    def _open_segment(self, first_seq: int) -> None:
        if self._fd is not None and self._active is not None:
            os.close(self._fd)
            self._sealed.append(self._active)
        segment = _Segment(self._sibling(f"{first_seq:020d}"), first_seq, first_seq - 1)
        self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._active = segment
        self._active_bytes = os.fstat(self._fd).st_size

    def discard_through(self, seq: int) -> None:
        """Delete sealed segments whose records SQL now holds (all sequence numbers <= ``seq``)."""
        while self._sealed and self._sealed[0].last_seq <= seq:
            self._sealed.pop(0).path.unlink(missing_ok=True)

    def _sibling(self, suffix: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{suffix}")
