"""Faults of the docker runtime, named like the supervisor runtime's, acting on containers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pflow_ops.sandbox.docker import engine as engine_mod
from pflow_ops.sandbox.docker import lifecycle
from pflow_ops.sandbox.docker import project as proj
from pflow_ops.sandbox.errors import USAGE, SandboxError
from pflow_ops.sandbox.layout import Layout


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


def _oom(client: Any, layout: Layout) -> str:
    container = _containers(client, "backend")[0]
    (layout.backend_dir / lifecycle.OOM_FLAG).touch()
    container.restart(timeout=3)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        container.reload()
        if not container.attrs["State"]["Running"]:
            break
        time.sleep(0.2)
    oom = container.attrs["State"].get("OOMKilled")
    return f"{container.name} exhausted its {lifecycle.BACKEND_MEMORY} limit (OOMKilled={oom})"


FAULTS: dict[str, Callable[[Any, Layout], str]] = {
    "backend-crash": _stop("backend"),
    "backend-hang": _hang,
    "backend-oom": _oom,
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
    """Thaw frozen containers, start stopped ones (databases first), wait until all are healthy."""
    layout = Layout.for_home(home)
    (layout.backend_dir / lifecycle.OOM_FLAG).unlink(missing_ok=True)
    client = _client(layout)
    done: list[str] = []
    try:
        order = {"postgres": 0, "redis": 1, "backend": 2}
        containers = sorted(
            proj.project_containers(client, proj.PROJECT),
            key=lambda c: order.get(c.labels.get(proj.LABEL_SERVICE, ""), 9),
        )
        for c in containers:
            if c.attrs["State"]["Running"]:
                with contextlib.suppress(Exception):
                    c.kill(signal="SIGCONT")
            else:
                c.start()
                done.append(f"started {c.name}")
            lifecycle.wait_healthy(c, timeout)
    finally:
        client.close()
    return done
