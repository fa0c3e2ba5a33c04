"""The sandbox as a Compose project: one container per service replica, labelled exactly as
Compose (v1 or v2) labels its containers, so the ``compose`` service manager finds them the same
way it finds a production deployment's."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pflow_ops.sandbox.docker.image import IMAGE

PROJECT = "pivotal-flow"
COMPOSE_VERSION = "1.29.2"
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_HASH = "com.docker.compose.config-hash"
LABEL_VERSION = "com.docker.compose.version"
NANO = 1_000_000_000


@dataclass(frozen=True)
class ServiceSpec:
    """What Compose would read from one service of docker-compose.yml."""

    service: str
    command: list[str]
    user: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    read_only: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    healthcheck: list[str] | None = None
    mem_limit: str = ""
    stop_signal: str = "SIGTERM"
    working_dir: str = "/tmp"

    def config_hash(self) -> str:
        data = json.dumps(self.__dict__, sort_keys=True, default=list)
        return hashlib.sha256(data.encode()).hexdigest()


def host_runtime_mounts() -> tuple[str, ...]:
    """Host paths a container needs to run the host's binaries and this checkout's Python."""
    checkout = str(Path(__file__).resolve().parents[3])
    paths = ["/usr", "/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/etc/ssl", checkout]
    paths += [sys.prefix, sys.base_prefix]
    out: list[str] = []
    for path in paths:
        if Path(path).exists() and not any(path == p or path.startswith(p + "/") for p in out):
            out.append(path)
    return tuple(out)


def with_mount(mounts: tuple[str, ...], path: Path) -> tuple[str, ...]:
    """``mounts`` and ``path``, unless one of them already holds it (a wheel's per-user Node.js
    backend lives outside the checkout and the venv)."""
    text = str(path)
    if any(text == m or text.startswith(m + "/") for m in mounts):
        return mounts
    return (*mounts, text)


def container_name(project: str, service: str, number: int) -> str:
    return f"{project}-{service}-{number}"


def labels(project: str, spec: ServiceSpec, number: int) -> dict[str, str]:
    return {
        LABEL_PROJECT: project,
        LABEL_SERVICE: spec.service,
        LABEL_NUMBER: str(number),
        LABEL_ONEOFF: "False",
        LABEL_HASH: spec.config_hash(),
        LABEL_VERSION: COMPOSE_VERSION,
    }


def _healthcheck(test: list[str] | None) -> dict[str, Any] | None:
    if test is None:
        return None
    # Short interval: the manager's rolling restart waits for "healthy" replica by replica.
    return {
        "test": ["CMD", *test],
        "interval": 1 * NANO,
        "timeout": 2 * NANO,
        "retries": 2,
        "start_period": 0,
    }


def run_service(client: Any, project: str, spec: ServiceSpec, number: int = 1) -> Any:
    """Create and start one replica (replacing a container of the same name)."""
    import docker.errors

    name = container_name(project, spec.service, number)
    try:
        old = client.containers.get(name)
        old.remove(force=True)
    except docker.errors.NotFound:
        pass
    volumes = {p: {"bind": p, "mode": "ro"} for p in spec.read_only}
    volumes.update({p: {"bind": p, "mode": "rw"} for p in spec.writable})
    options: dict[str, Any] = {}
    if spec.mem_limit:
        options.update(mem_limit=spec.mem_limit, memswap_limit=spec.mem_limit)
    return client.containers.run(
        IMAGE,
        spec.command,
        name=name,
        detach=True,
        labels=labels(project, spec, number),
        environment=spec.environment,
        user=spec.user or None,
        volumes=volumes,
        network_mode="host",
        # Like the supervisor sandbox: a stopped service stays down until someone acts.
        restart_policy={"Name": "no"},
        healthcheck=_healthcheck(spec.healthcheck),
        stop_signal=spec.stop_signal,
        working_dir=spec.working_dir,
        **options,
    )


def project_containers(client: Any, project: str, service: str | None = None) -> list[Any]:
    """The project's containers (all states), in service then replica-number order."""
    wanted = [f"{LABEL_PROJECT}={project}"]
    if service:
        wanted.append(f"{LABEL_SERVICE}={service}")
    found = client.containers.list(all=True, filters={"label": wanted})
    return sorted(
        found,
        key=lambda c: (c.labels.get(LABEL_SERVICE, ""), int(c.labels.get(LABEL_NUMBER) or 0)),
    )


def remove_project(client: Any, project: str) -> int:
    containers = project_containers(client, project)
    for container in containers:
        container.remove(force=True)
    return len(containers)
