# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Check that PostgreSQL accepts a query, and tell apart why it does not.

A target without psycopg2 gets a C(driver_missing) result instead of an import traceback. The
connection is pg_connection.connect(), polled against our own deadline (why: see pg_connection).
"""

from __future__ import annotations

import re
import sys
import time

from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_connection
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_connection import (
    DeadlineReached,
    wait,
)

# libpq and server messages, in the order they are tried, mapped to the state an on-call
# engineer acts on. "Server answered" reasons come before "nothing answered" ones: with several
# addresses (localhost is ::1 and 127.0.0.1) libpq joins one message per address.
MESSAGE_STATES = (
    (re.compile(r"no pg_hba\.conf entry|pg_hba\.conf rejects connection"), "not_allowed"),
    (re.compile(r"authentication failed|no password supplied|role \".*\" does not exist"), "auth_failed"),
    (
        re.compile(
            r"too many clients already|remaining connection slots are reserved"
            r"|too many connections for (role|database)"
        ),
        "too_many_clients",
    ),
    (
        re.compile(
            r"database system is starting up|database system is not yet accepting connections"
            r"|database system is in recovery mode"
        ),
        "starting_up",
    ),
    (re.compile(r"database system is shutting down"), "shutting_down"),
    (re.compile(r"database \".*\" does not exist"), "database_missing"),
    # TLS: the server answered, but the handshake did not verify (our CA, its certificate or host
    # name), or our own certificate files could not be used. Never a reason to restart it.
    (
        re.compile(
            r"certificate verify failed|does not match host name|root certificate file .* does not exist"
            r"|could not (?:read|load|open) (?:root certificate|certificate|private key)"
            r"|certificate present, but not private key|server does not support SSL|SSL error"
        ),
        "tls_failed",
    ),
    (re.compile(r"timeout expired|canceling statement due to statement timeout"), "timeout"),
    # Unix socket: a missing socket file is "nothing listens", like a refused TCP port.
    (re.compile(r"Connection refused|No such file or directory"), "refused"),
)

# SQLSTATE fallback for errors after the connection is made. psycopg2 gives a failed connection
# no SQLSTATE, so connection failures are told apart by their (English) message only.
SQLSTATE_STATES = {
    "57014": "timeout",  # query_canceled: statement_timeout
    "57P01": "shutting_down",  # admin_shutdown: the server is stopping
}

_LIBPQ_PREFIX = re.compile(r'connection to server (?:at "[^"]*"(?: \([^)]*\))?, port \d+|on socket "[^"]*") failed: ')


def classify(message: str, sqlstate: str | None = None) -> str:
    for pattern, state in MESSAGE_STATES:
        if pattern.search(message):
            return state
    return SQLSTATE_STATES.get(sqlstate or "", "error")


def one_line(text: str, password: str | None = None) -> str:
    """libpq messages span lines and repeat the address; keep one line, never the password."""
    text = " ".join(_LIBPQ_PREFIX.sub("", text).split())
    if password:
        text = text.replace(password, "********")
    return text


def _query(conn, sql: str, deadline: float):  # type: ignore[no-untyped-def]
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        wait(conn, deadline)
        return cursor.fetchone()[0]
    finally:
        cursor.close()


def check(params: dict, timeout: float = 3.0) -> dict:
    """Connect to I(params) (pg_connection's argument spec names), run C(SELECT 1) and
    C(SHOW server_version), close; all within I(timeout) seconds.

    Never raises for an unavailable server. Returns {available, state, msg, latency_ms,
    server_version, elapsed_s}; latency_ms is the C(SELECT 1) round trip.
    """
    started = time.monotonic()
    deadline = started + timeout
    at = pg_connection.where(params)
    password = params.get("login_password")
    result: dict = {"available": False, "state": "error", "msg": "", "latency_ms": None, "server_version": None}
    if not pg_connection.HAS_PSYCOPG2:
        result.update(
            state="driver_missing",
            msg=f"PostgreSQL at {at}: driver_missing (psycopg2 is not installed for {sys.executable})",
        )
        return _finish(result, started)
    conn = None
    phase = "connecting"
    try:
        # The server gives up on its side too, so a slow query does not outlive the check.
        conn = pg_connection.connect(params, deadline, options=f"-c statement_timeout={max(int(timeout * 1000), 1)}")
        phase = "querying"
        query_started = time.monotonic()
        _query(conn, "SELECT 1", deadline)
        latency_ms = (time.monotonic() - query_started) * 1000
        version = str(_query(conn, "SHOW server_version", deadline))
        result.update(
            available=True,
            state="ok",
            latency_ms=round(latency_ms, 3),
            server_version=version,
            msg=f"PostgreSQL {version.split()[0]} at {at} answered SELECT 1 in {latency_ms:.1f} ms",
        )
    except DeadlineReached:
        result.update(state="timeout", msg=f"PostgreSQL at {at}: timeout (no answer within {timeout:g} s {phase})")
    except (pg_connection.psycopg2.Error, OSError, ValueError) as exc:
        state = classify(str(exc), getattr(exc, "pgcode", None))
        reason = one_line(str(exc), password) or type(exc).__name__
        result.update(state=state, msg=f"PostgreSQL at {at}: {state} ({reason})")
    finally:
        if conn is not None:
            conn.close()
    return _finish(result, started)


def _finish(result: dict, started: float) -> dict:
    result["elapsed_s"] = round(time.monotonic() - started, 3)
    return result
