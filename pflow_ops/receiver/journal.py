"""The receiver's journal: an append-only JSON-lines file, fsync'd on every append.

It is both the audit log (every alert received, every decision, every run) and the durable
queue: the receiver rebuilds its queue by replaying it at start (``policy.replay``). One writer
at a time (the receiver holds ``<dir>/receiver.lock``); lines are written with a single
``write`` on an ``O_APPEND`` descriptor, and a line cut short by a crash is skipped on replay.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JournalBusy(RuntimeError):
    """Another receiver already serves this environment from this state directory."""


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "journal.jsonl"
        self.skipped = 0  # unreadable lines met by the last read()
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()

    def open(self) -> None:
        """Take the single-writer lock and open the file for appending."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(self.directory / "receiver.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise JournalBusy(
                f"another receiver is already using {self.directory}: stop it first"
            ) from None
        self._lock_fd = lock_fd
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if created:
            _fsync_dir(self.directory)
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A crash mid-write leaves a last line without its newline: close it off so the next
        record starts on a line of its own (replay skips the torn one)."""
        size = self.path.stat().st_size
        if size == 0:
            return
        with self.path.open("rb") as fh:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                self._write(b"\n")

    def append(self, *records: dict[str, Any]) -> None:
        """Write ``records`` (one line each) and fsync before returning."""
        if not records:
            return
        now = round(time.time(), 3)
        lines = [
            json.dumps({"ts": now, **rec}, separators=(",", ":"), ensure_ascii=True) + "\n"
            for rec in records
        ]
        self._write("".join(lines).encode("ascii"))

    def _write(self, data: bytes) -> None:
        with self._mutex:
            if self._fd is None:
                # OSError, so a request that races the shutdown gets a 503 (and is retried).
                raise OSError("the journal is closed")
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def read(self) -> Iterator[dict[str, Any]]:
        """Every intact record, in order; torn or corrupt lines are counted and skipped."""
        self.skipped = 0
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    self.skipped += 1
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    self.skipped += 1
                    continue
                if isinstance(record, dict) and isinstance(record.get("event"), str):
                    yield record
                else:
                    self.skipped += 1

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
