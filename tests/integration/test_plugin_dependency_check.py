"""dependency_check against a real PostgreSQL 15 and a real redis-server: each reason for "down"
is told apart, each check keeps to its timeout, the checks run concurrently, and the module works
when Ansible ships it (module_utils included) to a target."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from pflow_ops.sandbox.net import free_ports
from tests.plugins import load_plugin

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# The module imports its module_utils as Ansible ships them, from ansible_collections.pivotal.
# flow_ops; <repo>/collections links that name to the checkout. ansible_collections is a
# namespace package (the ansible bundle has one in site-packages), so a sys.path entry extends it.
COLLECTIONS = str(ROOT / "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

from ansible_collections.pivotal.flow_ops.plugins.module_utils import (  # noqa: E402
    pg_check,
)

dc: Any = load_plugin("dependency_check")

PG_BIN = Path("/usr/lib/postgresql/15/bin")
APP_PASSWORD = "app-S3cret-4f9"
REDIS_PASSWORD = "redis-S3cret-7c2"
# Two of the five slots are used below: four for ordinary roles, one reserved for superusers.
PG_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "5",
    "superuser_reserved_connections": "1",
    "fsync": "off",
    "shared_buffers": "16MB",
}
PG_HBA = """\
local all all                    trust
host  all app 127.0.0.1/32       scram-sha-256
"""


def _unprivileged() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: when we are root, run it as the postgres user."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


@dataclass
class Postgres:
    port: int
    socket_dir: str

    def params(self, **kw: Any) -> dict[str, Any]:
        base = {
            "login_host": "127.0.0.1",
            "login_port": self.port,
            "login_db": "appdb",
            "login_user": "app",
            "login_password": APP_PASSWORD,
            "connect_timeout": 2.0,
        }
        return {**base, **kw}

    def connect(self, superuser: bool = False) -> Any:
        if superuser:
            return psycopg2.connect(
                host=self.socket_dir, port=self.port, user="postgres", dbname="postgres"
            )
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user="app", password=APP_PASSWORD, dbname="appdb"
        )


def _redis_params(port: int, **kw: Any) -> dict[str, Any]:
    base = {
        "host": "127.0.0.1",
        "port": port,
        "user": None,
        "password": REDIS_PASSWORD,
        "timeout": 2.0,
        "tls": False,
        "validate_certs": True,
    }
    return {**base, **kw}


def _module_params(
    pg: dict[str, Any] | None = None, redis: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"postgres": pg, "redis": redis}


def _wait_until(ready: Any, proc: subprocess.Popen[bytes], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} not ready within {seconds} s")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    workdir = Path(tempfile.mkdtemp(prefix="pfo-pg-", dir="/tmp"))
    as_postgres = _unprivileged()
    if as_postgres:
        shutil.chown(workdir, "postgres", "postgres")
    data = workdir / "data"
    proc = None
    try:
        subprocess.run(
            [PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"],
            check=True,
            capture_output=True,
            cwd=workdir,
            **as_postgres,
        )
        (data / "pg_hba.conf").write_text(PG_HBA)  # rewritten in place: keeps owner and mode
        (port,) = free_ports(1)
        settings = {**PG_SETTINGS, "unix_socket_directories": str(workdir)}
        args = [f"--{key}={value}" for key, value in settings.items()]
        with (workdir / "postgres.log").open("wb") as log:
            proc = subprocess.Popen(
                [PG_BIN / "postgres", "-D", data, "-p", str(port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                **as_postgres,
            )
        pg = Postgres(port=port, socket_dir=str(workdir))
        _wait_until(lambda: pg.connect(superuser=True).close() is None, proc, "postgres")
        admin = pg.connect(superuser=True)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE ROLE app LOGIN PASSWORD %s", (APP_PASSWORD,))
            cur.execute("CREATE DATABASE appdb OWNER app")
        admin.close()
        yield pg
    finally:
        if proc is not None:
            _stop(proc, signal.SIGINT)  # fast shutdown: does not wait for clients
        shutil.rmtree(workdir, ignore_errors=True)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_redis() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    workdir = tempfile.mkdtemp(prefix="pfo-redis-")
    (port,) = free_ports(1)
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", workdir, "--requirepass", REDIS_PASSWORD]
    proc = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)
    try:
        _wait_until(lambda: _accepts(port), proc, "redis")
        yield port, proc
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with running_redis() as (port, _):
        yield port


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does, off the backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_both_up_means_available(postgres: Postgres, redis_port: int) -> None:
    res = dc.run_module(_module_params(postgres.params(), _redis_params(redis_port)))
    assert res["available"] is True and res["down"] == [] and res["changed"] is False
    pg, rd = res["dependencies"]["postgresql"], res["dependencies"]["redis"]
    assert pg["state"] == "ok" and pg["server_version"].startswith("15.")
    assert rd["state"] == "ok" and rd["server_version"].startswith("7.")
    assert pg["latency_ms"] >= 0 and rd["latency_ms"] >= 0
    assert res["msg"] == "available: postgresql, redis"


def test_only_configured_dependencies_are_checked(redis_port: int) -> None:
    res = dc.run_module(_module_params(redis=_redis_params(redis_port)))
    assert list(res["dependencies"]) == ["redis"] and res["available"] is True


@pytest.mark.parametrize(
    ("kw", "state"),
    [
        ({"login_password": "wrong-Pa55"}, "auth_failed"),
        ({"login_db": "nope"}, "database_missing"),
        ({"login_user": "stranger"}, "not_allowed"),  # no pg_hba.conf line for this role
    ],
)
def test_postgres_failures_are_told_apart(
    postgres: Postgres, kw: dict[str, Any], state: str
) -> None:
    res = dc.run_module(_module_params(postgres.params(**kw)))
    pg = res["dependencies"]["postgresql"]
    assert (pg["state"], res["available"], res["down"]) == (state, False, ["postgresql"]), pg["msg"]
    assert "\n" not in pg["msg"] and "wrong-Pa55" not in pg["msg"]


def _check_postgres(postgres: Postgres) -> tuple[str, str]:
    pg = dc.check_postgresql(postgres.params())
    return pg["state"], pg["msg"]


def test_all_slots_taken_is_too_many_clients(postgres: Postgres) -> None:
    held = []
    try:
        held += [postgres.connect() for _ in range(4)]  # every slot an ordinary role may use
        state, msg = _check_postgres(postgres)
        assert state == "too_many_clients" and "reserved" in msg, msg
        held.append(postgres.connect(superuser=True))  # and the superuser's reserved slot
        state, msg = _check_postgres(postgres)
        assert state == "too_many_clients" and "too many clients already" in msg, msg
    finally:
        for conn in held:
            conn.close()
    deadline = time.monotonic() + 10  # backends exit asynchronously after the client closes
    while _check_postgres(postgres)[0] != "ok":
        assert time.monotonic() < deadline, "connection slots not freed"
        time.sleep(0.1)


def test_closed_ports_are_refused() -> None:
    pg_port, redis_port = free_ports(2)
    pg = {
        "login_host": "127.0.0.1",
        "login_port": pg_port,
        "login_db": "x",
        "login_user": "x",
        "login_password": "x",
    }
    res = dc.run_module(_module_params({**pg, "connect_timeout": 2.0}, _redis_params(redis_port)))
    states = {name: dep["state"] for name, dep in res["dependencies"].items()}
    assert states == {"postgresql": "refused", "redis": "refused"}
    assert res["msg"] == "down: postgresql (refused), redis (refused)"
    assert res["down"] == ["postgresql", "redis"] and res["available"] is False


def test_silent_postgres_times_out_within_its_timeout(postgres: Postgres) -> None:
    with silent_port() as port:
        started = time.monotonic()
        res = dc.run_module(_module_params(postgres.params(login_port=port, connect_timeout=0.5)))
        elapsed = time.monotonic() - started
    pg = res["dependencies"]["postgresql"]
    assert pg["state"] == "timeout" and "0.5 s" in pg["msg"], pg["msg"]
    assert 0.5 <= elapsed < 0.8  # libpq's own connect_timeout would have waited at least 2 s


def test_checks_run_concurrently(postgres: Postgres) -> None:
    with silent_port() as pg_port, silent_port() as redis_port:
        started = time.monotonic()
        res = dc.run_module(
            _module_params(
                postgres.params(login_port=pg_port, connect_timeout=1.0),
                _redis_params(redis_port, timeout=1.0),
            )
        )
        elapsed = time.monotonic() - started
    assert {dep["state"] for dep in res["dependencies"].values()} == {"timeout"}
    assert all(1.0 <= dep["elapsed_s"] < 1.3 for dep in res["dependencies"].values())
    assert elapsed < 1.5, f"{elapsed:.2f} s: the checks ran one after the other"


def test_a_hung_or_broken_check_does_not_hold_up_the_others() -> None:
    def hang(params: dict[str, Any]) -> dict[str, Any]:  # like a DNS lookup that never returns
        time.sleep(5)
        return {}

    def crash(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    started = time.monotonic()
    out = dc.run_checks({"postgresql": (hang, {}, 0.2), "redis": (crash, {}, 0.2)})
    assert time.monotonic() - started < 0.2 + dc.GRACE_S + 0.2
    assert out["postgresql"]["state"] == "timeout" and out["postgresql"]["available"] is False
    assert out["redis"]["state"] == "error" and "RuntimeError: boom" in out["redis"]["msg"]


def test_redis_down_while_postgres_stays_available(postgres: Postgres) -> None:
    with running_redis() as (port, proc):
        params = _module_params(postgres.params(), _redis_params(port))
        assert dc.run_module(params)["available"] is True
        _stop(proc)
        res = dc.run_module(params)
    assert res["dependencies"]["redis"]["state"] == "refused"
    assert res["dependencies"]["postgresql"]["available"] is True
    assert res["down"] == ["redis"] and res["available"] is False


@pytest.mark.parametrize(
    ("message", "state"),
    [
        ("FATAL:  the database system is starting up", "starting_up"),
        ("FATAL:  the database system is not yet accepting connections", "starting_up"),
        ("FATAL:  the database system is shutting down", "shutting_down"),
        ("FATAL:  sorry, too many clients already", "too_many_clients"),
        ('FATAL:  too many connections for role "app"', "too_many_clients"),
        ('FATAL:  role "ghost" does not exist', "auth_failed"),
        ("fe_sendauth: no password supplied", "auth_failed"),
        ("timeout expired", "timeout"),
        ('could not translate host name "db" to address: Name or service not known', "error"),
    ],
)
def test_messages_are_classified(message: str, state: str) -> None:
    assert pg_check.classify(message) == state


def test_msg_is_one_line_without_password() -> None:
    text = 'connection to server at "127.0.0.1", port 5432 failed: FATAL:  bad\n\tpassword s3cr3t'
    assert pg_check.one_line(text, "s3cr3t") == "FATAL: bad password ********"


def test_bad_parameters_fail() -> None:
    with pytest.raises(dc.ModuleFailure, match=r"postgres\.connect_timeout must be > 0"):
        dc.run_module(_module_params({"login_host": "h", "login_port": 5432, "connect_timeout": 0}))
    with pytest.raises(dc.ModuleFailure, match=r"redis\.port must be between 1 and 65535"):
        dc.run_module(_module_params(redis={"host": "h", "port": 0, "timeout": 1.0}))


PLAYBOOK = """
- name: Check the backend's dependencies through Ansible
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check PostgreSQL and Redis at once
      pivotal.flow_ops.dependency_check:
        postgres: {pg}
        redis: {redis}
      register: deps

    - name: Check them in check mode too (read-only, so it runs for real)
      pivotal.flow_ops.dependency_check:
        redis: {redis}
      check_mode: true

    - name: Refuse a bad parameter
      pivotal.flow_ops.dependency_check:
        redis: {{port: 6379, timeout: 0}}
      ignore_errors: true
"""


def run_playbook(playbook: Path) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on localhost with this interpreter; the JSON callback on stdout."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    return subprocess.run(
        [
            Path(sys.executable).parent / "ansible-playbook",
            *("-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}"),
            playbook,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_runs_through_ansible_playbook(postgres: Postgres, redis_port: int, tmp_path: Path) -> None:
    playbook = tmp_path / "deps.yml"
    pg = json.dumps(postgres.params())
    playbook.write_text(PLAYBOOK.format(pg=pg, redis=json.dumps(_redis_params(redis_port))))
    proc = run_playbook(playbook)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert APP_PASSWORD not in proc.stdout and REDIS_PASSWORD not in proc.stdout  # no_log on both
    report = json.loads(proc.stdout)
    real, checked, bad = (task["hosts"]["localhost"] for task in report["plays"][0]["tasks"])
    assert real["available"] is True and real["changed"] is False
    assert real["dependencies"]["postgresql"]["server_version"].startswith("15.")
    assert checked["dependencies"]["redis"]["state"] == "ok" and checked["changed"] is False
    assert bad["failed"] is True and bad["msg"] == "redis.timeout must be > 0"
    assert report["stats"]["localhost"]["failures"] == 0
