"""supervisord's XML-RPC API over its unix socket, typed.

The transport stays hand-written (issue 17): supervisor's own ``supervisor.xmlrpc.
SupervisorTransport`` opens its ``UnixStreamHTTPConnection`` without a timeout (its
``connect()`` calls ``socket.connect`` and the response is read with no deadline), so a
supervisord that accepts the connection and never answers would hang ``sandbox status`` and
every control call forever; measured against a listening socket that never answers: still
blocked after 3 s, where this transport raises ``TimeoutError`` at its ``timeout``. The fault
codes are supervisor's own constants (``supervisor.xmlrpc.Faults``), not copied numbers.
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import Faults

from pflow_ops.sandbox.errors import SandboxError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._path, self._timeout)


class Supervisor:
    """Thin typed wrapper over the ``supervisor.*`` XML-RPC namespace."""

    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        transport = _UnixTransport(str(socket_path), timeout)
        self._proxy = xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport)

    def _call(self, method: str, *args: Any) -> Any:
        return getattr(self._proxy.supervisor, method)(*args)

    def is_up(self) -> bool:
        """True when supervisord answers and is RUNNING (not starting up or shutting down)."""
        if not self.socket_path.exists():
            return False
        try:
            state = cast(dict[str, Any], self._call("getState"))
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return False
        return state.get("statename") == "RUNNING"

    def pid(self) -> int:
        return int(self._call("getPID"))

    def all_info(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("getAllProcessInfo"))

    def info(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("getProcessInfo", name))

    def start(self, name: str) -> bool:
        """Start ``name`` and wait for it to pass startsecs; False when it was already running."""
        try:
            self._call("startProcess", name, True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.ALREADY_STARTED:
                return False
            raise SandboxError(f"supervisord could not start {name}: {fault.faultString}") from None
        return True

    def stop(self, name: str) -> bool:
        """Stop ``name`` and wait; False when it was not running."""
        try:
            self._call("stopProcess", name, True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.NOT_RUNNING:
                return False
            raise SandboxError(f"supervisord could not stop {name}: {fault.faultString}") from None
        return True

    def stop_all(self) -> None:
        self._call("stopAllProcesses", True)

    def shutdown(self) -> None:
        self._call("shutdown")
