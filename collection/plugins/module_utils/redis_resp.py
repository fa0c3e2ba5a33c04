# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Check that Redis answers PING, over a plain socket (standard library only).

Shared by the redis_ping and dependency_check modules; open_socket() is the one way every Redis
module of the collection connects (plain or TLS). The RESP client stays hand-written after
weighing redis-py, the driver community.general's Redis modules use (issue 17), on measured
grounds:

- redis-py (7.4) retries by default: against a port that accepts and never answers, its ping()
  with a 0.5 s socket timeout took 6.78 s and 13.88 s in two measurements with its default
  retries, 0.50 s with retries off;
- its ping() is not one round trip but AUTH, two CLIENT SETINFO and PING, each under its own
  socket timeout with no deadline over the whole: against a server answering each command in
  0.8 s, ping() with a 1 s socket timeout took 3.21 s. dependency_check needs one hard bound
  over connect, AUTH, PING and INFO together;
- the modules run on the managed hosts, which need nothing beyond the standard library this way.

This speaks just enough RESP2 to tell the failure reasons apart, with a hard timeout, so a dead or
hung Redis costs a bounded, known time.
"""

from __future__ import annotations

import socket
import ssl
import time

# Error prefixes Redis sends, mapped to the state an on-call engineer acts on.
ERROR_STATES = (
    ("WRONGPASS", "auth_failed"),
    # Redis 6+ to a password-only AUTH when the default user has no password: not a wrong
    # password, and nothing to do with a busy server. The sender is misconfigured.
    ("ERR AUTH <password> called without any password configured", "auth_not_required"),
    ("ERR invalid password", "auth_failed"),
    ("ERR invalid username-password", "auth_failed"),
    ("NOAUTH", "noauth"),
    ("LOADING", "loading"),
    ("ERR max number of clients reached", "max_clients"),
    ("BUSY", "busy"),
)


class RedisReplyError(Exception):
    """Redis answered with an error reply."""


def encode(*parts: str) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def read_reply(stream):  # type: ignore[no-untyped-def]
    """One RESP2 reply (simple string, error, integer, bulk string, array of those)."""
    line = stream.readline()
    if not line:
        raise ConnectionResetError("connection closed by Redis")
    kind, body = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else stream.read(size + 2)[:-2].decode(errors="replace")
    if kind == b"*":
        size = int(body)
        return None if size < 0 else [read_reply(stream) for _item in range(size)]
    raise ConnectionError(f"unexpected reply from Redis: {line[:40]!r}")


def acl_rule(error: object) -> str:
    """The ACL rule a NOPERM reply asks for ("+memory|usage"), or "" for any other reply.

    Redis 7 names the command (and subcommand) it refused: "NOPERM this user has no permissions
    to run the 'memory|usage' command"; key and channel refusals name no command.
    """
    text = str(error)
    if not text.startswith("NOPERM"):
        return ""
    marker = "permissions to run the '"
    start = text.find(marker)
    if start < 0:
        return ""
    name = text[start + len(marker) :].split("'", 1)[0]
    return f"+{name}" if name else ""


def classify(exc: BaseException) -> str:
    if isinstance(exc, RedisReplyError):
        text = str(exc)
        for prefix, state in ERROR_STATES:
            if text.startswith(prefix):
                return state
        return "error"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    # The handshake failed: the server's certificate (chain or host name) did not verify, or the
    # server turned ours away. Redis answered; a restart would not change it.
    if isinstance(exc, ssl.SSLError):
        return "tls_failed"
    # socket.timeout is TimeoutError only from Python 3.10 on: targets may run older ones.
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    return "error"


def parse_info(text: str) -> dict:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("redis_version", "redis_mode", "uptime_in_seconds", "role"):
            fields[key] = int(value) if value.isdigit() else value
    return fields


TLS_FILES = ("ca_certs", "client_cert_file", "client_key_file")


def tls_settings(params: dict):  # type: ignore[no-untyped-def]
    """What TLS to set up for I(params): None for a plain connection, else a dict of
    cafile, certfile, keyfile and verify. Raises ValueError for options that cannot work together,
    before anything is sent: certificates given without I(tls) would silently go unused."""
    given = [name for name in TLS_FILES if params.get(name)]
    if not params.get("tls"):
        if given:
            raise ValueError(f"{', '.join(given)} given without tls=true")
        return None
    if params.get("client_key_file") and not params.get("client_cert_file"):
        raise ValueError("client_key_file given without client_cert_file")
    return {
        "cafile": params.get("ca_certs") or None,
        "certfile": params.get("client_cert_file") or None,
        "keyfile": params.get("client_key_file") or None,
        "verify": params.get("validate_certs", True) is not False,
    }


def open_socket(params: dict, step_timeout):  # type: ignore[no-untyped-def]
    """Connect to I(params) host:port, with TLS when asked to; the one connect of every Redis check.

    I(step_timeout)() gives the timeout of the next step (the TCP connect, then the handshake).
    A certificate the CA does not vouch for, or a host name it does not name, fails the handshake
    (ssl.SSLCertVerificationError, an OSError): TLS fails closed.
    """
    settings = tls_settings(params)
    sock = socket.create_connection((params["host"], params["port"]), timeout=step_timeout())
    if settings is None:
        return sock
    try:
        context = ssl.create_default_context(cafile=settings["cafile"])
        if not settings["verify"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if settings["certfile"]:
            context.load_cert_chain(settings["certfile"], settings["keyfile"])
        sock.settimeout(step_timeout())
        return context.wrap_socket(sock, server_hostname=params["host"])
    except BaseException:
        sock.close()
        raise


def _step_timeout(timeout: float, deadline: float | None) -> float:
    """Timeout for the next socket operation: I(timeout), cut to what is left of the deadline."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("deadline reached")  # not TimeoutError before 3.10: see classify()
    return min(timeout, left)


