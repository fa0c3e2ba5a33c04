"""A real sandbox (PostgreSQL, Redis, backend under supervisord) in a throwaway PFLOW_OPS_HOME.

One sandbox serves the whole module; every fault test breaks it and heals it again, and the
last test takes it down and checks that no process is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis

import pflow_ops.sandbox as sandbox
from pflow_ops.sandbox import SandboxError, SandboxPorts
from pflow_ops.sandbox.net import HttpResult, free_ports, http_get
from pflow_ops.sandbox.procs import all_pids, cmdline, is_alive
from pflow_ops.sandbox.rpc import Supervisor

# No skip when PostgreSQL or Redis is missing: scripts/setup.sh installs them, and a skip
# would hide a broken set-up.
pytestmark = pytest.mark.integration


class Sandbox:
    def __init__(self, home: Path, endpoints: dict[str, Any]) -> None:
        self.home = home
        self.endpoints = endpoints
        self.port = int(endpoints["backend"]["port"])

    def get(self, path: str, timeout: float = 2.0) -> HttpResult:
        return http_get(self.port, path, timeout=timeout)

    def health(self) -> tuple[int | None, dict[str, Any]]:
        result = self.get("/health")
        return result.status, result.json() or {}

    def info(self, program: str) -> dict[str, Any]:
        # Straight from supervisord: status() would also wait on a hung backend's /health.
        return Supervisor(Path(self.endpoints["supervisor"]["server_url"][7:])).info(program)

    def backend_state(self) -> str:
        return str(self.info("backend")["statename"])


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    # Short path under /tmp: unix socket paths are limited to 107 bytes.
    home = Path(tempfile.mkdtemp(prefix="pfo-", dir="/tmp"))
    backend, pg, rd = free_ports(3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PFLOW_OPS_HOME", str(home))
        try:
            endpoints = sandbox.up(ports=SandboxPorts(backend, pg, rd), timeout=60)
            yield Sandbox(home, endpoints)
        finally:
            sandbox.down(purge=True)
            shutil.rmtree(home, ignore_errors=True)


def test_taken_port_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(tempfile.mkdtemp(prefix="pfo-", dir="/tmp"))
    monkeypatch.setenv("PFLOW_OPS_HOME", str(home))
    backend, pg, rd = free_ports(3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", pg))
        squatter.listen(1)
        with pytest.raises(SandboxError) as exc:
            sandbox.up(ports=SandboxPorts(backend, pg, rd), timeout=30)
    assert f"port {pg} on 127.0.0.1 (wanted by the sandbox postgres) is already in use" in str(
        exc.value
    )
    assert sandbox.status()["running"] is False
    sandbox.down(purge=True)
    shutil.rmtree(home, ignore_errors=True)


def test_up_serves_healthy_backend_and_writes_endpoints(sb: Sandbox) -> None:
    status, body = sb.health()
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]
    path = sb.home / "sandbox" / "endpoints.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == sb.endpoints


def _pg(sb: Sandbox, role: str) -> Any:
    pg = sb.endpoints["postgres"]
    conn = psycopg2.connect(
        host=pg["host"], port=pg["port"], dbname=pg["database"], connect_timeout=3,
        user=pg[f"{role}_user"], password=pg[f"{role}_password"],
    )  # fmt: skip
    conn.autocommit = True
    return conn


def test_databases_roles_and_cache_are_provisioned(sb: Sandbox) -> None:
    with _pg(sb, "app") as app, app.cursor() as cur:
        cur.execute("SELECT count(*), current_user = (SELECT tableowner FROM pg_tables"
                    " WHERE tablename = 'items') FROM items")  # fmt: skip
        assert cur.fetchone() == (300, True)
    monitor = _pg(sb, "monitor")
    try:
        with monitor.cursor() as cur:
            cur.execute(
                "SELECT pg_has_role('pg_monitor', 'MEMBER'),"
                " pg_has_role('pg_signal_backend', 'MEMBER'),"
                " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
                " (SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements')"
            )
            assert cur.fetchone() == (True, True, False, 1)
            cur.execute("SELECT count(*) FROM pg_stat_statements")  # preloaded and readable
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT count(*) FROM items")  # least privilege: no data access
    finally:
        monitor.close()
    rd = sb.endpoints["redis"]
    client = redis.Redis(host=rd["host"], port=rd["port"], socket_timeout=2, decode_responses=True)
    try:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        assert client.config_rewrite()  # the config file is ours and writable
    finally:
        client.close()


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_and_cache_hit_rate(sb: Sandbox) -> None:
    rate = 'pivotal_cache_hit_rate{cache_type="redis"}'
    hits = 'pivotal_cache_lookups_total{cache_type="redis",result="hit"}'
    before = sb.get("/metrics").body
    first, second = sb.get("/api/items/42"), sb.get("/api/items/42")
    assert first.status == second.status == 200
    assert first.json() == second.json() and (first.json() or {})["id"] == 42
    after = sb.get("/metrics").body
    for family in ("http_requests_total", "http_request_duration_seconds", rate.split("{")[0]):
        assert f"# TYPE {family} " in after
    assert "http_request_duration_seconds_bucket{" in after
    assert _sample(after, hits) == _sample(before, hits) + 1
    assert _sample(after, rate) != _sample(before, rate)
    assert sb.get("/api/items/999999").status == 404


def test_up_again_is_a_no_op(sb: Sandbox) -> None:
    pid = sandbox.status()["programs"]["backend"]["pid"]
    start = time.monotonic()
    assert sandbox.up() == sb.endpoints
    assert time.monotonic() - start < 2
    assert sandbox.status()["programs"]["backend"]["pid"] == pid


def test_status_and_supervisorctl(sb: Sandbox) -> None:
    result = sandbox.status()
    assert result["running"] and result["healthy"]
    assert {n: p["state"] for n, p in result["programs"].items()} == {
        "backend": "RUNNING", "postgres": "RUNNING", "redis": "RUNNING",
    }  # fmt: skip
    assert result["health"]["http_status"] == 200
    assert result["endpoints"]["postgres"]["app_password"] == "********"
    sup = sb.endpoints["supervisor"]
    ctl = subprocess.run(
        [sup["supervisorctl"], "-c", sup["config"], "status", "backend"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert "RUNNING" in ctl.stdout


def _heal(sb: Sandbox) -> list[str]:
    actions = sandbox.heal(timeout=30)
    status, body = sb.health()
    assert status == 200, body
    return actions


def test_backend_crash(sb: Sandbox) -> None:
    assert "SIGKILL" in sandbox.break_fault("backend-crash")
    assert sb.get("/health").error == "connection refused"
    assert sb.backend_state() == "EXITED"
    time.sleep(1.5)  # supervisord must not bring it back by itself
    assert sb.backend_state() == "EXITED"
    assert _heal(sb) == ["started backend (was EXITED)"]


def test_backend_hang(sb: Sandbox) -> None:
    sandbox.break_fault("backend-hang")
    pid = int(sb.info("backend")["pid"])
    result = sb.get("/health", timeout=1)
    assert result.status is None and "no answer within 1s" in str(result.error)
    assert is_alive(pid) and sb.backend_state() == "RUNNING"
    assert any("SIGCONT" in action for action in _heal(sb))


def test_backend_errors(sb: Sandbox) -> None:
    sandbox.break_fault("backend-errors")
    codes = [sb.get(f"/api/items/{i % 10 + 1}").status for i in range(40)]
    assert 0 < codes.count(500) < 40 and set(codes) <= {200, 500}
    assert sb.health()[0] == 200  # the health check keeps passing, as in real incidents
    assert any("SIGUSR2" in action for action in _heal(sb))
    assert {sb.get("/api/items/1").status for _ in range(10)} == {200}


@pytest.mark.parametrize(("fault", "program"), [("db-down", "postgres"), ("redis-down", "redis")])
def test_dependency_down(sb: Sandbox, fault: str, program: str) -> None:
    sandbox.break_fault(fault)
    status, body = sb.health()
    assert status == 503
    assert body["status"] == "degraded"
    assert body["checks"][program]["ok"] is False and body["checks"][program]["error"]
    assert sandbox.status()["programs"][program]["state"] == "STOPPED"
    assert _heal(sb) == [f"started {program} (was STOPPED)"]


def _leftovers(paths: list[str], pids: set[int]) -> set[int]:
    found = {pid for pid in pids if is_alive(pid)}
    for pid in all_pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        if is_alive(pid) and any(p in cmdline(pid) or cwd.startswith(p) for p in paths):
            found.add(pid)
    return found - {os.getpid()}


def _sandbox_pids(sb: Sandbox) -> set[int]:
    state = json.loads((sb.home / "sandbox" / "state.json").read_text())
    pids = {ident[0] for ident in state["pids"].values()}
    pids |= {p["pid"] for p in sandbox.status()["programs"].values() if p["pid"]}
    return pids


def test_down_leaves_no_process_behind(sb: Sandbox) -> None:
    sandbox.break_fault("db-down")
    pids = _sandbox_pids(sb)
    sandbox.break_fault("backend-hang")  # SIGSTOPped: must not delay or survive `down`
    assert len(pids) == 3  # supervisord, redis, backend (postgres is stopped)
    paths = [str(sb.home / "sandbox"), sb.endpoints["postgres"]["data_dir"]]
    assert _leftovers(paths, pids)  # the scan does see the running sandbox
    start = time.monotonic()
    sandbox.down()
    assert time.monotonic() - start < 5
    assert _leftovers(paths, pids) == set()
    assert sandbox.status()["running"] is False
    assert not (sb.home / "sandbox" / "endpoints.json").exists()
    sandbox.down()  # idempotent
    with pytest.raises(SandboxError, match="run `pflow-ops sandbox up`"):
        sandbox.break_fault("db-down")


def test_down_after_supervisord_died(sb: Sandbox) -> None:
    # Second start on the existing data directory, with the ports recorded by the first.
    endpoints = sandbox.up(timeout=60)
    assert endpoints["backend"]["port"] == sb.port and sb.health()[0] == 200
    pids = _sandbox_pids(sb)
    assert len(pids) == 4
    os.kill(sandbox.status()["programs"]["backend"]["pid"], signal.SIGSTOP)
    supervisord = int((sb.home / "sandbox" / "run" / "supervisord.pid").read_text())
    os.kill(supervisord, signal.SIGKILL)  # its programs are orphaned, still running
    paths = [str(sb.home / "sandbox"), sb.endpoints["postgres"]["data_dir"]]
    assert len(_leftovers(paths, pids)) >= 3
    sandbox.down()
    assert _leftovers(paths, pids) == set()
