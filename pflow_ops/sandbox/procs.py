"""Process bookkeeping through /proc: identity (pid + start time), trees, and termination."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # comm (field 2) is parenthesised and may contain spaces: split after the last ')'.
    head, _, tail = raw.rpartition(")")
    if not head:
        return None
    return tail.split()


def start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot (stat field 22), or None when the pid is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def proc_state(pid: int) -> str | None:
    """The one-letter scheduler state (R, S, T for stopped, Z for zombie, ...)."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields and len(fields) > 1 else None


def cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def cwd(pid: int) -> str:
    """The working directory of ``pid`` ("" when it is gone or not ours to read)."""
    try:
        return os.readlink(PROC / str(pid) / "cwd")
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    """True for a live process; zombies count as gone (they hold no resources but a pid)."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def identity(pid: int) -> list[int] | None:
    started = start_time(pid)
    return [pid, started] if started is not None else None


def same_process(ident: list[int]) -> bool:
    """Whether the recorded [pid, start time] still names the same live process."""
    if len(ident) != 2:
        return False
    return is_alive(ident[0]) and start_time(ident[0]) == ident[1]


def all_pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def descendants(roots: Iterable[int]) -> set[int]:
    """Every live process below ``roots`` (the roots themselves included)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        ppid = parent_pid(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [pid for pid in roots if is_alive(pid)]
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, []))
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
