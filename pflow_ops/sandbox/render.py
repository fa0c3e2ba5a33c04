"""Pure renderers for every file the sandbox writes; no I/O, so unit tests cover them directly."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pflow_ops.sandbox.layout import HOST, Layout, SandboxState

PG_DATABASE = "pivotal_flow"
PG_APP_USER = "pivotal_app"
PG_MONITOR_USER = "pflow_monitor"
PG_SUPERUSER = "postgres"
PROGRAMS = ("postgres", "redis", "backend")
BACKEND_DSN_ENV = "PFLOW_BACKEND_PG_DSN"
ERROR_RATE = 0.5
"""Share of /api requests the backend fails while in error mode (SIGUSR1)."""
NODE_MAX_OLD_SPACE_MB = 64
"""V8's old-space limit for the backend: small, so a leak reaches "heap limit" in seconds."""
HEADER = "Managed by pflow-ops sandbox: rewritten by `pflow-ops sandbox up`"


@dataclass(frozen=True)
class Programs:
    """Absolute paths of the executables supervisord runs."""

    pg_bin: Path
    redis_server: Path
    python: Path
    supervisorctl: Path
    node: Path = Path("/usr/bin/node")
    server_js: Path = Path(__file__).resolve().parent / "node_backend" / "server.js"


def sv(value: object) -> str:
    # supervisord expands %(name)s in values, so a literal percent sign must be doubled.
    return str(value).replace("%", "%%")


def command(argv: list[str]) -> str:
    return sv(shlex.join(argv))


def pg_dsn(state: SandboxState, user: str, password: str, database: str = PG_DATABASE) -> str:
    """libpq URL; passwords from secrets.token_urlsafe need no quoting, others get it anyway."""
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgresql://{auth}@{HOST}:{state.ports.postgres}/{database}"


def redis_url(state: SandboxState) -> str:
    return f"redis://{HOST}:{state.ports.redis}/0"


def program_section(name: str, settings: dict[str, object], layout: Layout) -> str:
    lines = [f"[program:{name}]"]
    lines += [f"{key}={value}" for key, value in settings.items()]
    lines += [
        "redirect_stderr=true",
        f"stdout_logfile={sv(layout.log(name))}",
        "stdout_logfile_maxbytes=5MB",
        "stdout_logfile_backups=1",
    ]
    return "\n".join(lines)


def common_settings(
    priority: int, autostart: bool, stopsignal: str, stopwait: int
) -> dict[str, object]:
    # No autorestart anywhere: a crashed or stopped service stays down until `heal`.
    return {
        "priority": priority,
        "autostart": str(autostart).lower(),
        "autorestart": "false",
        "startsecs": 1,
        "startretries": 0,
        "stopsignal": stopsignal,
        "stopwaitsecs": stopwait,
        "killasgroup": "true",
    }


def _postgres_program(layout: Layout, state: SandboxState, programs: Programs) -> str:
    settings = common_settings(10, True, "INT", 10)  # SIGINT: fast shutdown
    settings["command"] = command([str(programs.pg_bin / "postgres"), "-D", str(layout.pg_data)])
    settings["directory"] = sv(layout.pg_parent)
    if state.service_user:
        settings["user"] = state.service_user
    return program_section("postgres", settings, layout)


def _redis_program(layout: Layout, programs: Programs) -> str:
    settings = common_settings(10, True, "TERM", 5)
    settings["command"] = command([str(programs.redis_server), str(layout.redis_conf)])
    settings["directory"] = sv(layout.redis_dir)
    return program_section("redis", settings, layout)


def node_backend_argv(node: Path, server_js: Path, state: SandboxState) -> list[str]:
    """The Node.js backend's command line, the same under supervisord and in a container."""
    argv = [str(node), f"--max-old-space-size={NODE_MAX_OLD_SPACE_MB}", "--report-on-fatalerror"]
    argv += [str(server_js), "--port", str(state.ports.backend), "--redis-url", redis_url(state)]
    return [*argv, "--error-rate", str(ERROR_RATE)]


def _backend_program(layout: Layout, state: SandboxState, programs: Programs) -> str:
    # Started by `up` after the database is bootstrapped, so its first /health is meaningful.
    settings = common_settings(30, False, "TERM", 3)
    settings["stopasgroup"] = "true"
    settings["command"] = command(node_backend_argv(programs.node, programs.server_js, state))
    # The working directory is where a --report-on-fatalerror report and the fault file land.
    settings["directory"] = sv(layout.backend_dir)
    # The DSN carries a password: pass it in the environment, not on the world-readable cmdline.
    env = {BACKEND_DSN_ENV: pg_dsn(state, PG_APP_USER, state.app_password)}
    settings["environment"] = ",".join(f'{k}="{sv(v)}"' for k, v in env.items())
    return program_section("backend", settings, layout)


