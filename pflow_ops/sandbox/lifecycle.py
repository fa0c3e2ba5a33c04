"""`up`, `status` and `down`: the sandbox's whole life under one supervisord."""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from pflow_ops.sandbox import loaders, node_deps, postgres, procs, reaper, render, tools
from pflow_ops.sandbox.control import (
    Context,
    describe_health,
    health,
    log_tail,
    record_pids,
    start_program,
)
from pflow_ops.sandbox.errors import USAGE, SandboxError
from pflow_ops.sandbox.layout import (
    HOST,
    PRIVILEGED_PG_BASE,
    Layout,
    SandboxPorts,
    SandboxState,
    default_maxmemory,
    default_ports,
    load_state,
    read_json,
    save_state,
    write_private_json,
)
from pflow_ops.sandbox.net import check_ports_free, wait_for
from pflow_ops.sandbox.rpc import Supervisor

if TYPE_CHECKING:
    from pflow_ops.sandbox.monitoring import MonitoringOptions

# The monitoring modules (and PyYAML) are imported only when a sandbox uses them: a plain
# sandbox, on every test's critical path, pays nothing for them.

GIVING_UP = ("FATAL", "EXITED", "BACKOFF", "STOPPED")


def _locate() -> render.Programs:
    pg_bin = tools.find_pg_bin()
    redis_server = tools.find_redis_server()
    _, supervisorctl = tools.find_supervisor()
    node, server_js = tools.find_node(), node_deps.backend_script()
    return render.default_programs(pg_bin, redis_server, supervisorctl, node, server_js)


def _prepare_state(
    layout: Layout, state: SandboxState | None, ports: SandboxPorts | None, pg_bin: Path
) -> SandboxState:
    if state is None:
        if layout.pg_parent.exists():
            # Data whose superuser password went with a lost state file: useless, start over.
            shutil.rmtree(layout.pg_parent)
        state = SandboxState(ports=ports or default_ports())
    elif ports is not None:
        state.ports = ports
    state.redis_maxmemory = default_maxmemory(state.redis_maxmemory)
    state.service_user = tools.ensure_service_user()
    state.pg_bin_dir = str(pg_bin)
    state.pg_version = tools.pg_version(pg_bin)
    state.faults = []
    return state


def _write_files(layout: Layout, state: SandboxState, programs: render.Programs) -> None:
    layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for directory in (layout.run_dir, layout.logs_dir, layout.redis_dir, layout.backend_dir):
        directory.mkdir(mode=0o700, exist_ok=True)
    postgres.prepare_dirs(layout, state)
    postgres.initdb(layout, state)
    postgres.configure(layout, state)
    layout.redis_conf.write_text(render.redis_conf(layout, state), encoding="utf-8")
    layout.redis_conf.chmod(0o600)
    extra: list[str] = []
    if state.monitoring is not None:
        from pflow_ops.sandbox import monitoring, monitoring_conf

        monitoring.write_files(layout, state)
        extra = monitoring_conf.program_sections(layout, state, state.monitoring, programs.python)
    conf = render.supervisord_conf(layout, state, programs, extra)
    layout.supervisord_conf.write_text(conf, encoding="utf-8")
    layout.supervisord_conf.chmod(0o600)  # holds the backend's database password
    save_state(layout, state)


