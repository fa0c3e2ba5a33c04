"""The receiver's journal: an append-only JSON-lines file, fsync'd on every append.

It is both the audit log (every alert received, every decision, every run) and the durable
queue: the receiver rebuilds its queue by replaying it at start (``policy.replay``). One writer
at a time (the receiver holds ``<dir>/receiver.lock``); lines are written with a single
``write`` on an ``O_APPEND`` descriptor, and a line cut short by a crash is skipped on replay.

Bounded by compaction (:meth:`Journal.compact`): the live file is replaced by a few records
that rebuild the same state, and the old content is kept, gzipped, in the newest
:data:`ARCHIVES` ``journal-<UTC time>.jsonl.gz`` archives next to it. A crash at any point of a
compaction leaves the old live file or the new one, never neither: the new file is written and
fsync'd under a temporary name, the archive is a compressed copy (the live file is never moved
away), and only ``rename(temp, live)`` switches from one to the other.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ARCHIVES = 5  # compaction archives kept by default; the oldest go first
ARCHIVE_GLOB = "journal-*.jsonl.gz"
# Speed over ratio: the compaction runs under the receiver's lock (webhooks wait for it), and
# JSON lines still shrink more than tenfold at level 1 (bench/receiver_journal.py).
_GZIP_LEVEL = 1


class JournalBusy(RuntimeError):
    """Another receiver already serves this environment from this state directory."""


class Journal:
    def __init__(self, directory: Path, archives: int = ARCHIVES) -> None:
        if archives < 0:
            raise ValueError("archives must not be negative")
        self.directory = directory
        self.path = directory / "journal.jsonl"
        self.archives = archives
        self.skipped = 0  # unreadable lines met by the last read()
        self.compacted_bytes = 0  # size of the live file right after the last compaction
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
        self._remove_temporaries()
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

    def _remove_temporaries(self) -> None:
        """What a compaction cut short by a crash left behind: never the live file."""
        for leftover in (self._temp_path, *self.directory.glob(ARCHIVE_GLOB + ".tmp")):
            leftover.unlink(missing_ok=True)

    @property
    def _temp_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.tmp")

    def append(self, *records: dict[str, Any]) -> None:
        """Write ``records`` (one line each) and fsync before returning."""
        if not records:
            return
        self._write(_encode(records))

    def size_bytes(self) -> int:
        """The live file's size (the ``journal_bytes`` gauge, the compaction trigger)."""
        with self._mutex:
            if self._fd is not None:
                return os.fstat(self._fd).st_size
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def archive_paths(self) -> list[Path]:
        """The compaction archives, oldest first (their names sort by time)."""
        return sorted(self.directory.glob(ARCHIVE_GLOB))

    def compact(self, records: Iterable[dict[str, Any]]) -> Path:
        """Replace the live journal with ``records`` (written as :meth:`append` writes them);
        the old content goes to a gzip archive, of which the newest ``archives`` are kept.

        Appends wait meanwhile. An error (a full disk) before the switch leaves the old live
        file, still the one appended to, and is raised.
        """
        data = _encode(list(records))
        with self._mutex:
            if self._fd is None:
                raise OSError("the journal is closed")
            temp = self._temp_path
            # The new descriptor is opened on the temporary file: after the rename it is the
            # live file's, so no reopen can fail between the switch and the next append.
            fd = os.open(temp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, data)
                os.fsync(fd)
                archive = self._archive_live()
                os.replace(temp, self.path)
            except BaseException:
                os.close(fd)
                temp.unlink(missing_ok=True)
                raise
            os.close(self._fd)
            self._fd = fd
            self.compacted_bytes = len(data)
            _fsync_dir(self.directory)  # makes both renames durable
        self._prune_archives()
        return archive

    def _archive_live(self) -> Path:
        """A gzip copy of the live file, fsync'd under its final name (a rename)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        archive = self.directory / f"journal-{stamp}.jsonl.gz"
        n = 0
        while archive.exists():  # the clock stepped back onto an earlier name
            n += 1
            archive = self.directory / f"journal-{stamp}-{n}.jsonl.gz"
        partial = archive.with_name(archive.name + ".tmp")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as raw, self.path.open("rb") as live:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=_GZIP_LEVEL) as gz:
                    shutil.copyfileobj(live, gz, 1024 * 1024)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, archive)
        finally:
            partial.unlink(missing_ok=True)
        return archive

    def _prune_archives(self) -> None:
        archives = self.archive_paths()
        for old in archives[: max(0, len(archives) - self.archives)]:
            old.unlink(missing_ok=True)

    def _write(self, data: bytes) -> None:
        with self._mutex:
            if self._fd is None:
                # OSError, so a request that races the shutdown gets a 503 (and is retried).
                raise OSError("the journal is closed")
            _write_all(self._fd, data)
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


def _encode(records: Iterable[dict[str, Any]]) -> bytes:
    now = round(time.time(), 3)
    lines = [
        json.dumps({"ts": now, **rec}, separators=(",", ":"), ensure_ascii=True) + "\n"
        for rec in records
    ]
    return "".join(lines).encode("ascii")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
