"""Fault injection (`sandbox break FAULT`) and its undo (`sandbox heal`)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from pflow_ops.sandbox import db_load, faults_cache, faults_db, loaders, procs
from pflow_ops.sandbox.control import (
    Context,
    record_pids,
    running_context,
    start_program,
    wait_healthy,
)
from pflow_ops.sandbox.errors import USAGE, SandboxError
from pflow_ops.sandbox.layout import Layout
from pflow_ops.sandbox.render import ERROR_RATE, NODE_MAX_OLD_SPACE_MB

FAULT_FILE = "fault"
"""Read by the Node.js backend, from its working directory, when it receives SIGHUP."""

_BACKEND_FAULTS: dict[str, str] = {
    "backend-crash": "SIGKILL the backend; supervisord shows it EXITED and does not restart it",
    "backend-hang": "SIGSTOP the backend; its port accepts TCP connections but nothing answers",
    "backend-errors": (
        f"SIGUSR1 the backend: {ERROR_RATE:.0%} of /api requests answer 500 "
        "while /health still passes"
    ),
    "backend-eventloop-block": (
        "a synchronous loop blocks the Node.js event loop: the process runs (100% CPU) and its "
        "port accepts, but nothing answers"
    ),
    "backend-heap-leak": (
        f"the backend retains memory until V8 aborts (Reached heap limit, --max-old-space-size="
        f"{NODE_MAX_OLD_SPACE_MB}) and writes a diagnostic report; supervisord sees it exit"
    ),
    "backend-heap-high": (
        "the backend holds live heap at 93 % of its old-generation limit and serves on: a leak "
        "caught before V8's abort (BackendHeapNearLimit's line is 90 %)"
    ),
    "backend-unhandled-rejection": (
        "a promise rejects with no handler: the backend logs it with its stack and exits 1"
    ),
    "backend-db-slow": (
        "PostgreSQL is slow, not the backend: a session keeps taking an exclusive lock on items "
        f"for {db_load.SLOW_LOCK_SECONDS:g} s at a time, so /api/items waits on it"
    ),
    "db-down": "stop PostgreSQL through supervisord; /health answers 503 (postgres failing)",
    "redis-down": "stop Redis through supervisord; /health answers 503 (redis failing)",
}


def _until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _crash(ctx: Context) -> str:
    pid = ctx.running_pid("backend")
    procs.send(pid, signal.SIGKILL)
    _until(lambda: ctx.info("backend")["statename"] != "RUNNING")
    statename = ctx.info("backend")["statename"]
    return f"killed backend (pid {pid}) with SIGKILL; supervisord shows it {statename}"


def _hang(ctx: Context) -> str:
    pid = ctx.running_pid("backend")
    procs.send(pid, signal.SIGSTOP)
    if not _until(lambda: procs.is_stopped(pid)):
        raise SandboxError(f"backend (pid {pid}) did not stop after SIGSTOP")
    port = ctx.state.ports.backend
    return f"stopped backend (pid {pid}) with SIGSTOP; port {port} accepts TCP but never answers"


def _errors(ctx: Context) -> str:
    pid = ctx.running_pid("backend")
    procs.send(pid, signal.SIGUSR1)
    return f"sent SIGUSR1 to backend (pid {pid}); {ERROR_RATE:.0%} of /api requests now answer 500"


def _node_fault(word: str, exits: bool) -> Callable[[Context], str]:
    """Write the fault's word into the backend's fault file and SIGHUP it: the hook runs inside
    the process, so the failure is the real one (a blocked loop, V8's abort, a rejection)."""

    def inject(ctx: Context) -> str:
        pid = ctx.running_pid("backend")
        path = ctx.layout.backend_dir / FAULT_FILE
        path.write_text(word + "\n", encoding="utf-8")
        procs.send(pid, signal.SIGHUP)
        if not exits:
            return f"backend (pid {pid}): {word} started"
        if not _until(lambda: ctx.info("backend")["statename"] != "RUNNING", timeout=60):
            raise SandboxError(f"backend (pid {pid}) was still running 60 s after {word}")
        statename = ctx.info("backend")["statename"]
        return f"backend (pid {pid}): {word}; supervisord shows it {statename}"

    return inject


def _db_slow(ctx: Context) -> str:
    ctx.running_pid("postgres")
    return start_db_slow(ctx.layout)


def start_db_slow(layout: Layout) -> str:
    """backend-db-slow's lock helper, on either runtime (it reaches PostgreSQL by the sandbox
    state's port, whether PostgreSQL runs under supervisord or in a container)."""
    db_load.events_file(layout.root, "backend-db-slow").unlink(missing_ok=True)
    argv = loaders.python_module("pflow_ops.sandbox.db_load", "backend-db-slow", str(layout.root))
    pid = loaders.spawn(layout, "backend-db-slow", argv)
    faults_db.wait_helper_event(layout.root, "backend-db-slow", "ready")
    return (
        f"a {db_load.APP_NAMES['backend-db-slow']} session takes an exclusive lock on items for "
        f"{db_load.SLOW_LOCK_SECONDS:g} s at a time (helper pid {pid}): /api/items is slow"
    )


def _stopper(program: str) -> Callable[[Context], str]:
    def stop(ctx: Context) -> str:
        if not ctx.sv.stop(program):
            return f"{program} was already stopped"
        return f"stopped {program} through supervisord; /health now answers 503"

    return stop


_BACKEND_BREAKERS: dict[str, Callable[[Context], str]] = {
    "backend-crash": _crash,
    "backend-hang": _hang,
    "backend-errors": _errors,
    "backend-eventloop-block": _node_fault("eventloop-block", exits=False),
    "backend-heap-leak": _node_fault("heap-leak", exits=True),
    "backend-heap-high": _node_fault("heap-high", exits=False),
    "backend-unhandled-rejection": _node_fault("unhandled-rejection", exits=True),
    "backend-db-slow": _db_slow,
    "db-down": _stopper("postgres"),
    "redis-down": _stopper("redis"),
}

# Each runbook's faults live next to each other: RB-01 here, RB-02 in faults_db, RB-03 in
# faults_cache. Each module also knows how to undo its own faults (heal).
FAULTS: dict[str, str] = {**_BACKEND_FAULTS, **faults_db.FAULTS, **faults_cache.FAULTS}
_BREAKERS: dict[str, Callable[[Context], str]] = {
    **_BACKEND_BREAKERS,
    **faults_db.BREAKERS,
    **faults_cache.BREAKERS,
}


def break_fault(fault: str, home: Path | None = None) -> str:
    """Inject ``fault`` into the running sandbox; return one line saying what was done."""
    breaker = _BREAKERS.get(fault)
    if breaker is None:
        raise SandboxError(f"unknown fault {fault!r}; valid faults: {', '.join(FAULTS)}", USAGE)
    ctx = running_context(home)
    done = breaker(ctx)
    if fault not in ctx.state.faults:
        ctx.state.faults.append(fault)
    record_pids(ctx)
    return done


def _heal_backend_process(ctx: Context) -> list[str]:
    """Resume a stopped backend and turn error mode off (always: it costs nothing)."""
    info = ctx.info("backend")
    if info["statename"] != "RUNNING":
        return []
    pid, actions = int(info["pid"]), []
    (ctx.layout.backend_dir / FAULT_FILE).unlink(missing_ok=True)
    if "backend-eventloop-block" in ctx.state.faults:
        # A blocked event loop never runs the SIGTERM handler: supervisord kills it after its
        # stopwaitsecs. Stopped here, started below with the other programs.
        ctx.sv.stop("backend")
        return [f"stopped backend (pid {pid}): its event loop was blocked"]
    if "backend-heap-high" in ctx.state.faults:
        # The held heap is only given back by a new process.
        ctx.sv.stop("backend")
        return [f"stopped backend (pid {pid}): it held its heap near the limit"]
    if procs.is_stopped(pid):
        procs.send(pid, signal.SIGCONT)
        actions.append(f"resumed backend (pid {pid}) with SIGCONT")
    procs.send(pid, signal.SIGUSR2)
    if "backend-errors" in ctx.state.faults:
        actions.append(f"turned error mode off on backend (pid {pid}) with SIGUSR2")
    return actions


def heal(home: Path | None = None, timeout: float = 30) -> list[str]:
    """Undo every fault, then wait for /health 200. Returns the actions taken (empty: none)."""
    ctx = running_context(home)
    actions = _heal_backend_process(ctx)
    # Dependencies first, so the backend comes back to a working database and cache.
    for program in ("postgres", "redis", "backend"):
        statename = ctx.info(program)["statename"]
        if statename != "RUNNING" and start_program(ctx, program):
            actions.append(f"started {program} (was {statename})")
    # With every program running, the database and cache faults can be undone in SQL / RESP.
    actions += faults_db.heal(ctx)
    actions += faults_cache.heal(ctx)
    actions += loaders.stop(ctx.layout)
    wait_healthy(ctx, timeout)
    ctx.state.faults = []
    record_pids(ctx)
    return actions
