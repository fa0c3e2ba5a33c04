"""RB-02 Database Issues end to end: the real CLI, the real playbook, real PostgreSQL 15 in the
sandbox. Each test asserts what a DBA would check afterwards: is the report query gone, did the
blocked update go through, does a new connection succeed, is the index valid, did last_analyze
move, and did a protected session survive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2.extensions import connection as PgConnection

from tests.integration.conftest import Run, Stack

pytestmark = pytest.mark.integration

# Sandbox faults are seconds old: the tests lower the age limits instead of waiting minutes.
FAST = (
    "-e",
    "database_long_query_s=1",
    "-e",
    "database_runaway_query_s=2",
    "-e",
    "database_idle_in_transaction_max_s=2",
    "-e",
    "database_lock_wait_warning_s=1",
    "-e",
    "database_idle_session_min_age_s=1",
    "-e",
    "database_cancel_grace_s=2",
)


def run(stack: Stack, command: str, *extra: str) -> Run:
    args = [command, "rb-02"] if command != "maintain" else ["maintain", "database"]
    return stack.cli(*args, "--env", "local", "--output", "json", *FAST, *extra)


def connect(stack: Stack, app: str, role: str = "monitor") -> PgConnection:
    pg = stack.endpoints["postgres"]
    conn = psycopg2.connect(
        host=pg["host"],
        port=pg["port"],
        dbname=pg["database"],
        user=pg[f"{role}_user"],
        password=pg[f"{role}_password"],
        application_name=app,
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn


def query(stack: Stack, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = connect(stack, "rb02-test-probe")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def by_check(data: dict[str, Any], key: str = "findings") -> dict[str, str]:
    return {f["check"]: f["status"] for f in data[key]}


def events(stack: Stack, fault: str) -> list[str]:
    path = stack.home / "sandbox" / "loaders" / f"{fault}.events"
    return path.read_text().splitlines() if path.exists() else []


def wait_for(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def assert_no_secrets(stack: Stack, data: dict[str, Any]) -> None:
    """Neither password reaches the report or the runner artifacts of the run."""
    run_dir = Path(data["report"]["json"]).parent
    pg = stack.endpoints["postgres"]
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert pg["monitor_password"] not in text and pg["app_password"] not in text, path


def break_fault(stack: Stack, fault: str, settle: float = 2.5) -> None:
    done = stack.cli("sandbox", "break", fault)
    assert done.rc == 0, done.stderr
    time.sleep(settle)  # let the fault age past the lowered limits


@pytest.fixture
def db(sandbox: Stack) -> Iterator[Stack]:
    yield sandbox
    sandbox.cli("sandbox", "heal")


def test_healthy_database_is_left_alone(db: Stack) -> None:
    result = run(db, "recover")
    data = result.json
    assert result.rc == 0, result.stderr
    assert data["outcome"] == "healthy" and data["changed"] == 0 and data["actions"] == []
    checks = by_check(data)
    for name in (
        "connectivity",
        "connections",
        "long_running_queries",
        "invalid_indexes",
        "wraparound",
    ):
        assert checks[name] == "ok", name
    assert checks["slow_queries"] in ("ok", "warning")
    finding = next(f for f in data["findings"] if f["check"] == "connections")
    assert finding["value"] and finding["threshold"]


def test_long_query_is_cancelled_and_the_session_kept(db: Stack) -> None:
    break_fault(db, "db-long-query")
    diagnosis = run(db, "diagnose").json
    assert by_check(diagnosis)["long_running_queries"] == "critical"
    assert [a["action"] for a in diagnosis["actions"]] == ["cancel_query"]
    assert "would cancel" in diagnosis["actions"][0]["result"]

    dry = run(db, "recover", "--check").json
    assert dry["outcome"] == "escalate" and "check mode" in dry["reason"]
    assert "cancelled" not in events(db, "db-long-query"), "check mode cancelled the query"

    data = run(db, "recover").json
    assert data["outcome"] == "recovered", data["reason"]
    assert data["actions"][0]["result"].startswith("cancelled")
    assert "pg_sleep(3600)" in data["actions"][0]["before"]
    assert wait_for(lambda: "cancelled" in events(db, "db-long-query"))
    active = query(
        db,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
        "%pg_sleep(3600)%",
    )
    assert active == [(0,)]
    again = run(db, "recover").json
    assert again["outcome"] == "healthy" and again["changed"] == 0


def test_idle_in_transaction_blocker_is_ended_and_the_waiter_proceeds(db: Stack) -> None:
    break_fault(db, "db-idle-in-tx")
    diagnosis = run(db, "diagnose").json
    checks = by_check(diagnosis)
    assert checks["idle_in_transaction"] == "critical" and checks["blocking_locks"] != "ok"
    assert "update committed" not in events(db, "db-idle-in-tx")

    data = run(db, "recover").json
    assert data["outcome"] == "recovered", data["reason"]
    assert [a["action"] for a in data["actions"]] == ["terminate_idle_in_transaction"]
    assert "blocks pid" in data["actions"][0]["before"]
    assert wait_for(lambda: "update committed" in events(db, "db-idle-in-tx"))
    assert by_check(data, "verification")["blocking_locks"] == "ok"
    assert run(db, "recover").json["changed"] == 0


def test_connection_exhaustion_ends_idle_sessions_but_not_protected_ones(db: Stack) -> None:
    protected = connect(db, "pivotal-flow-migrations", role="app")  # the oldest idle session
    try:
        time.sleep(1.0)
        break_fault(db, "db-connections")
        diagnosis = run(db, "diagnose").json
        assert by_check(diagnosis)["connections"] == "critical"

        data = run(db, "recover").json
        assert data["outcome"] == "recovered", data["reason"]
        ended = [a for a in data["actions"] if a["action"] == "terminate_idle_session"]
        assert ended and all("pivotal-flow-migrations" not in a["target"] for a in ended)
        assert any("pivotal-flow-worker" in a["target"] for a in ended), (
            "report names the application"
        )
        with protected.cursor() as cur:  # the protected session survived
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        fresh = connect(db, "rb02-test-new-connection", role="app")  # a new connection succeeds
        fresh.close()
        assert run(db, "recover").json["changed"] == 0
    finally:
        protected.close()


def last_analyze(stack: Stack) -> Any:
    rows = query(
        stack, "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'sandbox_events'"
    )
    return rows[0][0] if rows else "missing"


def test_stale_statistics_are_analyzed_check_mode_first(db: Stack) -> None:
    break_fault(db, "db-stale-stats", settle=0.5)
    assert last_analyze(db) is None
    dry = run(db, "recover", "--check").json
    assert dry["outcome"] == "escalate"
    assert [a["action"] for a in dry["actions"]] == ["analyze"]
    assert last_analyze(db) is None, "check mode ran ANALYZE"

    data = run(db, "recover", "-e", "database_secure_logging=false").json
    assert data["outcome"] == "recovered", data["reason"]
    assert last_analyze(db) is not None
    assert_no_secrets(db, data)  # even with no_log off: the modules mask their password options
    assert by_check(data, "verification")["stale_statistics"] == "ok"
    assert run(db, "recover").json["changed"] == 0


def index_state(stack: Stack) -> list[tuple[Any, ...]]:
    return query(
        stack,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname LIKE 'sandbox_accounts_email_key%%' ORDER BY 1",
    )


def test_invalid_index_is_named_then_rebuilt_by_the_runbook(db: Stack) -> None:
    break_fault(db, "db-invalid-index", settle=0.2)
    diag = run(db, "diagnose").json
    invalid = next(f for f in diag["findings"] if f["check"] == "invalid_indexes")
    assert invalid["status"] != "ok" and "sandbox_accounts_email_key" in invalid["detail"]
    assert diag["outcome"] == "escalate"
    assert len(index_state(db)) == 2, "diagnose changed the indexes"

    data = run(db, "recover").json
    assert data["outcome"] == "recovered", data["reason"]
    assert "reindex" in {a["action"] for a in data["actions"]}
    assert index_state(db) == [("sandbox_accounts_email_key", True)]
    again = run(db, "recover").json
    assert again["outcome"] == "healthy" and again["changed"] == 0


def test_maintenance_rebuilds_invalid_index_and_analyzes(db: Stack) -> None:
    break_fault(db, "db-invalid-index", settle=0.2)
    break_fault(db, "db-stale-stats", settle=0.2)
    assert index_state(db) == [
        ("sandbox_accounts_email_key", False),
        ("sandbox_accounts_email_key_ccnew", False),
    ]
    dry = run(db, "maintain", "--check").json
    assert {a["action"] for a in dry["actions"]} >= {"drop_leftover_index", "reindex", "analyze"}
    assert len(index_state(db)) == 2, "check mode changed the indexes"

    data = run(db, "maintain").json
    assert data["outcome"] == "recovered", data["reason"]
    assert index_state(db) == [("sandbox_accounts_email_key", True)]
    assert last_analyze(db) is not None
    again = run(db, "maintain").json
    assert again["outcome"] == "healthy" and again["changed"] == 0


def test_database_down_is_restarted_then_the_budget_refuses(db: Stack) -> None:
    # 2 of the inventory's 3 restarts used: one left (the policy is never set by -e)
    db.spend_budget("local/localhost/postgres", 2)
    budget: tuple[str, ...] = ()
    break_fault(db, "db-down", settle=0)
    data = run(db, "recover", *budget).json
    assert data["outcome"] == "recovered", data["reason"]
    assert [a["action"] for a in data["actions"]] == ["restart_budget", "restart"]
    assert by_check(data, "verification") == {"select_1": "ok"}
    assert query(db, "SELECT 1") == [(1,)]

    break_fault(db, "db-down", settle=0)
    refused = run(db, "recover", *budget)
    assert refused.json["outcome"] == "refused"
    assert "restart budget spent" in refused.json["reason"]
    assert db.status()["programs"]["postgres"]["state"] != "RUNNING"
