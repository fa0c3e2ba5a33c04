"""Rendered supervisord, Redis and PostgreSQL configuration, and the endpoints.json shape."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from pflow_ops.sandbox import SandboxPorts, render
from pflow_ops.sandbox.layout import Layout, SandboxState

PROGRAMS = render.Programs(
    pg_bin=Path("/usr/lib/postgresql/15/bin"),
    redis_server=Path("/usr/bin/redis-server"),
    python=Path("/venv/bin/python"),
    supervisorctl=Path("/venv/bin/supervisorctl"),
)


@pytest.fixture
def layout() -> Layout:
    return Layout(Path("/tmp/pfo-t/sandbox"), privileged=True)


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(
        ports=SandboxPorts(3100, 45432, 46379),
        service_user="postgres",
        pg_bin_dir="/usr/lib/postgresql/15/bin",
        pg_version="15.18",
    )


def _supervisord(layout: Layout, state: SandboxState) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(render.supervisord_conf(layout, state, PROGRAMS))
    return parser


def test_supervisord_has_socket_ctl_and_daemonizes(layout: Layout, state: SandboxState) -> None:
    conf = _supervisord(layout, state)
    assert conf["unix_http_server"]["file"] == "/tmp/pfo-t/sandbox/run/supervisor.sock"
    assert conf["unix_http_server"]["chmod"] == "0700"
    assert conf["supervisorctl"]["serverurl"] == "unix:///tmp/pfo-t/sandbox/run/supervisor.sock"
    assert conf["supervisord"]["nodaemon"] == "false"
    assert conf["supervisord"]["pidfile"].startswith("/tmp/pfo-t/sandbox/")
    assert "rpcinterface:supervisor" in conf


def test_no_program_is_restarted_automatically(layout: Layout, state: SandboxState) -> None:
    conf = _supervisord(layout, state)
    for name in render.PROGRAMS:
        section = conf[f"program:{name}"]
        assert section["autorestart"] == "false", name
        assert section["stdout_logfile"] == f"/tmp/pfo-t/sandbox/logs/{name}.log"


def test_backend_program_settings(layout: Layout, state: SandboxState) -> None:
    backend = _supervisord(layout, state)["program:backend"]
    assert backend["autostart"] == "false"
    assert backend["startsecs"] == "1"
    assert backend["stopwaitsecs"] == "3"
    assert backend["stopasgroup"] == backend["killasgroup"] == "true"
    # The Node.js reference backend, with a small V8 heap and a report on a fatal error.
    assert backend["command"].startswith(
        "/usr/bin/node --max-old-space-size=64 --report-on-fatalerror "
    )
    assert "node_backend/server.js --port 3100" in backend["command"]
    assert backend["directory"] == "/tmp/pfo-t/sandbox/backend"
    assert "redis://127.0.0.1:46379/0" in backend["command"]
    # The password travels in the environment, never on the command line.
    assert state.app_password not in backend["command"]
    assert f"{render.BACKEND_DSN_ENV}=" in backend["environment"]
    assert state.app_password in backend["environment"]


def test_postgres_runs_as_the_service_user_when_root(layout: Layout, state: SandboxState) -> None:
    postgres = _supervisord(layout, state)["program:postgres"]
    assert postgres["user"] == "postgres"
    assert postgres["stopsignal"] == "INT"
    assert postgres["command"].endswith(f"postgres -D {layout.pg_data}")
    state.service_user = None
    assert "user" not in _supervisord(layout, state)["program:postgres"]


def test_percent_signs_are_escaped_for_supervisord(state: SandboxState) -> None:
    odd = Layout(Path("/tmp/50%/sandbox"), privileged=False)
    text = render.supervisord_conf(odd, state, PROGRAMS)
    assert "/tmp/50%%/sandbox/run/supervisor.sock" in text
    assert "/tmp/50%/" not in text


def test_redis_conf(layout: Layout, state: SandboxState) -> None:
    lines = render.redis_conf(layout, state).splitlines()
    for expected in [
        "bind 127.0.0.1",
        "port 46379",
        "protected-mode yes",
        "daemonize no",
        "maxmemory 64mb",
        "maxmemory-policy allkeys-lru",
        'dir "/tmp/pfo-t/sandbox/redis"',
    ]:
        assert expected in lines
    assert not any(line.startswith("requirepass") for line in lines)


def test_postgresql_conf_and_hba(layout: Layout, state: SandboxState) -> None:
    conf = render.postgresql_conf(layout, state)
    assert "listen_addresses = '127.0.0.1'" in conf
    assert "port = 45432" in conf
    assert "shared_preload_libraries = 'pg_stat_statements'" in conf
    assert f"unix_socket_directories = '{layout.pg_socket_dir}'" in conf
    hba = [line.split() for line in render.pg_hba_conf().splitlines() if line[:1] not in "#"]
    assert ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"] in hba
    assert all(rule[-1] != "trust" for rule in hba)


def test_dsn_quotes_unusual_passwords(state: SandboxState) -> None:
    dsn = render.pg_dsn(state, "pivotal_app", "p@ss:w/rd")
    assert dsn == "postgresql://pivotal_app:p%40ss%3Aw%2Frd@127.0.0.1:45432/pivotal_flow"


def test_endpoints_shape_is_exact(layout: Layout, state: SandboxState) -> None:
    data = render.endpoints(layout, state, PROGRAMS.supervisorctl)
    assert list(data) == ["sandbox_dir", "supervisor", "backend", "postgres", "redis"]
    assert data["supervisor"] == {
        "config": "/tmp/pfo-t/sandbox/supervisord.conf",
        "server_url": "unix:///tmp/pfo-t/sandbox/run/supervisor.sock",
        "supervisorctl": "/venv/bin/supervisorctl",
    }
    assert data["backend"] == {
        "program": "backend",
        "host": "127.0.0.1",
        "port": 3100,
        "health_url": "http://127.0.0.1:3100/health",
        "metrics_url": "http://127.0.0.1:3100/metrics",
        "probe_url": "http://127.0.0.1:3100/api/items?limit=10",
        "log_file": "/tmp/pfo-t/sandbox/logs/backend.log",
        "data_paths": ["/tmp/pfo-t/sandbox/backend", "/tmp/pfo-t/sandbox/logs"],
    }
    assert set(data["postgres"]) == {
        "program", "host", "port", "database", "app_user", "app_password",
        "monitor_user", "monitor_password", "data_dir", "bin_dir", "version",
    }  # fmt: skip
    assert data["postgres"]["data_dir"] == str(layout.pg_data)
    assert data["postgres"]["version"] == "15.18"
    assert data["redis"] == {
        "program": "redis",
        "host": "127.0.0.1",
        "port": 46379,
        "password": None,
        "maxmemory": "64mb",
        "config_file": "/tmp/pfo-t/sandbox/redis/redis.conf",
    }
