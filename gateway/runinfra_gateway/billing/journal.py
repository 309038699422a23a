"""The credit journal: an append-only file every hold, settle and adjustment is written to first.

Each record is one JSON line, copied into a memory-mapped segment file
(``MAP_SHARED``). Once the copy is done the bytes are in the kernel's page cache,
so a record survives ``kill -9`` of the gateway the instant :meth:`Journal.append`
returns, with no system call and no ``fsync`` on the hot path. (A power cut can
still lose the last pages; that is the price of not syncing per request.) No
system call also means the event loop never gives up the GIL to journal a
record: with a database thread busy beside it, every release could cost the loop
a whole GIL switch interval.

The journal is a series of segment files ``<name>.<first seq>``. A segment's
disk blocks are reserved (``posix_fallocate``) when it is opened, so a full disk
fails that call with ``OSError`` instead of killing the process with ``SIGBUS``
on a page write. A full segment is sealed (truncated to its records) and a new
one opened; sealed segments are deleted once SQL holds all of their records. The
batch writer copies records into SQL; on start, the tail SQL has not seen yet is
replayed. Records with a sequence number at or below the SQL checkpoint are
skipped, so replaying twice changes nothing. An exclusive ``flock`` on
``<name>.lock`` keeps a second gateway process from sharing the journal (the
kernel drops it when the process dies).
"""

from __future__ import annotations

import fcntl
import mmap
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
    """Append records to the mapped active segment; read every segment back in order."""

    def __init__(self, path: Path, *, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._map: mmap.mmap | None = None
        self._active: _Segment | None = None
        self._offset = 0
        self._sealed: list[_Segment] = []

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
        self._seal()
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

        A segment the process died in ends in zeros (reserved, never written): they are
        not records. The last line of the newest segment may be torn (the process died
        while copying it, so its call never returned): skipped when unreadable. Anything
        else unreadable stops the start-up with :class:`JournalCorrupt`.
        """
        segments = self.segments()
        for index, segment in enumerate(segments):
            lines = segment.read_bytes().rstrip(b"\x00").split(b"\n")
            if lines[-1] == b"":
                lines.pop()  # the file ends with a newline
            newest = index == len(segments) - 1
            for number, line in enumerate(lines, 1):
                record = _record(line)
                if record is None:
                    if newest and number == len(lines):
                        break
                    raise JournalCorrupt(f"{segment.name}: line {number} is not a journal record")
                yield record

    def remove_all(self) -> None:
        """Delete every segment (SQL holds all their records); the next append opens a fresh one."""
        self._seal()
        self._sealed.clear()
        for segment in self.segments():
            segment.unlink()

    # -- writing (hot path) ----------------------------------------------------------------------

    def append(self, seq: int, line: bytes) -> None:
        """Copy one record (``line`` ends with a newline) into the journal; it survives kill -9 once this returns.

        Raises ``OSError`` when a new segment cannot be opened (a full disk): the record is not journaled.
        """
        end = self._offset + len(line)
        if self._map is None or end > len(self._map):
            self._open_segment(seq, len(line))
            end = len(line)
        assert self._map is not None
        assert self._active is not None
        self._map[self._offset : end] = line
        self._offset = end
        self._active.last_seq = seq

    def _open_segment(self, first_seq: int, record_bytes: int) -> None:
        self._seal()
        segment = _Segment(self._sibling(f"{first_seq:020d}"), first_seq, first_seq - 1)
        size = max(self.segment_bytes, record_bytes)
        fd = os.open(segment.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
            self._map = mmap.mmap(fd, size)  # MAP_SHARED: the page cache holds every byte copied in
        except BaseException:
            segment.path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)  # the mapping keeps the file open
        self._active = segment
        self._offset = 0

    def _seal(self) -> None:
        """Unmap the active segment and cut it to its records (a segment with none is removed)."""
        if self._map is None or self._active is None:
            return
        self._map.close()
        self._map = None
        segment, self._active = self._active, None
        if self._offset == 0:
            segment.path.unlink(missing_ok=True)
            return
        os.truncate(segment.path, self._offset)
        self._sealed.append(segment)

    def discard_through(self, seq: int) -> None:
        """Delete sealed segments whose records SQL now holds (all sequence numbers <= ``seq``)."""
        while self._sealed and self._sealed[0].last_seq <= seq:
            self._sealed.pop(0).path.unlink(missing_ok=True)

    def _sibling(self, suffix: str) -> Path:
        return self.path.with_name(f"{self.path.name}.{suffix}")


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("s"), int):
        return None
    return record
