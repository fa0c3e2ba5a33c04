# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervisord's XML-RPC API as supervisor_program and supervisor_program_info use it: the
connection (unix socket or HTTP, basic auth, a timeout), one call with transport problems told
apart from refusals, and the read-only view of a program (its state and the tail of its log).

Written on the standard library's xmlrpc.client rather than the ``supervisor`` package because
that package is a server (and its client needs the whole of it) and targets do not have it;
supervisord's own ``supervisorctl`` does the same thing over the same transport.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import xmlrpc.client
from urllib.parse import urlsplit

RPC_TIMEOUT = 10.0  # calls never block in supervisord: start/stop use wait=False and we poll
# supervisord fault codes (supervisor.xmlrpc.Faults)
SHUTDOWN_STATE = 6
BAD_NAME = 10
NO_FILE = 20
# States after which supervisord's main log says how the process ended ("exited: NAME (...)").
EXITED = ("EXITED", "BACKOFF", "FATAL")
MAIN_LOG_BYTES = 32 * 1024


class ModuleFailure(Exception):
    def __init__(self, msg: str, **result: object) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


class Unreachable(Exception):
    pass


class _UnixHTTPConnection(http.client.HTTPConnection):
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


class _Transport(xmlrpc.client.Transport):
    """xmlrpc transport with a timeout and, for unix:// URLs, a unix socket."""

    def __init__(self, socket_path: str | None, headers: list[tuple[str, str]]) -> None:
        super().__init__(headers=headers)
        self._socket_path = socket_path

    def make_connection(self, host):  # type: ignore[no-untyped-def]
        if self._connection[1] is not None:
            return self._connection[1]
        if self._socket_path:
            conn = _UnixHTTPConnection(self._socket_path, RPC_TIMEOUT)
        else:
            chost, self._extra_headers, _x509 = self.get_host_info(host)
            conn = http.client.HTTPConnection(chost, timeout=RPC_TIMEOUT)
        self._connection = host, conn
        return conn


def connect(server_url: str, username: str | None, password: str | None) -> xmlrpc.client.ServerProxy:
    headers = []
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
        headers.append(("Authorization", "Basic " + token))
    parts = urlsplit(server_url)
    if parts.scheme == "unix":
        path = server_url[len("unix://"):]
        if not path.startswith("/"):
            raise ModuleFailure(f"server_url {server_url!r}: a unix socket URL needs an absolute path")
        return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=_Transport(path, headers),
                                         allow_none=True)
    if parts.scheme == "http" and parts.hostname:
        uri = server_url if parts.path not in ("", "/") else server_url.rstrip("/") + "/RPC2"
        return xmlrpc.client.ServerProxy(uri, transport=_Transport(None, headers), allow_none=True)
    raise ModuleFailure(f"server_url {server_url!r}: expected unix:///path/to.sock or http://host:port")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "socket file does not exist (is supervisord running?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is supervisord running?)"
    if isinstance(exc, PermissionError):
        return "permission denied on the socket (run with become, or fix the socket's chmod/chown)"
    if isinstance(exc, socket.timeout):
        return f"no answer within {RPC_TIMEOUT:g} s"
    if isinstance(exc, xmlrpc.client.Fault):
        return f"supervisord refused the call: {exc.faultString}"
    return f"{type(exc).__name__}: {exc}"


