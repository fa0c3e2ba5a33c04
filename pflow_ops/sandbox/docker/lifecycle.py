"""`sandbox up/status/down --runtime docker`: the same PostgreSQL, Redis and backend as the
supervisor runtime (same data directories, ports, passwords and bootstrap), each run as a
container of the Compose project ``pivotal-flow`` on a Docker engine."""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

from pflow_ops.sandbox import postgres, render, tools
from pflow_ops.sandbox.docker import engine as engine_mod
from pflow_ops.sandbox.docker import project as proj
from pflow_ops.sandbox.docker.image import ensure_image
from pflow_ops.sandbox.errors import SandboxError
from pflow_ops.sandbox.layout import (
    HOST,
    PRIVILEGED_PG_BASE,
    Layout,
    SandboxPorts,
    SandboxState,
    load_state,
    read_json,
    write_private_json,
)
from pflow_ops.sandbox.net import check_ports_free, wait_for

RUNTIME_FILE = "runtime.json"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
OOM_FLAG = "oom-next-start"
BACKEND_MEMORY = "256m"


def runtime_file(layout: Layout) -> Path:
    return layout.root / RUNTIME_FILE


def read_runtime(layout: Layout) -> dict[str, Any] | None:
    """What `up --runtime docker` recorded; None for a supervisor (or no) sandbox."""
    data = read_json(runtime_file(layout))
    return data if data and data.get("runtime") == "docker" else None


def private_engine(layout: Layout) -> engine_mod.Engine:
    root = layout.root / "docker"
    if len(str(root / "d.sock")) > engine_mod.UNIX_SOCKET_MAX:
        digest = hashlib.sha256(str(layout.root).encode()).hexdigest()[:12]
        root = Path("/tmp") / f"pfo-docker-{digest}"
    return engine_mod.Engine(root)


def _choose_engine(layout: Layout, docker_host: str | None) -> tuple[str, bool]:
    """(base_url, private): an explicit host, a reachable default one, else our own dockerd."""
    if docker_host:
        if not engine_mod.ping(docker_host):
            raise SandboxError(f"no Docker engine answers at {docker_host}")
        return docker_host, False
    if engine_mod.ping(DEFAULT_DOCKER_HOST):
        return DEFAULT_DOCKER_HOST, False
    eng = private_engine(layout)
    eng.start()
    return eng.base_url, True


def specs(layout: Layout, state: SandboxState, programs: render.Programs) -> list[proj.ServiceSpec]:
    """postgres, redis, backend, in start order."""
    mounts = proj.host_runtime_mounts()
    ports = state.ports
    pg_bin = Path(state.pg_bin_dir)
    python = str(Path(sys.executable))
    backend_argv = render.node_backend_argv(programs.node, programs.server_js, state)
    probe = (
        f"import urllib.request as u; u.urlopen('http://{HOST}:{ports.backend}/health', timeout=2)"
    )
    return [
        proj.ServiceSpec(
            service="postgres",
            command=[str(pg_bin / "postgres"), "-D", str(layout.pg_data)],
            # Numeric: the engine resolves names in the image, whose /etc/passwd knows only root.
            user="{}:{}".format(*tools.uid_gid(state.service_user)) if state.service_user else "",
            read_only=mounts,
            writable=(str(layout.pg_parent),),
            stop_signal="SIGINT",  # fast shutdown; SIGTERM would wait for the backend's pool
            healthcheck=[str(pg_bin / "pg_isready"), "-q", "-h", HOST, "-p", str(ports.postgres)],
        ),
        proj.ServiceSpec(
            service="redis",
            command=[str(programs.redis_server), str(layout.redis_conf)],
            read_only=mounts,
            writable=(str(layout.redis_dir),),
            healthcheck=["redis-cli", "-h", HOST, "-p", str(ports.redis), "ping"],
        ),
        proj.ServiceSpec(
            service="backend",
            command=backend_argv,
            environment={
                render.BACKEND_DSN_ENV: render.pg_dsn(
                    state, render.PG_APP_USER, state.app_password
                ),
                "PFLOW_SANDBOX_OOM_FLAG": str(layout.backend_dir / OOM_FLAG),
            },
            read_only=proj.with_mount(mounts, programs.server_js.parent),
            writable=(str(layout.backend_dir),),
            # Where a --report-on-fatalerror report and the fault file land, as under supervisord.
            working_dir=str(layout.backend_dir),
            healthcheck=[python, "-c", probe],
            mem_limit=BACKEND_MEMORY,
        ),
    ]