def supervisord_conf(
    layout: Layout, state: SandboxState, programs: Programs, extra: Sequence[str] = ()
) -> str:
    """supervisord's configuration; ``extra`` adds program sections (the monitoring stack)."""
    sections = [
        f"; {HEADER}",
        "[unix_http_server]",
        f"file={sv(layout.supervisor_socket)}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={sv(layout.log('supervisord'))}",
        "logfile_maxbytes=5MB",
        "logfile_backups=1",
        f"pidfile={sv(layout.supervisord_pidfile)}",
        f"childlogdir={sv(layout.logs_dir)}",
        f"directory={sv(layout.root)}",
        "identifier=pflow-sandbox",
        "nodaemon=false",
        "umask=077",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sv(layout.supervisor_socket)}",
        "",
        _postgres_program(layout, state, programs),
        "",
        _redis_program(layout, programs),
        "",
        _backend_program(layout, state, programs),
    ]
    for section in extra:
        sections += ["", section]
    return "\n".join(sections) + "\n"


def redis_conf(layout: Layout, state: SandboxState) -> str:
    lines = [
        f"# {HEADER}; CONFIG REWRITE may edit it in between.",
        f"bind {HOST}",
        f"port {state.ports.redis}",
        "protected-mode yes",
        "daemonize no",
        f'dir "{layout.redis_dir}"',
        'logfile ""',
        f"maxmemory {state.redis_maxmemory}",
        "maxmemory-policy allkeys-lru",
        # A cache: no snapshots or AOF, so a restart starts cold, as after a real Redis failover.
        'save ""',
        "appendonly no",
    ]
    return "\n".join(lines) + "\n"


def postgresql_conf(layout: Layout, state: SandboxState) -> str:
    settings = {
        "listen_addresses": f"'{HOST}'",
        "port": str(state.ports.postgres),
        "unix_socket_directories": f"'{layout.pg_socket_dir}'",
        "unix_socket_permissions": "0700",
        "password_encryption": "'scram-sha-256'",
        "shared_preload_libraries": "'pg_stat_statements'",
        "pg_stat_statements.track": "'all'",
        "max_connections": "50",
        "shared_buffers": "32MB",
        "logging_collector": "off",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
        "log_min_duration_statement": "1000",
        "track_io_timing": "on",
    }
    lines = [f"# {HEADER}; included from postgresql.conf."]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def pg_hba_conf() -> str:
    return "\n".join(
        [
            f"# {HEADER}.",
            "# TYPE  DATABASE  USER  ADDRESS       METHOD",
            "local   all       all                 peer",
            f"host    all       all   {HOST}/32  scram-sha-256",
            "",
        ]
    )


def endpoints(layout: Layout, state: SandboxState, supervisorctl: Path) -> dict[str, Any]:
    """The documented endpoints.json shape; other pflow-ops code reads it, so keep it stable."""
    ports = state.ports
    base = f"http://{HOST}:{ports.backend}"
    return {
        "sandbox_dir": str(layout.root),
        "supervisor": {
            "config": str(layout.supervisord_conf),
            "server_url": f"unix://{layout.supervisor_socket}",
            "supervisorctl": str(supervisorctl),
        },
        "backend": {
            "program": "backend",
            "host": HOST,
            "port": ports.backend,
            "health_url": f"{base}/health",
            "metrics_url": f"{base}/metrics",
            "probe_url": f"{base}/api/items?limit=10",
            "log_file": str(layout.log("backend")),
            "data_paths": [str(layout.backend_dir), str(layout.logs_dir)],
        },
        "postgres": {
            "program": "postgres",
            "host": HOST,
            "port": ports.postgres,
            "database": PG_DATABASE,
            "app_user": PG_APP_USER,
            "app_password": state.app_password,
            "monitor_user": PG_MONITOR_USER,
            "monitor_password": state.monitor_password,
            "data_dir": str(layout.pg_data),
            "bin_dir": state.pg_bin_dir,
            "version": state.pg_version,
        },
        "redis": {
            "program": "redis",
            "host": HOST,
            "port": ports.redis,
            "password": None,
            "maxmemory": state.redis_maxmemory,
            "config_file": str(layout.redis_conf),
        },
    }


def default_programs(
    pg_bin: Path, redis_server: Path, supervisorctl: Path, node: Path, server_js: Path
) -> Programs:
    return Programs(pg_bin, redis_server, Path(sys.executable), supervisorctl, node, server_js)
