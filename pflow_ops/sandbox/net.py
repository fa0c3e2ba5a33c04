"""Loopback networking helpers: port availability, small HTTP GETs, bounded polling."""

from __future__ import annotations

import errno
import http.client
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pflow_ops.sandbox.errors import SandboxError
from pflow_ops.sandbox.layout import HOST, PORT_ENV, SandboxPorts

T = TypeVar("T")


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether a server could not bind ``host:port`` (SO_REUSEADDR, as the services use it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise SandboxError(f"cannot check port {port} on {host}: {exc.strerror}") from None
    return False


def free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct ports the kernel has free on ``host`` right now (all bound at once,
    then released, so they differ from each other)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def check_ports_free(ports: SandboxPorts, host: str = HOST) -> None:
    """Raise naming the first port that is taken and the service that wanted it."""
    for service, port in ports.items():
        if port_in_use(port, host):
            raise SandboxError(
                f"port {port} on {host} (wanted by the sandbox {service}) is already in use; "
                f"free it or choose another port with `sandbox up --{service}-port N` "
                f"or {PORT_ENV[service]}"
            )


@dataclass(frozen=True)
class HttpResult:
    status: int | None
    body: str
    error: str | None

    def json(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


def http_get(port: int, path: str, timeout: float = 2.0, host: str = HOST) -> HttpResult:
    """GET without raising: a refused or silent server is a result, not an exception."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return HttpResult(resp.status, resp.read().decode(errors="replace"), None)
    except TimeoutError:
        return HttpResult(None, "", f"no answer within {timeout:g}s")
    except ConnectionRefusedError:
        return HttpResult(None, "", "connection refused")
    except (OSError, http.client.HTTPException) as exc:
        return HttpResult(None, "", f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``probe`` until it returns something other than None, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise SandboxError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
