"""Process bookkeeping: identity (pid + start time), trees, and termination, read through psutil
(issue 17: no /proc parsing of our own)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import psutil

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)
T = TypeVar("T")


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except (*_GONE, ValueError):
        return None


def _read(pid: int, read: Callable[[psutil.Process], T], gone: T) -> T:
    """``read(process)``, or ``gone`` when the pid is gone or not ours to read."""
    proc = _process(pid)
    if proc is None:
        return gone
    try:
        return read(proc)
    except (*_GONE, OSError):
        return gone


def start_time(pid: int) -> int | None:
    """Start time in hundredths of a second since the epoch, or None when the pid is gone."""
    return _read(pid, lambda proc: round(proc.create_time() * 100), None)


def _status(pid: int) -> str | None:
    return _read(pid, lambda proc: str(proc.status()), None)


def is_stopped(pid: int) -> bool:
    """Stopped by a signal (SIGSTOP, or a tracer)."""
    return _status(pid) in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)


def parent_pid(pid: int) -> int | None:
    return _read(pid, lambda proc: int(proc.ppid()), None)


def cmdline(pid: int) -> str:
    return _read(pid, lambda proc: " ".join(proc.cmdline()).strip(), "")


def cwd(pid: int) -> str:
    """The working directory of ``pid`` ("" when it is gone or not ours to read)."""
    return _read(pid, lambda proc: str(proc.cwd()), "")


def is_alive(pid: int) -> bool:
    """True for a live process; zombies count as gone (they hold no resources but a pid)."""
    status = _status(pid)
    return status is not None and status not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def identity(pid: int) -> list[int] | None:
    started = start_time(pid)
    return [pid, started] if started is not None else None


def same_process(ident: list[int]) -> bool:
    """Whether the recorded [pid, start time] still names the same live process."""
    if len(ident) != 2:
        return False
    return is_alive(ident[0]) and start_time(ident[0]) == ident[1]


def all_pids() -> list[int]:
    return list(psutil.pids())


def descendants(roots: Iterable[int]) -> set[int]:
    """Every live process below ``roots`` (the roots themselves included)."""
    found: set[int] = set()
    for pid in roots:
        proc = _process(pid)
        if proc is None or not is_alive(pid):
            continue
        found.add(pid)
        try:
            found.update(child.pid for child in proc.children(recursive=True))
        except _GONE:
            continue
    return found


def mentioning(needles: Iterable[str]) -> set[int]:
    """Live processes whose command line contains any of ``needles`` (never this process)."""
    wanted = [n for n in needles if n]
    me = os.getpid()
    return {
        pid
        for pid in all_pids()
        if pid != me and is_alive(pid) and any(n in cmdline(pid) for n in wanted)
    }


def send(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until none of ``pids`` is alive; return the ones still alive at the deadline."""
    remaining = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        remaining = {pid for pid in remaining if is_alive(pid)}
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.05)


def terminate(pids: Iterable[int], grace: float = 3.0) -> set[int]:
    """SIGTERM (and SIGCONT, for stopped ones), then SIGKILL what outlives ``grace``."""
    targets = {pid for pid in pids if is_alive(pid)}
    for pid in targets:
        send(pid, signal.SIGTERM)
        send(pid, signal.SIGCONT)
    left = wait_gone(targets, grace)
    for pid in left:
        send(pid, signal.SIGKILL)
    return wait_gone(left, 2.0)
