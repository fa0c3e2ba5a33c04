"""One real sandbox for the RB-01 integration tests: PostgreSQL, Redis and the reference backend
under supervisord, on free loopback ports, in a throwaway ``PFLOW_OPS_HOME``. Every test starts
from a healed sandbox with a fresh restart budget and no locks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.sandbox.net import free_ports
from tests.integration import etcd_server

ROOT = Path(__file__).resolve().parents[2]
PFLOW = [sys.executable, "-m", "pflow_ops"]


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data


@dataclass
class Stack:
    home: Path
    env: dict[str, str]

    @property
    def endpoints(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.home / "sandbox" / "endpoints.json").read_text())
        return data

    def cli(self, *args: str, timeout: float = 180) -> Run:
        proc = subprocess.run(
            [*PFLOW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
            cwd=ROOT,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*PFLOW, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )

    def recover(self, *extra: str) -> Run:
        return self.cli(
            "recover",
            "rb-01",
            "--env",
            "local",
            "--output",
            "json",
            "-e",
            "backend_soak_seconds=1",
            *extra,
        )

    def health(self, timeout: float = 2.0) -> int | None:
        """HTTP status of the backend's /health, None when it does not answer."""
        try:
            with urllib.request.urlopen(
                self.endpoints["backend"]["health_url"], timeout=timeout
            ) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return None

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.cli("sandbox", "status", "--output", "json").stdout)
        return data

    def backend_pid(self) -> int | None:
        pid = self.status()["programs"]["backend"].get("pid")
        return int(pid) if pid else None

    def spend_budget(self, key: str, used: int) -> None:
        """Record `used` restarts of `key` a minute apart, as earlier runs would have: the
        budget's policy comes from the inventory, never from -e (restart_budget refuses it)."""
        path = self.home / "budget" / "restarts.json"
        path.parent.mkdir(mode=0o700, exist_ok=True)
        now = time.time()
        entries = [
            {"ts": now - 60 * (i + 1), "reason": "earlier run", "override": False}
            for i in reversed(range(used))
        ]
        path.write_text(json.dumps({"version": 1, "keys": {key: entries}}))

    def budget_entries(self) -> list[Any]:
        path = self.home / "budget" / "restarts.json"
        if not path.exists():
            return []
        data = json.loads(path.read_text())
        return [e for entries in data["keys"].values() for e in entries]


@contextmanager
def running_stack(prefix: str, *up_args: str, timeout: float = 180) -> Iterator[Stack]:
    """A sandbox in a throwaway PFLOW_OPS_HOME on free loopback ports, taken down afterwards;
    ``up_args`` are extra `sandbox up` options (e.g. --monitoring)."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    backend, pg, rd = free_ports(3)
    env = {**os.environ, "PFLOW_OPS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    st = Stack(home=home, env=env)
    ports = ["--backend-port", str(backend), "--postgres-port", str(pg), "--redis-port", str(rd)]
    up = st.cli("sandbox", "up", *up_args, *ports, timeout=timeout)
    assert up.rc == 0, up.stderr
    try:
        yield st
    finally:
        down = st.cli("sandbox", "down", "--purge", timeout=120)
        shutil.rmtree(home, ignore_errors=True)
        assert down.rc == 0, down.stderr


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack("pfo-it-") as st:
        yield st


@pytest.fixture
def sandbox(stack: Stack) -> Stack:
    healed = stack.cli("sandbox", "heal")
    assert healed.rc == 0, healed.stderr
    shutil.rmtree(stack.home / "budget", ignore_errors=True)
    shutil.rmtree(stack.home / "locks", ignore_errors=True)
    assert stack.health() == 200
    return stack


@pytest.fixture(scope="session")
def etcd() -> Iterator[etcd_server.EtcdServer]:
    """One real etcd for the session (tests/integration/etcd_server.py), shared by the
    coordination and incident store tests; each test clears the keys it uses."""
    with etcd_server.running() as server:
        yield server