def _start_supervisord(layout: Layout, deadline: float) -> Supervisor:
    daemon, _ = tools.find_supervisor()
    start_log = layout.logs_dir / "supervisord.start.log"
    with start_log.open("w") as out:
        proc = subprocess.run(
            [str(daemon), "-c", str(layout.supervisord_conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=_remaining(deadline),
            check=False,
        )
    if proc.returncode != 0:
        lines = start_log.read_text(errors="replace").strip().splitlines() or ["no output"]
        raise SandboxError(f"supervisord failed to start (exit {proc.returncode}): {lines[-1]}")
    sv = Supervisor(layout.supervisor_socket)
    wait_for(lambda: True if sv.is_up() else None, _remaining(deadline), "supervisord")
    return sv


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.1)


def _wait_program(ctx: Context, name: str, ready: Callable[[], bool], deadline: float) -> None:
    def probe() -> bool | None:
        statename = ctx.info(name)["statename"]
        if statename in GIVING_UP:
            raise SandboxError(
                f"{name} stopped while starting ({statename}); {log_tail(ctx.layout, name)}"
            )
        return True if statename == "RUNNING" and ready() else None

    wait_for(probe, _remaining(deadline), f"{name} to accept connections", interval=0.2)


def _redis_ping(state: SandboxState) -> bool:
    client = redis.Redis(
        host=HOST, port=state.ports.redis, socket_timeout=1, socket_connect_timeout=1
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _start(ctx: Context, deadline: float) -> None:
    state = ctx.state
    _wait_program(ctx, "postgres", lambda: postgres.accepts_queries(state), deadline)
    postgres.bootstrap(state)
    _wait_program(ctx, "redis", lambda: _redis_ping(state), deadline)
    start_program(ctx, "backend")
    _wait_program(ctx, "backend", lambda: health(state.ports.backend).status == 200, deadline)
    if state.monitoring is not None:
        _start_monitoring(ctx, deadline)
    record_pids(ctx)


def _start_monitoring(ctx: Context, deadline: float) -> None:
    from pflow_ops.sandbox import monitoring

    for name, ready in monitoring.readiness(ctx.state):
        _wait_program(ctx, name, ready, deadline)
    monitoring.load_rules(ctx.layout, ctx.state, _remaining(deadline))
    start_program(ctx, "traffic")  # only now: the backend answers


def _reap_monitoring(layout: Layout) -> set[int]:
    """Monitoring programs a dead supervisord left behind (none without a monitoring dir)."""
    if not layout.monitoring_dir.exists():
        return set()
    from pflow_ops.sandbox import monitoring

    return monitoring.reap(layout)


def _check_running(
    state: SandboxState, ports: SandboxPorts | None, options: MonitoringOptions | None
) -> None:
    """`up` on a running sandbox is a no-op, unless it asks for something else."""
    if ports is not None and ports != state.ports:
        raise SandboxError(
            f"the sandbox is already running on ports {state.ports}; "
            "run `pflow-ops sandbox down` before changing them",
            USAGE,
        )
    if options is not None and state.monitoring is None:
        raise SandboxError(
            "the sandbox is already running without monitoring; "
            "run `pflow-ops sandbox down` before `up --monitoring`",
            USAGE,
        )


def up(
    home: Path | None = None,
    ports: SandboxPorts | None = None,
    timeout: float = 60,
    monitoring_options: MonitoringOptions | None = None,
) -> dict[str, Any]:
    """Start the sandbox (idempotent) and return the contents of endpoints.json.

    With ``monitoring_options``, also Prometheus, Alertmanager, the exporters, the receiver and
    a traffic generator (:mod:`pflow_ops.sandbox.monitoring`).
    """
    layout = Layout.for_home(home)
    state = load_state(layout)
    if state is not None and Supervisor(layout.supervisor_socket).is_up():
        _check_running(state, ports, monitoring_options)
        return _endpoints(layout, state)
    deadline = time.monotonic() + timeout
    programs = _locate()
    state = _prepare_state(layout, state, ports, programs.pg_bin)
    layout.check_socket_paths(state.ports.postgres)
    reaper.reap(layout, state)  # leftovers of a sandbox whose supervisord died
    _reap_monitoring(layout)
    check_ports_free(state.ports)
    if monitoring_options is None:
        state.monitoring = None
    else:
        from pflow_ops.sandbox import monitoring

        state.monitoring = monitoring.prepare(state, monitoring_options)  # reuses its ports
    try:
        _write_files(layout, state, programs)
        ctx = Context(layout, state, _start_supervisord(layout, deadline))
        _start(ctx, deadline)
    except BaseException:
        _stop(layout, state)  # leave nothing half-started behind
        raise
    data = _render_endpoints(layout, state, programs.supervisorctl)
    write_private_json(layout.endpoints_file, data)
    return data


def _render_endpoints(layout: Layout, state: SandboxState, supervisorctl: Path) -> dict[str, Any]:
    data = render.endpoints(layout, state, supervisorctl)
    if state.monitoring is not None:
        from pflow_ops.sandbox import monitoring_conf

        data["monitoring"] = monitoring_conf.endpoints_section(layout, state.monitoring)
    return data


def _endpoints(layout: Layout, state: SandboxState) -> dict[str, Any]:
    data = read_json(layout.endpoints_file)
    if data is None:
        data = _render_endpoints(layout, state, tools.venv_bin() / "supervisorctl")
        write_private_json(layout.endpoints_file, data)
    return data


def _programs_status(sv: Supervisor, layout: Layout) -> dict[str, dict[str, Any]]:
    now = time.time()
    programs: dict[str, dict[str, Any]] = {}
    for info in sv.all_info():
        running = info["statename"] == "RUNNING"
        programs[info["name"]] = {
            "state": info["statename"],
            "pid": int(info["pid"]) or None,
            "uptime_s": round(now - info["start"], 1) if running else None,
            "exitstatus": None if running else info["exitstatus"],
            "stopped": running and procs.is_stopped(int(info["pid"])),
            "description": info["description"],
            "log_file": str(layout.log(info["name"])),
        }
    return programs


def _redacted(endpoints: dict[str, Any] | None) -> dict[str, Any] | None:
    if endpoints is None:
        return None
    pg = dict(endpoints.get("postgres", {}))
    for key in ("app_password", "monitor_password"):
        if pg.get(key):
            pg[key] = "********"
    return {**endpoints, "postgres": pg}


def status(home: Path | None = None) -> dict[str, Any]:
    """What is running, the backend's /health, and the endpoints (passwords masked)."""
    layout = Layout.for_home(home)
    state = load_state(layout)
    sv = Supervisor(layout.supervisor_socket, timeout=10)
    result: dict[str, Any] = {
        "running": False,
        "healthy": False,
        "sandbox_dir": str(layout.root),
        "programs": {},
        "health": None,
        "health_error": None,
        "faults": [],
        "endpoints": _redacted(read_json(layout.endpoints_file)),
    }
    if state is None or not sv.is_up():
        return result
    programs = _programs_status(sv, layout)
    result.update(running=True, faults=list(state.faults), programs=programs)
    if state.monitoring is not None:
        from pflow_ops.sandbox import monitoring

        result["monitoring"] = monitoring.status(state, programs)
    answer = health(state.ports.backend)
    body = answer.json()
    if answer.status is not None and body is not None:
        result["health"] = {"http_status": answer.status, **body}
        result["healthy"] = answer.status == 200
    else:
        result["health_error"] = describe_health(answer)
    return result


def _stop(layout: Layout, state: SandboxState | None) -> None:
    """Stop programs and supervisord gracefully, then reap whatever is left; verify."""
    sv = Supervisor(layout.supervisor_socket, timeout=30)
    supervisord_pid: int | None = None
    if sv.is_up():
        try:
            supervisord_pid = sv.pid()
            for info in sv.all_info():
                # A SIGSTOPped program would sit out stopwaitsecs before SIGKILL: resume it.
                if info["pid"] and procs.is_stopped(int(info["pid"])):
                    procs.send(int(info["pid"]), signal.SIGCONT)
            sv.stop_all()
            sv.shutdown()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            pass  # supervisord is going away anyway; reaping below covers whatever it left
    if supervisord_pid is not None:
        procs.wait_gone([supervisord_pid], 15)
    loaders.stop(layout)
    survivors = reaper.reap(layout, state) | _reap_monitoring(layout)
    reaper.remove_runtime_files(layout)
    if survivors:
        raise SandboxError(f"sandbox processes still running after stop: {sorted(survivors)}")


def down(home: Path | None = None, purge: bool = False) -> None:
    """Stop everything (idempotent); with ``purge`` also delete all data and state."""
    layout = Layout.for_home(home)
    state = load_state(layout) if layout.root.exists() else None
    _stop(layout, state)
    if state is not None and not purge:
        state.pids, state.faults = {}, []
        save_state(layout, state)
    layout.endpoints_file.unlink(missing_ok=True)
    if purge:
        if layout.privileged and layout.pg_parent.parent == PRIVILEGED_PG_BASE:
            shutil.rmtree(layout.pg_parent, ignore_errors=True)
        shutil.rmtree(layout.root, ignore_errors=True)
