# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""One authenticated Redis connection over a plain socket, for the modules that run several
commands (redis_diagnose, redis_tune). Built on redis_resp, so failures are classified the same
way as in redis_ping and dependency_check (refused, timeout, auth_failed, noauth, loading,
max_clients, busy, error).
"""

from __future__ import annotations

import time

from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_resp import (
    RedisReplyError,
    classify,
    encode,
    open_socket,
    read_reply,
)

# Commands these modules must never send, whatever a caller asks for: they destroy data
# (FLUSHALL, FLUSHDB), block the server on a big keyspace (KEYS) or crash/alter it (DEBUG).
FORBIDDEN = frozenset(("FLUSHALL", "FLUSHDB", "KEYS", "DEBUG", "SHUTDOWN"))

CONNECTION_OPTIONS = dict(
    host=dict(type="str", default="127.0.0.1"),
    port=dict(type="int", default=6379),
    user=dict(type="str"),
    password=dict(type="str", no_log=True),
    timeout=dict(type="float", default=3.0),
    tls=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=True, aliases=["validate_tls"]),
    ca_certs=dict(type="path"),
    client_cert_file=dict(type="path"),
    client_key_file=dict(type="path"),
)

SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


class ForbiddenCommand(ValueError):
    """A command on the FORBIDDEN list was about to be sent."""


def parse_size(value: object) -> int:
    """Redis memory notation (as in redis.conf: 1k = 1000, 1kb = 1024) to bytes."""
    text = str(value).strip().lower()
    digits = text.rstrip("kmgb")
    unit = text[len(digits) :]
    if not digits.isdigit() or unit not in SIZE_UNITS:
        raise ValueError(f"not a Redis memory size: {value!r}")
    return int(digits) * SIZE_UNITS[unit]


def human_size(num: object) -> str:
    """Bytes as an operator reads them: exact redis.conf units when exact, else one decimal."""
    value = int(num)  # type: ignore[call-overload]
    for unit, size in (("gb", 1024**3), ("mb", 1024**2)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    for unit, size in (("mb", 1024**2), ("kb", 1024)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value}b"


class RedisConnection:
    """Connect (with TLS when asked), AUTH with user+password or password only, then call()."""

    def __init__(self, params: dict):
        self.timeout = params["timeout"]
        self.where = f"{params['host']}:{params['port']}"
        sock = open_socket(params, lambda: self.timeout)
        try:
            self.sock = sock
            self.stream = sock.makefile("rb")
            if params.get("password"):
                self.call("AUTH", *([params["user"]] if params.get("user") else []), params["password"])
            # Redis answers a client over maxclients with an error and closes: PING surfaces it.
            self.call("PING")
        except BaseException:
            sock.close()
            raise

    def call(self, *parts: object):  # type: ignore[no-untyped-def]
        words = [str(p) for p in parts]
        if words[0].upper() in FORBIDDEN:
            raise ForbiddenCommand(f"refusing to send {words[0].upper()}")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(encode(*words))
        return read_reply(self.stream)

    def pipeline(self, commands: list) -> list:
        """Send every command, then read every reply; an error reply comes back as the exception."""
        for parts in commands:
            if str(parts[0]).upper() in FORBIDDEN:
                raise ForbiddenCommand(f"refusing to send {str(parts[0]).upper()}")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(b"".join(encode(*[str(p) for p in parts]) for parts in commands))
        replies: list = []
        for _command in commands:
            try:
                replies.append(read_reply(self.stream))
            except RedisReplyError as exc:
                replies.append(exc)
        return replies

    def try_call(self, *parts: object):  # type: ignore[no-untyped-def]
        """call(), with an error reply (NOPERM, unknown command, ...) returned instead of raised."""
        try:
            return self.call(*parts)
        except RedisReplyError as exc:
            return exc

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.sock.close()

    def __enter__(self) -> RedisConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(params: dict) -> tuple[RedisConnection | None, dict]:
    """(connection, connectivity). On failure the connection is None and connectivity says why."""
    started = time.monotonic()
    try:
        conn = RedisConnection(params)
    except (OSError, RedisReplyError, ValueError) as exc:
        state = classify(exc)
        reason = str(exc) or exc.__class__.__name__
        if state == "timeout":
            reason = f"no answer within {params['timeout']:g} s"
        where = f"{params['host']}:{params['port']}"
        return None, {"available": False, "state": state, "msg": f"Redis at {where}: {state} ({reason})"}
    latency_ms = (time.monotonic() - started) * 1000
    return conn, {
        "available": True,
        "state": "ok",
        "msg": f"Redis at {conn.where} accepted the connection and PING in {latency_ms:.1f} ms",
    }


def parse_info_all(text: str) -> dict:
    """Every field of an INFO reply; numbers as int/float, keyspace dbN lines as dicts."""
    fields: dict = {}
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if "=" in value and (key.startswith("db") or key.startswith("errorstat_")):
            fields[key] = {k: _number(v) for k, _sep, v in (p.partition("=") for p in value.split(","))}
        else:
            fields[key] = _number(value)
    return fields


def _number(value: str):  # type: ignore[no-untyped-def]
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def config_pairs(reply: object) -> dict:
    """CONFIG GET's flat [name, value, ...] array as a dict."""
    if not isinstance(reply, list):
        return {}
    return {str(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
