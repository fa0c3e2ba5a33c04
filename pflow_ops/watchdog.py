"""The wrapper ansible-runner starts instead of ansible-playbook: it ties the playbook's life to
the ``pflow-ops`` process that launched it.

ansible-runner spawns through pexpect, which closes every inherited descriptor and offers no
``preexec_fn``, so neither the run lock nor a parent-death signal can be handed over directly.
This wrapper sits on the runner's command line (``python -m pflow_ops.watchdog --parent PID
--hold LOCKFILE -- ansible-playbook ...``) and:

* takes the run's *hold* lock (``<env>-<service>.lock.hold``) before the playbook starts and passes
  the descriptor to ansible-playbook, so the lock is held while any process of the run lives
  (flock locks follow the open file description: every forked worker holds it too);
* asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and also polls
  the parent's pid, and when the CLI is gone it stops the whole run (its process group: pexpect
  made this wrapper a session leader): SIGTERM, then SIGKILL after a grace period.

Written here because no maintained library does "stop my child when my parent dies" for a
process we do not spawn ourselves.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import psutil

PR_SET_PDEATHSIG = 1
GRACE_S = 3.0
POLL_S = 0.2


def _parent_death_signal(signum: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pid poll below still catches it
        pass


def _hold(path: str, run_id: str) -> int:
    """The hold lock, inheritable by the playbook; refuses (exit 3) when another run's
    processes still hold it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"pflow-ops: refused: processes of another run still hold {path}", file=sys.stderr)
        sys.exit(3)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"run_id": run_id, "pid": os.getpid()}).encode())
    os.set_inheritable(fd, True)
    return fd


def _descendants(root: int) -> set[int]:
    """Every live process below ``root`` (ansible's workers start their own sessions, so the
    process group alone does not reach them)."""
    try:
        return {child.pid for child in psutil.Process(root).children(recursive=True)}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return set()


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def _stop_run() -> None:
    """Stop every process of this run, this wrapper last: SIGTERM, then SIGKILL."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tree = _descendants(os.getpid())
    _signal_all(tree, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in tree):
        tree |= _descendants(os.getpid())
        time.sleep(0.1)
    _signal_all(tree | _descendants(os.getpid()), signal.SIGKILL)
    os.killpg(0, signal.SIGKILL)


def _parse(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    args = list(argv)
    split = args.index("--")
    return dict(zip(args[:split:2], args[1:split:2], strict=True)), args[split + 1 :]


def _remove(path: str) -> None:
    """The run's secrets file: read by ansible-playbook at start, never left behind."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def children() -> list[int]:
    """This process's watchdog children (one per run)."""
    found = []
    for child in psutil.Process().children():
        try:
            if any("watchdog.py" in part for part in child.cmdline()):
                found.append(child.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class Cancel:  # used by the launcher (pflow_ops.runner), not by the wrapper
    """SIGINT/SIGTERM: the watchdog stops the playbook's whole process tree (ansible's workers
    run in their own sessions, out of reach of runner's kill of the process group); runner is
    told to cancel once the watchdog is gone or its grace period is over."""

    GRACE_S = 6.0

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._since: float | None = None

    def __call__(self) -> bool:
        if not self.requested.is_set():
            return False
        if self._since is None:
            self._since = time.monotonic()
            for pid in children():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        return not children() or time.monotonic() - self._since > self.GRACE_S


def main(argv: Sequence[str] | None = None) -> int:
    opts, command = _parse(sys.argv[1:] if argv is None else argv)
    try:
        return _watch(int(opts["--parent"]), opts.get("--hold", ""), opts, command)
    finally:
        _remove(opts.get("--remove", ""))


def _watch(parent: int, hold: str, opts: dict[str, str], command: list[str]) -> int:
    orphaned = False

    def _on_term(signum: int, frame: object) -> None:
        nonlocal orphaned
        orphaned = True

    signal.signal(signal.SIGTERM, _on_term)
    _parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the CLI died before we got here
        return 1
    fds = (_hold(hold, opts.get("--run-id", "?")),) if hold else ()
    child = subprocess.Popen(command, pass_fds=fds)
    while True:
        try:
            return child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if orphaned or os.getppid() != parent:
            _remove(opts.get("--remove", ""))
            _stop_run()


if __name__ == "__main__":
    sys.exit(main())
