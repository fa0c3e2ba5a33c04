#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_ping
short_description: Check that Redis answers PING, and tell apart why it does not
version_added: 0.1.0
description:
  - Opens one connection with a hard timeout, authenticates when asked to (password, or ACL user
    and password), sends C(PING) and, when that works, C(INFO server).
  - Speaks RESP over a plain socket (standard library only), so a dead or hung Redis costs at most
    I(timeout) seconds, with no client-library retries.
  - A diagnostic: it never changes anything and does not fail when Redis is unavailable; it returns
    C(available=false) with the reason classified.
author:
  - pflow-ops team
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  host:
    description: Redis host.
    type: str
    default: 127.0.0.1
  port:
    description: Redis port.
    type: int
    default: 6379
  user:
    description: ACL user (Redis 6+); with I(password) sends C(AUTH user password).
    type: str
  password:
    description: Password; without I(user) sends C(AUTH password).
    type: str
  timeout:
    description: Seconds for the connection and for each reply.
    type: float
    default: 3
  tls:
    description: Connect with TLS.
    type: bool
    default: false
  validate_certs:
    description: Verify the server certificate when I(tls=true).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Validate that Redis answers PING
  pivotal.flow_ops.redis_ping:
    host: cache-01.prod.internal
    port: 6379
    password: "{{ vault_redis_password }}"
    timeout: 2
  register: redis_ping
"""

RETURN = r"""
available:
  description: Redis answered PING with PONG.
  returned: always
  type: bool
state:
  description: >-
    C(ok), C(refused), C(timeout), C(auth_failed) (WRONGPASS or invalid password), C(noauth)
    (a password is required), C(loading) (the dataset is still being loaded), C(max_clients),
    C(busy) (a script is running), or C(error).
  returned: always
  type: str
msg:
  description: One line saying what happened.
  returned: always
  type: str
latency_ms:
  description: Round trip of the PING in milliseconds.
  returned: when available
  type: float
server:
  description: Selected fields of C(INFO server) (redis_version, redis_mode, uptime_in_seconds).
  returned: when available
  type: dict
"""

import socket
import ssl
import time

from ansible.module_utils.basic import AnsibleModule

# Error prefixes Redis sends, mapped to the state an on-call engineer acts on.
ERROR_STATES = (
    ("WRONGPASS", "auth_failed"),
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
    """One RESP2 reply (simple string, error, integer, bulk string)."""
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
    raise ConnectionError("unexpected reply from Redis: %r" % line[:40])


def classify(exc: BaseException) -> str:
    if isinstance(exc, RedisReplyError):
        text = str(exc)
        for prefix, state in ERROR_STATES:
            if text.startswith(prefix):
                return state
        return "error"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
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


def ping(params: dict) -> dict:
    started = time.monotonic()
    sock = socket.create_connection((params["host"], params["port"]), timeout=params["timeout"])
    try:
        if params["tls"]:
            context = ssl.create_default_context()
            if not params["validate_certs"]:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=params["host"])
        stream = sock.makefile("rb")
        if params.get("password"):
            auth = [params["user"], params["password"]] if params.get("user") else [params["password"]]
            sock.sendall(encode("AUTH", *auth))
            read_reply(stream)
        ping_started = time.monotonic()
        sock.sendall(encode("PING"))
        reply = read_reply(stream)
        latency_ms = (time.monotonic() - ping_started) * 1000
        if reply != "PONG":
            raise ConnectionError("unexpected PING reply %r" % reply)
        sock.sendall(encode("INFO", "server"))
        try:
            server = parse_info(read_reply(stream) or "")
        except RedisReplyError:
            server = {}  # a restricted ACL user may not run INFO: PING is what matters here
        return {
            "available": True,
            "state": "ok",
            "latency_ms": round(latency_ms, 3),
            "server": server,
            "msg": "Redis %s answered PING in %.1f ms" % (server.get("redis_version", "?"), latency_ms),
            "elapsed_s": round(time.monotonic() - started, 3),
        }
    finally:
        sock.close()


def run_module(params: dict) -> dict:
    where = "%s:%s" % (params["host"], params["port"])
    try:
        return ping(params)
    except (OSError, RedisReplyError, ValueError) as exc:
        state = classify(exc)
        reason = str(exc) or exc.__class__.__name__
        if state == "timeout":
            reason = "no answer within %g s" % params["timeout"]
        return {"available": False, "state": state, "msg": "Redis at %s: %s (%s)" % (where, state, reason)}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=6379),
            user=dict(type="str"),
            password=dict(type="str", no_log=True),
            timeout=dict(type="float", default=3.0),
            tls=dict(type="bool", default=False),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be > 0")
    module.exit_json(changed=False, **run_module(module.params))


if __name__ == "__main__":
    main()
