"""A private Docker engine: one ``dockerd`` with its own data root, exec root and unix socket.

It never touches the host's iptables or bridge (containers use host networking) and uses the
``vfs`` storage driver, which works inside another container. Tests and ``sandbox up --runtime
docker`` (when no daemon is reachable) start one; :meth:`Engine.stop` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from pflow_ops.sandbox.errors import SandboxError

UNIX_SOCKET_MAX = 107


def dockerd_path() -> str | None:
    return shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")


def ping(base_url: str, timeout: float = 2) -> bool:
    """Whether a Docker engine answers at ``base_url``."""
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, timeout=timeout)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()


@dataclass
class Engine:
    """``dockerd`` rooted at ``root`` (kept short: the socket path must fit in 107 bytes)."""

    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "d.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.root / "d.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def argv(self, binary: str) -> list[str]:
        return [
            binary,
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "-H", self.base_url,
            "--pidfile", str(self.pidfile),
        ]  # fmt: skip

    def start(self, timeout: float = 60) -> None:
        """Start the daemon unless it already answers; wait for its socket."""
        if ping(self.base_url):
            return
        if os.geteuid() != 0:
            raise SandboxError("a private Docker engine needs root (dockerd runs as root)")
        binary = dockerd_path()
        if binary is None:
            raise SandboxError("dockerd not found; install it with: apt-get install docker.io")
        if len(os.fsencode(self.socket)) > UNIX_SOCKET_MAX:
            raise SandboxError(f"docker socket path {self.socket} is too long; use a shorter dir")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                self.argv(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not ping(self.base_url, timeout=1):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._kill(proc.pid)
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-1:]
                raise SandboxError(f"dockerd did not start: {tail[0] if tail else 'no output'}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Stop the daemon (it stops its containers first) and its containerd."""
        pid = self.pid()
        if pid is not None:
            self._kill(pid, timeout)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    @staticmethod
    def _kill(pid: int, timeout: float = 30) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def purge(self) -> None:
        """Remove the engine's directories (after :meth:`stop`), unmounting leftovers first."""
        exec_root = self.root / "exec"
        for mount in _mounts_under(self.root):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    try:
        points = [part.mountpoint for part in psutil.disk_partitions(all=True)]
    except OSError:
        return []
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def client(base_url: str, timeout: float = 30) -> Any:
    import docker

    return docker.DockerClient(base_url=base_url, timeout=timeout)
