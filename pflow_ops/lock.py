"""One recovery per environment and service at a time.

An exclusive ``flock`` on ``$PFLOW_OPS_HOME/locks/<env>-<service>.lock``: the kernel releases
it when the holder exits, however it exits (SIGKILL included), so a killed run never leaves a
stale lock behind. The file records who holds it, for the refusal message only.

The CLI's lock ends with the CLI, but a run is more than the CLI: ansible-playbook and its workers
hold a second lock, ``<env>-<service>.lock.hold``, taken by :mod:`pflow_ops.watchdog` and
inherited by every process of the playbook. A new run needs both free, so a run whose CLI was
killed keeps the service locked until its last process is gone.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from pflow_ops.errors import RefusedError
from pflow_ops.paths import locks_dir

log = logging.getLogger(__name__)


class LockHeld(RefusedError):
    """Another run holds the lock: the command is refused (exit 3)."""


class RunLock:
    def __init__(self, env: str, service: str, run_id: str, directory: Path | None = None):
        self.path = (directory or locks_dir()) / f"{env}-{service}.lock"
        self.hold_path = self.path.with_name(self.path.name + ".hold")
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise LockHeld(
                f"another recovery is running for {self.path.stem} ({holder}); "
                "wait for it to finish or check `pflow-ops history`"
            ) from None
        try:
            self._check_hold()
        except LockHeld:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        record = {"run_id": self.run_id, "pid": os.getpid(), "since": time.time()}
        os.write(fd, json.dumps(record).encode())
        self._fd = fd
        log.info("run lock taken: %s (run %s)", self.path, self.run_id)

    def _check_hold(self) -> None:
        """Refused while any process of an earlier run (its CLI dead or not) still lives."""
        fd = os.open(self.hold_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            raise LockHeld(
                f"processes of an earlier run still act on {self.path.stem} ({holder}); "
                "wait for them to end or check `pflow-ops history`"
            ) from None
        finally:
            os.close(fd)  # closing drops our flock: the watchdog takes it for the new run

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"run {data.get('run_id', '?')}, pid {data.get('pid', '?')}"
        except (OSError, ValueError):
            return "holder unknown"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            log.debug("run lock released: %s", self.path)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
