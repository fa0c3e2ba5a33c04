"""One recovery per environment and service at a time, in the environment's coordination store.

With the ``file`` store (the default) this is an exclusive ``flock`` on
``$PFLOW_OPS_HOME/locks/<env>-<service>.lock``: the kernel releases it when the holder exits,
however it exits (SIGKILL included), so a killed run never leaves a stale lock behind. With the
``etcd`` store (``pflow_coordination_url`` in the inventory) it is a key bound to a lease that a
thread of this process keeps alive: every controller, AWX job and receiver naming that etcd sees
it, and a killed holder frees it within the lease TTL (``pflow_coordination_lock_ttl``, 15 s).
The record names who holds it, for the refusal message only.

The CLI's lock ends with the CLI, but a run is more than the CLI: ansible-playbook and its workers
hold a second lock, ``<env>-<service>.lock.hold``, taken by :mod:`pflow_ops.watchdog` and
inherited by every process of the playbook. A new run needs it free too (with either store: those
processes live on this machine), so a run whose CLI was killed keeps the service locked until its
last process is gone.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from pflow_ops import coordination
from pflow_ops.errors import RefusedError
from pflow_ops.paths import locks_dir

log = logging.getLogger(__name__)


class LockHeld(RefusedError):
    """Another run holds the lock: the command is refused (exit 3)."""


class RunLock:
    def __init__(
        self,
        env: str,
        service: str,
        run_id: str,
        directory: Path | None = None,
        store: coordination.Store | None = None,
        ttl: int = 15,
    ):
        self.env, self.service, self.run_id = env, service, run_id
        self.path = (directory or locks_dir()) / f"{env}-{service}.lock"
        self.hold_path = self.path.with_name(self.path.name + ".hold")
        self._store, self._ttl = store, ttl
        self._lock: coordination.Lock | None = None

    def store(self) -> coordination.Store:
        """The environment's store (read from its inventory once); the file store keeps its
        locks in this lock's directory."""
        if self._store is None:
            self._store, self._ttl = coordination.for_env(self.env, self.path.parent)
        return self._store

    def acquire(self) -> None:
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        try:
            store = self.store()
            lock = store.acquire(self.env, self.service, record, self._ttl)
        except coordination.Held as exc:
            raise LockHeld(str(exc)) from None
        except coordination.CoordinationError as exc:  # unreachable or misconfigured: refused
            raise RefusedError(str(exc)) from None
        if store.name() != coordination.FILE:
            try:  # the file store checks it with its flock; this machine's processes count too
                coordination.check_hold(self.hold_path, f"{self.env}-{self.service}")
            except coordination.CoordinationError as exc:
                lock.release()
                refused = LockHeld if isinstance(exc, coordination.Held) else RefusedError
                raise refused(str(exc)) from None
        self._lock = lock
        log.info("run lock taken: %s %s (run %s)", store.name(), self.path.stem, self.run_id)

    @property
    def lost(self) -> bool:
        """True when an etcd lease could not be kept while this run held it."""
        return bool(self._lock is not None and self._lock.lost)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
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
