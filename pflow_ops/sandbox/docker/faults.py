"""Faults of the docker runtime, named like the supervisor runtime's, acting on containers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pflow_ops.sandbox import faults as sandbox_faults
from pflow_ops.sandbox import loaders
from pflow_ops.sandbox.docker import engine as engine_mod
from pflow_ops.sandbox.docker import lifecycle
from pflow_ops.sandbox.docker import project as proj
from pflow_ops.sandbox.errors import USAGE, SandboxError
from pflow_ops.sandbox.faults import FAULT_FILE
from pflow_ops.sandbox.layout import Layout

BLOCKING_FAULTS = {"eventloop-block": "event loop blocked", "heap-high": "heap held near its limit"}
"""Node.js faults after which the container runs on in the fault (no answer, or its heap held
near the limit), with heal's words: heal restarts it."""


def _containers(client: Any, service: str) -> list[Any]:
    found = proj.project_containers(client, proj.PROJECT, service)
    if not found:
        raise SandboxError(f"no {service} container in project {proj.PROJECT}")
    return found


def _stop(service: str) -> Callable[[Any, Layout], str]:
    def fault(client: Any, layout: Layout) -> str:
        for c in _containers(client, service):
            c.stop(timeout=5)
        return f"{service} containers stopped"

    return fault


def _hang(client: Any, layout: Layout) -> str:
    for c in _containers(client, "backend"):
        c.kill(signal="SIGSTOP")
    return "backend containers frozen (SIGSTOP): running, but /health does not answer"


def _wait_exited(container: Any, timeout: float = 60) -> dict[str, Any]:
    """The container's State once it stopped running (or when ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if not container.attrs["State"]["Running"]:
            break
        time.sleep(0.2)
    state: dict[str, Any] = container.attrs["State"]
    return state


def _oom(client: Any, layout: Layout) -> str:
    container = _containers(client, "backend")[0]
    (layout.backend_dir / lifecycle.OOM_FLAG).touch()
    container.restart(timeout=3)
    oom = _wait_exited(container).get("OOMKilled")
    return f"{container.name} exhausted its {lifecycle.BACKEND_MEMORY} limit (OOMKilled={oom})"


def _node_fault(word: str, exits: bool) -> Callable[[Any, Layout], str]:
    """The supervisor runtime's Node.js faults, in the container: the fault's word goes into the
    backend's working directory (the writable mount), then SIGHUP makes the process run it."""

    def fault(client: Any, layout: Layout) -> str:
        container = _containers(client, "backend")[0]
        (layout.backend_dir / FAULT_FILE).write_text(word + "\n", encoding="utf-8")
        container.kill(signal="SIGHUP")
        if not exits:
            return f"{container.name}: {word} started (running, its port accepts, nothing answers)"
        state = _wait_exited(container)
        if state["Running"]:
            raise SandboxError(f"{container.name} was still running 60 s after {word}")
        return f"{container.name}: {word}; it exited ({state.get('ExitCode')})"

    return fault


def _db_slow(client: Any, layout: Layout) -> str:
    _containers(client, "postgres")
    return sandbox_faults.start_db_slow(layout)


def _blocked(layout: Layout) -> str:
    """The Node.js fault that leaves the process running in it, if one was injected ("" if not)."""
    path = layout.backend_dir / FAULT_FILE
    word = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    return word if word in BLOCKING_FAULTS else ""


FAULTS: dict[str, Callable[[Any, Layout], str]] = {
    "backend-crash": _stop("backend"),
    "backend-hang": _hang,
    "backend-oom": _oom,
    "backend-eventloop-block": _node_fault("eventloop-block", exits=False),
    "backend-heap-leak": _node_fault("heap-leak", exits=True),
    "backend-heap-high": _node_fault("heap-high", exits=False),
    "backend-unhandled-rejection": _node_fault("unhandled-rejection", exits=True),
    "backend-db-slow": _db_slow,
    "db-down": _stop("postgres"),
    "redis-down": _stop("redis"),
}


def _client(layout: Layout) -> Any:
    runtime = lifecycle.read_runtime(layout)
    if runtime is None or not engine_mod.ping(runtime["docker_host"]):
        raise SandboxError("the docker sandbox is not up; run `pflow-ops sandbox up` first")
    return engine_mod.client(runtime["docker_host"])


def break_fault(name: str, home: Path | None = None) -> str:
    if name not in FAULTS:
        raise SandboxError(
            f"unknown fault '{name}' for the docker runtime: choose one of {', '.join(FAULTS)}",
            USAGE,
        )
    layout = Layout.for_home(home)
    client = _client(layout)
    try:
        return FAULTS[name](client, layout)
    finally:
        client.close()


def heal(home: Path | None = None, timeout: float = 60) -> list[str]:
    """Thaw frozen containers, restart a backend whose event loop a fault blocked, start stopped
    ones (databases first), wait until all are healthy."""
    layout = Layout.for_home(home)
    (layout.backend_dir / lifecycle.OOM_FLAG).unlink(missing_ok=True)
    blocked = _blocked(layout)
    (layout.backend_dir / FAULT_FILE).unlink(missing_ok=True)
    client = _client(layout)
    done: list[str] = loaders.stop(layout)  # backend-db-slow's lock helper; its lock ends with it
    try:
        order = {"postgres": 0, "redis": 1, "backend": 2}
        containers = sorted(
            proj.project_containers(client, proj.PROJECT),
            key=lambda c: order.get(c.labels.get(proj.LABEL_SERVICE, ""), 9),
        )
        for c in containers:
            service = c.labels.get(proj.LABEL_SERVICE, "")
            if c.attrs["State"]["Running"] and blocked and service == "backend":
                c.restart(timeout=3)  # a blocked loop never runs its SIGTERM handler
                done.append(f"restarted {c.name} ({BLOCKING_FAULTS[blocked]})")
            elif c.attrs["State"]["Running"]:
                with contextlib.suppress(Exception):
                    c.kill(signal="SIGCONT")
            else:
                c.start()
                done.append(f"started {c.name}")
            lifecycle.wait_healthy(c, timeout)
    finally:
        client.close()
    return done
