"""A real Alerta server (alerta-server, from scripts/setup.sh's .venv-alerta) for the incident
role's `alerta` sink: its own database on the sandbox's PostgreSQL, AUTH_REQUIRED with an API key
made by `alertad key`, served by `alertad run` on a free loopback port. Alerta's Flask pins live
in their own venv, so the server runs as a separate process and is read back over its API."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pflow_ops.sandbox import postgres, render
from pflow_ops.sandbox.layout import Layout, SandboxState
from pflow_ops.sandbox.net import free_ports

ROOT = Path(__file__).resolve().parents[2]
ALERTAD = ROOT / ".venv-alerta" / "bin" / "alertad"
ADMIN = "admin@pflow-ops.test"
START_DEADLINE = 60.0


@dataclass
class Alerta:
    url: str
    api_key: str
    log: Path

    def get(self, path: str) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Key {self.api_key}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def alerts(self, resource: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"/alerts?resource={resource}")["alerts"]
        return found

    def notes(self, alert_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"/alert/{alert_id}/notes")["notes"]
        # Oldest first, whatever order the server lists them in.
        return sorted(found, key=lambda n: str(n["createTime"]))


def _database(home: Path, name: str, password: str) -> str:
    """A role and a database of their own on the sandbox's PostgreSQL; returns the DSN."""
    state = SandboxState.from_json(json.loads(Layout.for_home(home).state_file.read_text()))
    conn = postgres.superuser(state)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {name} LOGIN PASSWORD %s", (password,))
            cur.execute(f"CREATE DATABASE {name} OWNER {name}")
    finally:
        conn.close()
    return render.pg_dsn(state, name, password, name)


def _drop_database(home: Path, name: str) -> None:
    state = SandboxState.from_json(json.loads(Layout.for_home(home).state_file.read_text()))
    conn = postgres.superuser(state)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"DROP ROLE IF EXISTS {name}")
    finally:
        conn.close()


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        assert proc.poll() is None, "alertad exited:\n" + log.read_text()[-2000:]
        with (
            suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url + "/", timeout=2) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError("alertad did not answer in time:\n" + log.read_text()[-2000:])


@contextmanager
def alerta_server(home: Path) -> Iterator[Alerta]:
    """Alerta on the PostgreSQL of the sandbox at ``home`` (a running `pflow-ops sandbox`)."""
    assert ALERTAD.exists(), f"{ALERTAD} is missing: run scripts/setup.sh"
    workdir = Path(tempfile.mkdtemp(prefix="pfo-alerta-", dir="/tmp"))
    name = "alerta_" + secrets.token_hex(4)
    dsn = _database(home, name, secrets.token_urlsafe(16))
    conf = workdir / "alertad.conf"
    conf.write_text(
        f"DATABASE_URL = {dsn!r}\n"
        f"DATABASE_NAME = {name!r}\n"
        "AUTH_REQUIRED = True\n"
        f"ADMIN_USERS = [{ADMIN!r}]\n"
        f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
    )
    conf.chmod(0o600)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "ALERTA_SVR_CONF_FILE": str(conf)}
    api_key = "pflow-" + secrets.token_hex(16)
    subprocess.run(
        [str(ALERTAD), "key", "--username", ADMIN, "--key", api_key, "--text", "pflow-ops tests"],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=60,
    )
    (port,) = free_ports(1)
    log = workdir / "alertad.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ALERTAD), "run", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc, log)
        yield Alerta(url, api_key, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        _drop_database(home, name)
        shutil.rmtree(workdir, ignore_errors=True)