def wait_healthy(container: Any, timeout: float) -> None:
    def probe() -> bool | None:
        container.reload()
        st = container.attrs["State"]
        if not st.get("Running"):
            tail = container.logs(tail=1).decode(errors="replace").strip()
            raise SandboxError(
                f"container {container.name} exited ({st.get('ExitCode')}): {tail or 'no output'}"
            )
        return True if st.get("Health", {}).get("Status") == "healthy" else None

    wait_for(probe, timeout, f"container {container.name} to be healthy", interval=0.2)


def _start_containers(client: Any, layout: Layout, state: SandboxState, deadline: float) -> None:
    from pflow_ops.sandbox import lifecycle

    pg, redis_spec, backend = specs(layout, state, lifecycle._locate())
    wait_healthy(proj.run_service(client, proj.PROJECT, pg), _left(deadline))
    postgres.bootstrap(state)
    wait_healthy(proj.run_service(client, proj.PROJECT, redis_spec), _left(deadline))
    wait_healthy(proj.run_service(client, proj.PROJECT, backend), _left(deadline))


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.1)


def endpoints(layout: Layout, state: SandboxState, docker_host: str) -> dict[str, Any]:
    data = render.endpoints(layout, state, tools.venv_bin() / "supervisorctl")
    data["runtime"] = "docker"
    data["supervisor"] = {}
    data["docker"] = {
        "host": docker_host,
        "project": proj.PROJECT,
        "services": {"backend": "backend", "postgres": "postgres", "redis": "redis"},
    }
    data["backend"]["log_file"] = ""
    return data


def up(
    home: Path | None = None,
    ports: SandboxPorts | None = None,
    docker_host: str | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """Start the sandbox as containers (idempotent) and return endpoints.json's contents."""
    from pflow_ops.sandbox import lifecycle

    layout = Layout.for_home(home)
    existing = read_runtime(layout)
    if existing and engine_mod.ping(existing["docker_host"]):
        data = read_json(layout.endpoints_file)
        if data is not None:
            return data
    deadline = time.monotonic() + timeout
    programs = lifecycle._locate()
    state = lifecycle._prepare_state(layout, load_state(layout), ports, programs.pg_bin)
    layout.check_socket_paths(state.ports.postgres)
    host, private = _choose_engine(layout, docker_host)
    write_private_json(
        runtime_file(layout), {"runtime": "docker", "docker_host": host, "private": private}
    )
    client = engine_mod.client(host)
    try:
        ensure_image(client)
        proj.remove_project(client, proj.PROJECT)
        check_ports_free(state.ports)
        lifecycle._write_files(layout, state, programs)
        _start_containers(client, layout, state, deadline)
    except BaseException:
        with contextlib.suppress(Exception):
            proj.remove_project(client, proj.PROJECT)
        raise
    finally:
        client.close()
    data = endpoints(layout, state, host)
    write_private_json(layout.endpoints_file, data)
    return data


def status(home: Path | None = None) -> dict[str, Any]:
    layout = Layout.for_home(home)
    runtime = read_runtime(layout) or {}
    result: dict[str, Any] = {
        "running": False,
        "runtime": "docker",
        "sandbox_dir": str(layout.root),
        "programs": {},
        "endpoints": read_json(layout.endpoints_file),
    }
    host = runtime.get("docker_host", "")
    if not host or not engine_mod.ping(host):
        return result
    client = engine_mod.client(host)
    try:
        for c in proj.project_containers(client, proj.PROJECT):
            st = c.attrs["State"]
            result["programs"][c.name] = {
                "state": st.get("Status"),
                "health": st.get("Health", {}).get("Status"),
                "pid": st.get("Pid") or None,
                "started_at": st.get("StartedAt"),
                "oom_killed": st.get("OOMKilled"),
            }
    finally:
        client.close()
    result["running"] = bool(result["programs"])
    pg = (result["endpoints"] or {}).get("postgres", {})
    for key in ("app_password", "monitor_password"):
        if pg.get(key):
            pg[key] = "********"
    return result


def down(home: Path | None = None, purge: bool = False) -> None:
    """Remove the project's containers; stop a private engine; with purge delete all data."""
    import shutil

    layout = Layout.for_home(home)
    runtime = read_runtime(layout)
    if runtime is not None:
        if engine_mod.ping(runtime["docker_host"]):
            client = engine_mod.client(runtime["docker_host"])
            try:
                proj.remove_project(client, proj.PROJECT)
            finally:
                client.close()
        if runtime.get("private"):
            eng = private_engine(layout)
            eng.stop()
            if purge:
                eng.purge()
        runtime_file(layout).unlink(missing_ok=True)
    layout.endpoints_file.unlink(missing_ok=True)
    if purge:
        if layout.privileged and layout.pg_parent.parent == PRIVILEGED_PG_BASE:
            shutil.rmtree(layout.pg_parent, ignore_errors=True)
        shutil.rmtree(layout.root, ignore_errors=True)