def call(server_url: str, fn, *args):  # type: ignore[no-untyped-def]
    """One RPC; transport problems become Unreachable, auth problems a failure."""
    try:
        return fn(*args)
    except xmlrpc.client.Fault as exc:
        if exc.faultCode == SHUTDOWN_STATE:
            raise Unreachable("supervisord is shutting down") from exc
        raise
    except xmlrpc.client.ProtocolError as exc:
        if exc.errcode == 401:
            raise ModuleFailure(f"supervisord at {server_url} rejected the credentials (HTTP 401)",
                                reachable=True) from exc
        raise Unreachable(f"HTTP {exc.errcode} {exc.errmsg}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(_reason(exc)) from exc


def shape(info: dict) -> dict:
    state = info.get("statename")
    start, now = info.get("start") or 0, info.get("now") or 0
    running = state in ("RUNNING", "STOPPING") and start > 0
    return {
        "name": info.get("name"),
        "group": info.get("group"),
        "state": state,
        "pid": info.get("pid") or None,
        "exitstatus": info.get("exitstatus"),
        "start": start,
        "stop": info.get("stop") or 0,
        "now": now,
        "uptime_s": max(now - start, 0) if running else None,
        "spawnerr": info.get("spawnerr") or "",
        "description": info.get("description") or "",
        "exit_reason": "",
    }


def exit_reason(proxy, server_url: str, name: str, info: dict) -> str:  # type: ignore[no-untyped-def]
    """supervisord's own words for how the last process ended ("exit status 1; not expected",
    "terminated by SIGKILL; not expected"), from its main log; empty when unknown. getProcessInfo
    says only "exit status -1" for a process killed by a signal."""
    if info.get("statename") not in EXITED:
        return ""
    try:
        text = call(server_url, proxy.supervisor.readLog, -MAIN_LOG_BYTES, 0)
    except Exception:  # an unreadable main log must not hide the process state
        return ""
    found = re.findall(r"exited: %s \(([^)]*)\)" % re.escape(name.rsplit(":", 1)[-1]), text)
    return found[-1] if found else ""


def described(proxy, server_url: str, name: str, info: dict) -> dict:  # type: ignore[no-untyped-def]
    out = shape(info)
    out["exit_reason"] = exit_reason(proxy, server_url, name, info)
    return out


def get_info(proxy, server_url: str, name: str) -> dict:  # type: ignore[no-untyped-def]
    try:
        return call(server_url, proxy.supervisor.getProcessInfo, name)
    except xmlrpc.client.Fault as exc:
        if exc.faultCode != BAD_NAME:
            raise ModuleFailure(f"getProcessInfo({name!r}) failed: {exc.faultString}", reachable=True) from exc
    known = sorted(
        p["name"] if p["group"] == p["name"] else f"{p['group']}:{p['name']}"
        for p in call(server_url, proxy.supervisor.getAllProcessInfo)
    )
    raise ModuleFailure(f"supervisord at {server_url} has no program {name!r}; known programs: "
                        f"{', '.join(known) or '(none)'}", reachable=True)


def tail_log(proxy, server_url: str, name: str, lines: int) -> tuple[list[str], str | None]:  # type: ignore[no-untyped-def]
    if lines <= 0:
        return [], None
    nbytes = min(max(lines * 256, 4096), 256 * 1024)
    try:
        text, _offset, overflow = call(server_url, proxy.supervisor.tailProcessStdoutLog, name, 0, nbytes)
    except xmlrpc.client.Fault as exc:
        if exc.faultCode == NO_FILE:
            return [], None  # stdout_logfile=NONE, or nothing logged yet
        return [], f"could not read the log of {name}: {exc.faultString}"
    except Exception as exc:  # a log with bytes XML cannot carry must not hide the process state
        return [], f"could not read the log of {name}: {_reason(exc)}"
    out = text.splitlines()
    if overflow and out:
        out = out[1:]  # the buffer starts mid-line
    return out[-lines:], None


def observe(proxy, server_url: str, name: str, log_lines: int) -> tuple[dict, dict, list[str]]:  # type: ignore[no-untyped-def]
    """supervisord's raw view of the program, the read-only result built on it (the whole of
    supervisor_program_info, and the start of every supervisor_program result), and warnings."""
    before = get_info(proxy, server_url, name)
    log_tail, warning = tail_log(proxy, server_url, name, log_lines)
    result = {"changed": False, "reachable": True, "program": described(proxy, server_url, name, before),
              "log_tail": log_tail}
    return before, result, [warning] if warning else []


def unreachable_msg(server_url: str, exc: Unreachable) -> str:
    return f"supervisord at {server_url} is unreachable: {exc}"


def check_log_lines(log_lines: int) -> None:
    if log_lines < 0:
        raise ModuleFailure("log_lines must be >= 0")


def read_program(params: dict) -> tuple[dict, list[str]]:
    """supervisor_program_info: report, change nothing, and do not fail when supervisord is
    unreachable (``reachable=false`` and the reason: a diagnostic must say what it saw)."""
    check_log_lines(params["log_lines"])
    server_url = params["server_url"]
    proxy = connect(server_url, params.get("username"), params.get("password"))
    try:
        _before, result, warnings = observe(proxy, server_url, params["name"], params["log_lines"])
        return result, warnings
    except Unreachable as exc:
        return {"changed": False, "reachable": False, "program": None, "log_tail": [],
                "msg": unreachable_msg(server_url, exc)}, []
    finally:
        proxy("close")()


def connection_argument_spec() -> dict:
    """The options both modules take to reach supervisord."""
    return dict(
        name=dict(type="str", required=True),
        server_url=dict(type="str", required=True),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        log_lines=dict(type="int", default=50),
    )