def ping(params: dict, deadline: float | None = None) -> dict:
    """Connect, AUTH when asked to, PING, then INFO server. Raises on any failure.

    Without I(deadline), I(timeout) bounds the connection and each reply; with it (a
    time.monotonic() value), no step may end after it either.
    """
    started = time.monotonic()
    timeout = params["timeout"]
    sock = open_socket(params, lambda: _step_timeout(timeout, deadline))
    stream = None
    try:
        stream = sock.makefile("rb")

        def call(*parts: str):  # type: ignore[no-untyped-def]
            sock.settimeout(_step_timeout(timeout, deadline))
            sock.sendall(encode(*parts))
            return read_reply(stream)

        if params.get("password"):
            call("AUTH", *([params["user"]] if params.get("user") else []), params["password"])
        ping_started = time.monotonic()
        reply = call("PING")
        latency_ms = (time.monotonic() - ping_started) * 1000
        if reply != "PONG":
            raise ConnectionError(f"unexpected PING reply {reply!r}")
        try:
            server = parse_info(call("INFO", "server") or "")
        except RedisReplyError:
            server = {}  # a restricted ACL user may not run INFO: PING is what matters here
        return {
            "available": True,
            "state": "ok",
            "latency_ms": round(latency_ms, 3),
            "server": server,
            "msg": f"Redis {server.get('redis_version', '?')} at {params['host']}:{params['port']} "
            f"answered PING in {latency_ms:.1f} ms",
            "elapsed_s": round(time.monotonic() - started, 3),
        }
    finally:
        if stream is not None:
            stream.close()
        sock.close()


def check(params: dict, budget: float | None = None) -> dict:
    """ping() that never raises for an unavailable Redis: the failure comes back classified.

    I(budget), in seconds, caps the whole check (connect, AUTH, PING, INFO) on top of the
    per-step I(timeout).
    """
    where = f"{params['host']}:{params['port']}"
    deadline = None if budget is None else time.monotonic() + budget
    try:
        return ping(params, deadline)
    except (OSError, RedisReplyError, ValueError) as exc:
        state = classify(exc)
        reason = str(exc) or exc.__class__.__name__
        if state == "timeout":
            reason = f"no answer within {params['timeout'] if budget is None else budget:g} s"
        return {"available": False, "state": state, "msg": f"Redis at {where}: {state} ({reason})"}
