"""A real etcd (Debian's etcd-server, /usr/bin/etcd) on free loopback ports with a throwaway
data directory: the coordination tests and bench/coordination.py share one per session."""

from __future__ import annotations

import json
import shutil
import ssl
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


@dataclass(frozen=True)
class Pki:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path) -> Pki:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pflow-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        (directory / f"{name}.ext").write_text(ext + "\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
        )
    d = directory
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


@dataclass
class EtcdServer:
    proc: subprocess.Popen[bytes]
    client_port: int
    data_dir: Path
    pki: Pki | None = None  # serving TLS, client certificates required

    @property
    def url(self) -> str:
        """The inventory's ``pflow_coordination_url`` for this server."""
        return f"{'etcds' if self.pki else 'etcd'}://{HOST}:{self.client_port}"

    @property
    def http(self) -> str:
        return f"{'https' if self.pki else 'http'}://{HOST}:{self.client_port}"

    def healthy(self) -> bool:
        context = None
        if self.pki:
            context = ssl.create_default_context(cafile=str(self.pki.ca))
            context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        try:
            with urllib.request.urlopen(self.http + "/health", timeout=2, context=context) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False


def available() -> bool:
    return shutil.which(ETCD) is not None


@contextmanager
def running(timeout: float = 60.0, tls: bool = False) -> Iterator[EtcdServer]:
    """One single-member etcd; stopped and its data removed on exit. With ``tls`` it serves
    HTTPS only and requires a client certificate signed by its own throwaway CA."""
    data = Path(tempfile.mkdtemp(prefix="pflow-etcd-"))
    client, peer = free_ports(2)
    pki = make_pki(data) if tls else None
    scheme = "https" if pki else "http"
    tls_args = (
        [
            f"--cert-file={pki.server_cert}",
            f"--key-file={pki.server_key}",
            f"--trusted-ca-file={pki.ca}",
            "--client-cert-auth",
        ]
        if pki
        else []
    )
    log = (data / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [
            ETCD,
            "--name=pflow-test",
            f"--data-dir={data / 'member'}",
            f"--listen-client-urls={scheme}://{HOST}:{client}",
            f"--advertise-client-urls={scheme}://{HOST}:{client}",
            f"--listen-peer-urls=http://{HOST}:{peer}",
            f"--initial-advertise-peer-urls=http://{HOST}:{peer}",
            f"--initial-cluster=pflow-test=http://{HOST}:{peer}",
            "--log-level=error",
            *tls_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = EtcdServer(proc, client, data, pki)
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
    """The running (plain) server's version, for the figures."""
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
