# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""One asynchronous PostgreSQL session with hard client-side deadlines, for the RB-02 modules.

Opened by pg_connection.connect() (the collection's one connect) and classified by pg_check: the
same failures (refused, timeout, auth_failed, too_many_clients, starting_up, ...), but the
connection stays open so a whole phase runs over one session. Asynchronous connections are always autocommit: each statement is its own
transaction, so one failing check never aborts the others.
"""

from __future__ import annotations

import datetime
import decimal
import time

from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_check, pg_connection

# Slack on top of the server-side statement_timeout before the client gives up by itself.
CLIENT_SLACK_S = 2.0


def plain(value):  # type: ignore[no-untyped-def]
    """Module results must be JSON: numeric becomes float, timestamps ISO text."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class QueryFailed(Exception):
    """A statement failed; carries the SQLSTATE and one clean line."""

    def __init__(self, msg: str, sqlstate: str | None = None) -> None:
        super().__init__(msg)
        self.sqlstate = sqlstate


class Session:
    """An open connection plus the helpers every check needs."""

    def __init__(self, conn, password: str | None, statement_timeout_s: float) -> None:  # type: ignore[no-untyped-def]
        self.conn = conn
        self._password = password
        self.statement_timeout_s = statement_timeout_s

    def rows(self, sql: str, params: tuple | dict | None = None, timeout_s: float | None = None) -> list[dict]:
        """Run one statement; return its rows as dicts (empty for statements without rows)."""
        budget = (timeout_s or self.statement_timeout_s) + CLIENT_SLACK_S
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params)
            pg_connection.wait(self.conn, time.monotonic() + budget)
            if cursor.description is None:
                return []
            names = [col.name for col in cursor.description]
            # No zip(strict=True): it is Python 3.10+ and this runs on the target (3.8+,
            # tests/config.yml); psycopg2 gives every row one value per described column.
            return [dict(zip(names, map(plain, row))) for row in cursor.fetchall()]
        except pg_connection.DeadlineReached:
            self.conn.cancel()
            raise QueryFailed(f"no answer within {budget:g} s", "57014") from None
        except pg_connection.psycopg2.Error as exc:
            raise QueryFailed(pg_check.one_line(str(exc), self._password), getattr(exc, "pgcode", None)) from None
        finally:
            cursor.close()

    def one(self, sql: str, params: tuple | dict | None = None, timeout_s: float | None = None) -> dict:
        found = self.rows(sql, params, timeout_s)
        return found[0] if found else {}

    def close(self) -> None:
        self.conn.close()


def open_session(
    params: dict,
    connect_timeout: float,
    statement_timeout_s: float,
    read_only: bool,
    lock_timeout_s: float | None = None,
    application_name: str = pg_connection.APPLICATION_NAME,
) -> tuple[Session | None, dict]:
    """Connect to I(params) (pg_connection's argument spec names) within I(connect_timeout);
    return (session or None, {available, state, msg, latency_ms})."""
    at = pg_connection.where(params)
    password = params.get("login_password")
    result: dict = {"available": False, "state": "error", "msg": "", "latency_ms": None}
    if not pg_connection.HAS_PSYCOPG2:
        result.update(state="driver_missing", msg=f"PostgreSQL at {at}: psycopg2 is not installed on the target")
        return None, result
    options = [f"-c statement_timeout={max(int(statement_timeout_s * 1000), 1)}"]
    if lock_timeout_s:
        options.append(f"-c lock_timeout={max(int(lock_timeout_s * 1000), 1)}")
    if read_only:
        # Belt and braces: a diagnosis cannot write even if a query were wrong.
        options.append("-c default_transaction_read_only=on")
    try:
        conn = pg_connection.connect(
            params, time.monotonic() + connect_timeout, options=" ".join(options), application_name=application_name
        )
    except pg_connection.DeadlineReached:
        result.update(state="timeout", msg=f"PostgreSQL at {at}: timeout (no answer within {connect_timeout:g} s connecting)")
        return None, result
    except (pg_connection.psycopg2.Error, OSError, ValueError) as exc:
        state = pg_check.classify(str(exc), getattr(exc, "pgcode", None))
        reason = pg_check.one_line(str(exc), password) or type(exc).__name__
        result.update(state=state, msg=f"PostgreSQL at {at}: {state} ({reason})")
        return None, result
    session = Session(conn, password, statement_timeout_s)
    started = time.monotonic()
    try:
        session.rows("SELECT 1", timeout_s=connect_timeout)
    except QueryFailed as exc:
        session.close()
        state = pg_check.classify(str(exc), exc.sqlstate)
        result.update(state=state, msg=f"PostgreSQL at {at}: {state} on SELECT 1 ({exc})")
        return None, result
    latency_ms = round((time.monotonic() - started) * 1000, 3)
    user = params.get("login_user")
    result.update(
        available=True,
        state="ok",
        latency_ms=latency_ms,
        msg=f"PostgreSQL at {at} answered SELECT 1 in {latency_ms:.1f} ms as {user or 'the default role'}",
    )
    return session, result


def open_with_wait(wait_s: float, interval_s: float, params: dict, **kwargs) -> tuple[Session | None, dict]:  # type: ignore[no-untyped-def]
    """open_session, retried until it succeeds or I(wait_s) passes (0: one attempt)."""
    deadline = time.monotonic() + wait_s
    attempts = 0
    while True:
        attempts += 1
        session, result = open_session(params, **kwargs)
        result["attempts"] = attempts
        if session is not None or time.monotonic() + interval_s > deadline:
            return session, result
        time.sleep(interval_s)
