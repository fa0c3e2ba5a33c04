"""Finding and ending every process a sandbox started, even when supervisord is gone."""

from __future__ import annotations

import os
from pathlib import Path

from pflow_ops.sandbox import procs
from pflow_ops.sandbox.layout import Layout, SandboxState

BACKEND_SCRIPT = "node_backend/server.js"


def _postmaster_pid(layout: Layout) -> int | None:
    try:
        first = (layout.pg_data / "postmaster.pid").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.strip().isdigit() else None


def _matches(layout: Layout, pid: int) -> bool:
    """Whether ``pid`` is one of ours: by the config/data path on its command line, or by its
    working directory (postgres children and redis retitle themselves; the backend's command
    line names no path)."""
    cmd = procs.cmdline(pid)
    signatures = [
        ("supervisord", layout.supervisord_conf),
        ("redis-server", layout.redis_conf),
        ("postgres", layout.pg_data),
    ]
    # Both the program and our path: `less supervisord.conf` in a shell is not ours to kill.
    if any(prog in cmd and str(path) in cmd for prog, path in signatures):
        return True
    by_cwd = [
        ("postgres", layout.pg_data),
        ("redis-server", layout.redis_dir),  # redis retitles itself to "redis-server host:port"
        (BACKEND_SCRIPT, layout.backend_dir),
    ]
    cwd = procs.cwd(pid)
    return any(cwd == str(path) and prog in cmd for prog, path in by_cwd)


def owned_processes(layout: Layout, state: SandboxState | None) -> set[int]:
    """Live processes of this sandbox, with all their descendants."""
    me = os.getpid()
    roots = {pid for pid in procs.all_pids() if pid != me and _matches(layout, pid)}
    if state is not None:
        roots |= {ident[0] for ident in state.pids.values() if procs.same_process(ident)}
    postmaster = _postmaster_pid(layout)
    if postmaster and str(layout.pg_data) in procs.cmdline(postmaster):
        roots.add(postmaster)
    roots.discard(me)
    return procs.descendants(roots) - {me}


def reap(layout: Layout, state: SandboxState | None, grace: float = 3.0) -> set[int]:
    """Terminate every process of the sandbox; return the pids that survived even SIGKILL."""
    targets = owned_processes(layout, state)
    if not targets:
        return set()
    procs.terminate(targets, grace)
    return owned_processes(layout, state)


def remove_runtime_files(layout: Layout) -> None:
    for path in (layout.supervisor_socket, layout.supervisord_pidfile):
        Path(path).unlink(missing_ok=True)
