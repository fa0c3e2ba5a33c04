"""RB-02's misjudgments (issue 12), each against the real sandbox PostgreSQL: lock chains where a
waiter was taken for a blocker, a superuser's runaway query next to an app's, pool exhaustion
that ended the backend's own pool connection, a reason that called standing warnings "within
threshold", a pg_stat_statements fix that asked for a needless restart, fresh faults that were
"healthy" until the thresholds were lowered, and check-mode actions without an after value."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2.extensions import connection as PgConnection

from pflow_ops.sandbox.layout import Layout, load_state
from tests.integration.conftest import Run, Stack
from tests.integration.test_rb02 import break_fault, by_check, connect, events, query, run, wait_for

pytestmark = pytest.mark.integration

ROW = 2  # db-idle-in-tx locks row 1; these scenarios use their own row


@pytest.fixture
def db(sandbox: Stack) -> Iterator[Stack]:
    yield sandbox
    sandbox.cli("sandbox", "heal")


def run_shipped(stack: Stack, command: str, *extra: str) -> Run:
    """The runbook with its shipped thresholds (60 s long query, 300 s runaway and idle in
    transaction, 60/120 s lock waits): no lowered limits."""
    return stack.cli(command, "rb-02", "--env", "local", "--output", "json", *extra)


def superuser(stack: Stack, app: str = "psql") -> PgConnection:
    """A DBA's own session: a real superuser, not the tool's (pflow-ops*) application name."""
    state = load_state(Layout.for_home(stack.home))
    assert state is not None
    pg = stack.endpoints["postgres"]
    conn = psycopg2.connect(
        host=pg["host"],
        port=pg["port"],
        dbname=pg["database"],
        user="postgres",
        password=state.superuser_password,
        application_name=app,
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn


class Background:
    """Statements run in threads on their own sessions; records how each one ended."""

    def __init__(self) -> None:
        self.conns: list[PgConnection] = []
        self.ended: dict[str, str] = {}
        self.threads: list[threading.Thread] = []

    def start(self, name: str, conn: PgConnection, *statements: str) -> int:
        self.conns.append(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
        assert row is not None

        def work() -> None:
            try:
                with conn.cursor() as cur:
                    for sql in statements:
                        cur.execute(sql)
                self.ended[name] = "done"
            except psycopg2.errors.QueryCanceled:
                self.ended[name] = "cancelled"
            except psycopg2.Error as exc:
                self.ended[name] = f"error: {type(exc).__name__}"

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self.threads.append(thread)
        return int(row[0])

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.cancel()
                conn.close()
            except psycopg2.Error:
                pass


@contextmanager
def background() -> Iterator[Background]:
    bg = Background()
    try:
        yield bg
    finally:
        bg.close()


def waiting(stack: Stack, count: int) -> bool:
    rows = query(
        stack,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
    return rows[0][0] >= count


def alive(stack: Stack, pid: int) -> bool:
    return query(stack, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid) == [(1,)]


def finding(data: dict[str, Any], check: str) -> dict[str, Any]:
    return next(f for f in data["findings"] if f["check"] == check)


def assert_plain_words(data: dict[str, Any]) -> None:
    """No Python dict or list repr anywhere the on-call engineer reads: the Markdown report, the
    reason, the finding details, the actions."""
    texts = [Path(data["report"]["md"]).read_text(), data["reason"]]
    texts += [str(f["detail"]) for f in data["findings"]]
    texts += [
        str(a.get(k, "")) for a in data["actions"] for k in ("target", "result", "before", "after")
    ]
    for text in texts:
        for repr_mark in ("{'", "['", "': ", "Decimal("):
            assert repr_mark not in text, text


def lock_row(stack: Stack, app: str) -> PgConnection:
    """A session that took a row lock and went idle in transaction (the forgotten transaction)."""
    holder = connect(stack, app, role="app")
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT id FROM items WHERE id = %s FOR UPDATE", (ROW,))
    return holder


UPDATE = f"UPDATE items SET updated_at = now() WHERE id = {ROW}"


def test_lock_chain_counts_only_the_root_and_check_mode_asks_no_human_for_a_waiter(
    db: Stack,
) -> None:
    holder = lock_row(db, "pivotal-flow-worker")
    with background() as bg:
        try:
            first = bg.start("first", connect(db, "pivotal-flow-api", role="app"), UPDATE)
            assert wait_for(lambda: waiting(db, 1))
            second = bg.start("second", connect(db, "pivotal-flow-api", role="app"), UPDATE)
            assert wait_for(lambda: waiting(db, 2))
            with holder.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                root = (cur.fetchone() or [0])[0]
            time.sleep(2.5)  # older than the lowered idle-in-transaction limit

            # Shipped thresholds: the chain is seen, as a tree from its root, with the limit it
            # waits for; the waiter in the middle is no blocker.
            seen = run_shipped(db, "diagnose").json
            locks = finding(seen, "blocking_locks")
            assert locks["status"] == "warning", locks
            assert locks["detail"].startswith(f"pid {root} (pivotal-flow-worker"), locks["detail"]
            assert f"-> [pid {first} (pivotal-flow-api) waits" in locks["detail"]
            assert f"-> pid {second} (pivotal-flow-api) waits" in locks["detail"]
            assert "transactionid on items" in locks["detail"]
            assert seen["outcome"] == "escalate"
            assert f"pid {root} (pivotal-flow-worker) blocks 2 sessions" in seen["reason"]
            assert "database_idle_in_transaction_max_s=300 s" in seen["reason"]
            assert "needs a human" not in seen["reason"]

            # Check mode with the limit passed: one action on the root, no human for the waiter.
            dry = run(db, "recover", "--check").json
            assert dry["outcome"] == "escalate"
            assert [a["action"] for a in dry["actions"]] == ["terminate_idle_in_transaction"]
            assert f"pid {root} " in dry["actions"][0]["target"]
            assert "needs a human" not in dry["reason"], dry["reason"]
            assert str(first) not in dry["reason"]
            assert_plain_words(dry)

            data = run(db, "recover").json
            assert data["outcome"] == "recovered", data["reason"]
            assert [a["action"] for a in data["actions"]] == ["terminate_idle_in_transaction"]
            assert wait_for(lambda: bg.ended.get("second") == "done"), bg.ended
        finally:
            holder.close()


def test_a_fresh_query_blocking_others_is_seen_without_lowered_thresholds(db: Stack) -> None:
    with background() as bg:
        blocker = connect(db, "pivotal-flow-reports", role="app")
        pid = bg.start("blocker", blocker, "BEGIN", UPDATE, "SELECT pg_sleep(120)")
        assert wait_for(lambda: "pg_sleep" in query_text(db, pid))
        bg.start("w1", connect(db, "pivotal-flow-api", role="app"), UPDATE)
        bg.start("w2", connect(db, "pivotal-flow-api", role="app"), UPDATE)
        assert wait_for(lambda: waiting(db, 2))
        time.sleep(1.0)

        data = run_shipped(db, "diagnose").json
        assert by_check(data)["blocking_locks"] == "warning"
        assert data["outcome"] == "escalate", data["reason"]
        assert f"pid {pid} (pivotal-flow-reports) blocks 2 sessions for" in data["reason"]
        assert "cancelled after database_runaway_query_s=300 s" in data["reason"]
        assert "every check is within its threshold" not in data["reason"]
        assert data["actions"] == []
        assert_plain_words(data)


def query_text(stack: Stack, pid: int) -> str:
    rows = query(stack, "SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid = %s", pid)
    return str(rows[0][0]) if rows else ""


def query_state(stack: Stack, pid: int) -> str:
    rows = query(stack, "SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = %s", pid)
    return str(rows[0][0]) if rows else ""


def test_superuser_runaway_next_to_an_app_one_fixes_the_app_and_names_the_rest(db: Stack) -> None:
    with background() as bg:
        dba = bg.start("dba", superuser(db), "SELECT pg_sleep(120) /* dba ad hoc */")
        app = bg.start(
            "app",
            connect(db, "pivotal-flow-reports", role="app"),
            "SELECT pg_sleep(120) /* report */",
        )
        time.sleep(2.5)  # past the lowered runaway limit

        data = run(db, "recover").json
        assert data["outcome"] == "escalate"
        assert "fixes did not hold" not in data["reason"], data["reason"]
        assert data["reason"].startswith("fixed long_running_queries (in part) with 1 action"), (
            data["reason"]
        )
        assert "a human is needed for long_running_queries" in data["reason"]
        assert f"runaway query pid {dba} (psql, postgres" in data["reason"]
        assert "superuser" in data["reason"]
        assert [(a["action"], a["result"]) for a in data["actions"]] == [
            ("cancel_query", "cancelled (pg_cancel_backend); the session stays")
        ]
        assert f"pid {app} " in data["actions"][0]["target"]
        assert wait_for(lambda: bg.ended.get("app") == "cancelled"), bg.ended
        assert query_state(db, dba) == "active", "the superuser's query was touched"
        assert_plain_words(data)


def test_pool_exhaustion_ends_the_leaking_application_not_the_backend_pool(db: Stack) -> None:
    assert db.health() == 200  # the backend's pool holds a connection
    backend = [
        r[0]
        for r in query(
            db, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pivotal-flow-backend'"
        )
    ]
    assert backend, "the backend holds no pool connection"
    time.sleep(1.5)  # the pool connection is the oldest idle session
    break_fault(db, "db-connections")

    data = run(db, "recover").json
    assert data["outcome"] == "recovered", data["reason"]
    ended = [a for a in data["actions"] if a["action"] == "terminate_idle_session"]
    assert ended and all("(pivotal-flow-worker, " in a["target"] for a in ended), ended
    assert "sessions by application: pivotal-flow-worker" in data["reason"]
    for pid in backend:
        assert alive(db, pid), f"the backend's pool connection pid {pid} was ended"
    assert db.health() == 200
    assert_plain_words(data)


def test_warnings_are_named_and_the_extension_fix_asks_no_restart_when_preloaded(db: Stack) -> None:
    su = superuser(db)
    try:
        with su.cursor() as cur:
            cur.execute("SHOW shared_preload_libraries")
            assert "pg_stat_statements" in str((cur.fetchone() or [""])[0])
            cur.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
        data = run_shipped(db, "diagnose").json
        slow = finding(data, "slow_queries")
        assert slow["status"] == "warning" and slow["value"] == "unavailable"
        assert "CREATE EXTENSION pg_stat_statements" in slow["detail"]
        assert "(restart)" not in slow["detail"] and "no restart needed" in slow["detail"]
        assert data["outcome"] == "healthy"
        assert "every check is within its threshold" not in data["reason"]
        assert "warnings stand: slow_queries (unavailable)" in data["reason"]
        assert_plain_words(data)
    finally:
        with su.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        su.close()


def test_check_mode_changed_means_would_change_and_actions_show_before_and_after(
    db: Stack,
) -> None:
    break_fault(db, "db-long-query")
    dry = run(db, "recover", "--check").json
    assert dry["outcome"] == "escalate" and dry["changed"] > 0, "changed = would change"
    action = dry["actions"][0]
    assert action["action"] == "cancel_query" and "would cancel" in action["result"]
    assert "pg_sleep(3600)" in action["before"]
    assert action["after"].startswith("query cancelled, the session stays")
    assert "cancelled" not in events(db, "db-long-query"), "check mode cancelled the query"
