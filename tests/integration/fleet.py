"""A fleet of sandbox backends for the rolling-recovery tests and the fleet benchmark.

N reference backends (``python -m pflow_ops.sandbox.backend``), each a program of ONE private
supervisord on its own loopback port, all sharing one sandbox's PostgreSQL and Redis. Each
inventory host (``backend-01`` ...) is a local connection whose ``backend_service_name`` and
``backend_health_url`` name one instance; several hosts may share an instance (the benchmark's
50 hosts), since the sandbox PostgreSQL allows 50 connections and every backend keeps one.

``project()`` lays out a throwaway pflow-ops project (``PFLOW_OPS_PROJECT``): the checkout's
catalogue, playbooks, collection and ansible.cfg, linked, plus ``inventories/fleet/hosts.yml``,
so the real ``pflow-ops recover|diagnose rb-01 --env fleet`` runs against the fleet.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from pflow_ops.sandbox import render
from pflow_ops.sandbox.net import free_ports
from pflow_ops.sandbox.render import BACKEND_DSN_ENV
from pflow_ops.sandbox.rpc import Supervisor

ROOT = Path(__file__).resolve().parents[2]
ENV_NAME = "fleet"
# What a throwaway project needs from the checkout; inventories/ is its own.
PROJECT_LINKS = ("ansible.cfg", "catalogue.yml", "playbooks", "collection", "collections")
# Short windows keep a 20-host rollout in seconds; the criteria are the runbook's own.
FAST_VARS: dict[str, Any] = {
    "backend_health_timeout": 1.0,
    "backend_health_gate_timeout": 4,
    "backend_health_gate_interval": 0.25,
    "backend_soak_seconds": 0.5,
    "backend_soak_interval": 0.25,
    "backend_probe_samples": 3,
    "backend_dependency_timeout": 2.0,
    "backend_log_lines": 5,
}


@dataclass(frozen=True)
class Instance:
    program: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Fleet:
    """The instances, their supervisord, and ports held to make a restart fail."""

    root: Path
    endpoints: dict[str, Any]
    instances: list[Instance]
    hosts: dict[str, Instance]
    _blockers: dict[str, socket.socket] = field(default_factory=dict)

    @property
    def socket_path(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def conf_path(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(self.socket_path, timeout=30.0)

    # --- lifecycle ---------------------------------------------------------------------

    def program_section(self, inst: Instance) -> str:
        pg, rd = self.endpoints["postgres"], self.endpoints["redis"]
        argv = [sys.executable, "-m", "pflow_ops.sandbox.backend", "--port", str(inst.port)]
        argv += ["--redis-url", f"redis://{rd['host']}:{rd['port']}/0"]
        auth = f"{quote(pg['app_user'], safe='')}:{quote(pg['app_password'], safe='')}"
        dsn = f"postgresql://{auth}@{pg['host']}:{pg['port']}/{pg['database']}"
        env = {BACKEND_DSN_ENV: dsn, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        # As the sandbox's backend: no autorestart (a crash stays a crash until a runbook acts),
        # startsecs 1 with no retries (a backend that cannot bind its port ends FATAL).
        lines = [
            f"[program:{inst.program}]",
            f"command={render.command(argv)}",
            "environment=" + ",".join(f'{k}="{render.sv(v)}"' for k, v in env.items()),
            f"directory={render.sv(self.root)}",
            "autostart=true",
            "autorestart=false",
            "startsecs=1",
            "startretries=0",
            "stopsignal=TERM",
            "stopwaitsecs=3",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={render.sv(self.root / 'logs' / inst.program)}.log",
            "stdout_logfile_maxbytes=1MB",
            "stdout_logfile_backups=0",
        ]
        return "\n".join(lines)

    def supervisord_conf(self) -> str:
        head = [
            "[unix_http_server]",
            f"file={render.sv(self.socket_path)}",
            "chmod=0700",
            "[supervisord]",
            f"logfile={render.sv(self.root / 'logs' / 'supervisord.log')}",
            f"pidfile={render.sv(self.root / 'supervisord.pid')}",
            f"childlogdir={render.sv(self.root / 'logs')}",
            f"directory={render.sv(self.root)}",
            "identifier=pflow-fleet",
            "nodaemon=false",
            "umask=077",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        ]
        return "\n".join([*head, *(self.program_section(i) for i in self.instances)]) + "\n"

    def start(self, timeout: float = 120.0) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.supervisord_conf(), encoding="utf-8")
        self.conf_path.chmod(0o600)  # it holds the application's database password
        daemon = Path(sys.executable).parent / "supervisord"
        subprocess.run([str(daemon), "-c", str(self.conf_path)], check=True, timeout=30)
        self.wait_healthy(timeout)

    def shutdown(self) -> None:
        self.unblock_all()
        pidfile = self.root / "supervisord.pid"
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text().strip())
        try:
            self.supervisor.stop_all()
            self.supervisor.shutdown()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # supervisord stops its programs on SIGTERM
        _wait(lambda: not Path(f"/proc/{pid}").exists(), 30, "fleet supervisord to exit")

    # --- state of one instance ---------------------------------------------------------

    def info(self, host: str) -> dict[str, Any]:
        return self.supervisor.info(self.hosts[host].program)

    def pid(self, host: str) -> int:
        return int(self.info(host)["pid"])

    def settled_down(self, host: str, timeout: float = 15.0) -> str:
        """The state a failed start ends in (FATAL, or EXITED past startsecs), once it ends."""
        program = self.hosts[host].program
        _wait(
            lambda: self.supervisor.info(program)["statename"] in ("FATAL", "EXITED"),
            timeout,
            program,
        )
        return str(self.supervisor.info(program)["statename"])

    def health(self, host: str) -> int | None:
        return http_status(self.hosts[host].base_url + "/health")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        for inst in self.instances:
            url = inst.base_url + "/health"
            _wait(lambda u=url: http_status(u) == 200, timeout, f"{inst.program} /health")

    # --- faults ------------------------------------------------------------------------

    def crash(self, host: str) -> None:
        """SIGKILL the instance, as a crash would; supervisord records it EXITED."""
        program = self.hosts[host].program
        os.kill(self.pid(host), signal.SIGKILL)
        _wait(lambda: self.supervisor.info(program)["statename"] == "EXITED", 10, program)

    def block(self, host: str) -> None:
        """Crash the instance and hold its port, so its next start fails (address in use)."""
        self.crash(host)
        # A stray process holding the port: it listens (so the backend's bind fails even with
        # SO_REUSEADDR, and despite the killed backend's TIME_WAIT connections) but never answers.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.hosts[host].port))
        sock.listen(1)
        self._blockers[host] = sock

    def unblock_all(self) -> None:
        for sock in self._blockers.values():
            sock.close()
        self._blockers.clear()

    def heal(self) -> None:
        """Every instance running and healthy again."""
        self.unblock_all()
        for inst in self.instances:
            if self.supervisor.info(inst.program)["statename"] != "RUNNING":
                self.supervisor.start(inst.program)
        self.wait_healthy()

    # --- inventory and project ---------------------------------------------------------

    def inventory(
        self, extra_vars: dict[str, Any] | None = None, sample_api: bool = True
    ) -> dict[str, Any]:
        """Hosts in name order (the rollout's order); ``sample_api`` adds the error-rate probe."""
        pg, rd = self.endpoints["postgres"], self.endpoints["redis"]
        hosts: dict[str, dict[str, Any]] = {}
        for host, inst in self.hosts.items():
            hosts[host] = {
                "backend_service_name": inst.program,
                "backend_health_url": f"{inst.base_url}/health",
            }
            if sample_api:
                hosts[host]["backend_probe_url"] = f"{inst.base_url}/api/items/1"
        group_vars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "pflow_env": ENV_NAME,
            "backend_service_manager": "supervisord",
            "backend_supervisor_server_url": f"unix://{self.socket_path}",
            "backend_data_paths": [str(self.root)],
            "backend_postgres_host": pg["host"],
            "backend_postgres_port": pg["port"],
            "backend_postgres_database": pg["database"],
            "backend_postgres_user": pg["monitor_user"],
            "backend_postgres_password": pg["monitor_password"],
            "backend_redis_host": rd["host"],
            "backend_redis_port": rd["port"],
            **FAST_VARS,
            **(extra_vars or {}),
        }
        return {"all": {"children": {"pivotal_backend": {"hosts": hosts}}, "vars": group_vars}}

    def project(
        self, where: Path, extra_vars: dict[str, Any] | None = None, sample_api: bool = True
    ) -> Path:
        """A pflow-ops project whose only environment is this fleet; returns its root."""
        where.mkdir(parents=True, exist_ok=True)
        for name in PROJECT_LINKS:
            link = where / name
            if not link.exists():
                link.symlink_to(ROOT / name)
        env_dir = where / "inventories" / ENV_NAME
        env_dir.mkdir(parents=True, exist_ok=True)
        hosts = env_dir / "hosts.yml"
        hosts.write_text(yaml.safe_dump(self.inventory(extra_vars, sample_api), sort_keys=False))
        hosts.chmod(0o600)  # it holds the monitoring role's password
        return where


def build(root: Path, endpoints: dict[str, Any], hosts: int, instances: int) -> Fleet:
    """``hosts`` inventory hosts over ``instances`` backends (round robin), ports free now."""
    count = min(hosts, instances)
    ports = free_ports(count)
    insts = [Instance(f"backend-{i + 1:02d}", port) for i, port in enumerate(ports)]
    names = {f"backend-{i + 1:02d}": insts[i % count] for i in range(hosts)}
    return Fleet(root=root, endpoints=endpoints, instances=insts, hosts=names)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return None


def _wait(ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)
