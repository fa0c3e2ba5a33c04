"""A real etcd (Debian's etcd-server, /usr/bin/etcd) on free loopback ports with a throwaway
data directory: the coordination tests and bench/coordination.py share one per session."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pflow_ops.sandbox.net import free_ports

ETCD = "/usr/bin/etcd"
HOST = "127.0.0.1"


@dataclass
class EtcdServer:
    proc: subprocess.Popen[bytes]
    client_port: int
    data_dir: Path

    @property
    def url(self) -> str:
        """The inventory's ``pflow_coordination_url`` for this server."""
        return f"etcd://{HOST}:{self.client_port}"

    @property
    def http(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.http + "/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False


def available() -> bool:
    return shutil.which(ETCD) is not None


@contextmanager
def running(timeout: float = 60.0) -> Iterator[EtcdServer]:
    """One single-member etcd; stopped and its data removed on exit."""
    data = Path(tempfile.mkdtemp(prefix="pflow-etcd-"))
    client, peer = free_ports(2)
    log = (data / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [
            ETCD,
            "--name=pflow-test",
            f"--data-dir={data / 'member'}",
            f"--listen-client-urls=http://{HOST}:{client}",
            f"--advertise-client-urls=http://{HOST}:{client}",
            f"--listen-peer-urls=http://{HOST}:{peer}",
            f"--initial-advertise-peer-urls=http://{HOST}:{peer}",
            f"--initial-cluster=pflow-test=http://{HOST}:{peer}",
            "--log-level=error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = EtcdServer(proc, client, data)
    try:
        deadline = time.monotonic() + timeout
        while not server.healthy():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start: {(data / 'etcd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def version(server: EtcdServer) -> str:
    """The running server's version, for the figures."""
    with urllib.request.urlopen(server.http + "/version", timeout=5) as resp:
        return str(json.loads(resp.read()).get("etcdserver", ""))


def enable_auth(server: EtcdServer, user: str, password: str) -> None:
    """Turn authentication on with a root user (etcd's own API, through etcd3gw)."""
    import etcd3gw

    client = etcd3gw.Etcd3Client(host=HOST, port=server.client_port, api_path="/v3/")
    for path, body in (
        ("/auth/role/add", {"name": "root"}),
        ("/auth/user/add", {"name": user, "password": password}),
        ("/auth/user/grant", {"user": user, "role": "root"}),
        ("/auth/enable", {}),
    ):
        client.post(client.get_url(path), json=body)
