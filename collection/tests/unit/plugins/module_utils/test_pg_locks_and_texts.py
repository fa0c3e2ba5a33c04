"""RB-02 diagnosis decisions that were misjudgments: lock chains (root blockers only, a tree),
untouchable runaway queries, the pg_stat_statements fix, and finding texts without Python reprs."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_diagnostics as dx

CFG: dict[str, Any] = {
    "lock_wait_warning_s": 60.0,
    "lock_wait_critical_s": 120.0,
    "idle_in_transaction_max_s": 300.0,
    "runaway_query_s": 300.0,
    "long_query_s": 60.0,
}


def node(
    pid: int, state: str = "active", blocked_by: list[int] | None = None, **extra: Any
) -> dict[str, Any]:
    waiting = bool(blocked_by)
    return {
        "pid": pid,
        "application": f"app{pid}",
        "user": "pivotal_app",
        "state": state,
        "query": "UPDATE items SET x = 1",
        "skip": None,
        "waiting": waiting,
        "blocked_by": blocked_by or [],
        "waiting_s": 4.0 if waiting else 0,
        "locktype": "transactionid" if waiting else "",
        "mode": "ShareLock" if waiting else "",
        "relation": "items" if waiting else "",
        "state_s": 4.0,
        "query_s": 4.0,
        "total": 2,
        **extra,
    }


def test_only_the_root_of_a_chain_is_a_blocker_and_the_chain_is_a_tree() -> None:
    rows = [node(1, "idle in transaction"), node(2, blocked_by=[1]), node(3, blocked_by=[2])]
    out = dx.evaluate_blocking(rows, [], CFG)
    assert out["blockers"] == [1], "pid 2 waits itself: it is a victim, not a blocker"
    tree = out["chains"][0]
    assert tree["pid"] == 1 and tree["blocks"] == 2
    assert tree["waiters"][0]["pid"] == 2 and tree["waiters"][0]["waiters"][0]["pid"] == 3
    detail = out["findings"][0]["detail"]
    assert detail.startswith(
        "pid 1 (app1, pivotal_app, idle in transaction 4.0 s) -> [pid 2 (app2) waits 4.0 s"
    )
    assert "ShareLock transactionid on items" in detail
    assert dx.escalations(out["findings"], {"lock_roots": out["roots"]}, 47) == []


@pytest.mark.parametrize(
    ("root", "fix", "why"),
    [
        (
            node(1, "idle in transaction"),
            "pending",
            "terminated after database_idle_in_transaction_max_s=300 s",
        ),
        (
            node(1, "idle in transaction", state_s=400.0),
            "terminate",
            "terminated: idle in transaction over 300 s",
        ),
        (node(1, "active"), "pending", "cancelled after database_runaway_query_s=300 s"),
        (node(1, "active", query_s=301.0), "cancel", "cancelled: running over 300 s"),
        (node(1, "active", skip="superuser"), "human", "the runbook may not end it (superuser)"),
        (node(1, "idle"), "human", "it holds a lock while idle"),
    ],
)
def test_each_root_blocker_gets_a_fix_pending_or_a_human(
    root: dict[str, Any], fix: str, why: str
) -> None:
    out = dx.evaluate_blocking([root, node(2, blocked_by=[1]), node(3, blocked_by=[1])], [], CFG)
    assert out["roots"][0]["fix"] == fix and why in out["roots"][0]["why"]
    human = dx.escalations(out["findings"], {"lock_roots": out["roots"]}, 47)
    assert bool(human) is (fix == "human")
    if fix == "pending":
        assert out["pending"] == ["pid 1 (app1) blocks 2 sessions for 4.0 s; " + why]
    # a fresh wait is a warning from the first second, with the threshold it waits for
    assert out["findings"][0]["status"] == "warning"


def test_a_wait_past_the_critical_limit_is_critical_and_no_wait_is_ok() -> None:
    rows = [node(1, "idle in transaction"), node(2, blocked_by=[1], waiting_s=130.0)]
    assert dx.evaluate_blocking(rows, [], CFG)["findings"][0]["status"] == "critical"
    quiet = dx.evaluate_blocking([], [], CFG)
    assert (
        quiet["findings"][0]["status"] == "ok" and quiet["chains"] == [] and quiet["pending"] == []
    )


def test_a_superuser_runaway_query_is_escalated_even_next_to_a_fixable_one() -> None:
    rows = [
        {
            "pid": 7,
            "backend_start": "1",
            "user": "postgres",
            "application": "psql",
            "client": "local",
            "query": "SELECT pg_sleep(600)",
            "running_s": 400.0,
            "skip": "superuser",
            "waiting": False,
            "total": 2,
        },
        {
            "pid": 8,
            "backend_start": "1",
            "user": "pivotal_app",
            "application": "reports",
            "client": "local",
            "query": "SELECT pg_sleep(600)",
            "running_s": 400.0,
            "skip": None,
            "waiting": False,
            "total": 2,
        },
    ]
    long = dx.evaluate_long_queries(rows, CFG)
    assert [c["pid"] for c in long["runaway"]] == [8]
    out = dx.escalations(
        long["findings"],
        {"runaway_queries": long["runaway"], "untouchable_runaway": long["untouchable"]},
        47,
    )
    assert [e["check"] for e in out] == ["long_running_queries"]
    assert "pid 7 (psql, postgres" in out[0]["reason"] and "superuser" in out[0]["reason"]


@pytest.mark.parametrize(
    ("preload", "restart"),
    [
        ("pg_stat_statements", False),
        ("auto_explain, pg_stat_statements", False),
        ("", True),
        ("auto_explain", True),
    ],
)
def test_pg_stat_statements_fix_advises_a_restart_only_when_not_preloaded(
    preload: str, restart: bool
) -> None:
    detail = dx.statements_missing("not installed", dx.preloaded({"preload": preload}))["findings"][
        0
    ]["detail"]
    assert "CREATE EXTENSION pg_stat_statements" in detail
    assert ("(restart)" in detail) is restart
    assert ("no restart needed" in detail) is not restart


def test_finding_texts_hold_no_python_repr() -> None:
    row = {
        "total": 30,
        "by_state": {"idle": 25, "active": 5},
        "by_application": {"worker": 20},
        "idle_in_tx": 1,
        "idle_in_tx_oldest_s": 4.0,
    }
    cfg = dict(
        CFG,
        connections_critical_pct=95,
        connections_warning_pct=90,
        idle_in_transaction_count_max=100,
    )
    out = dx.evaluate_connections(row, 47, cfg)
    for f in out["findings"]:
        assert "{" not in f["detail"] and "[" not in f["detail"], f["detail"]
    assert "by state idle 25, active 5" in out["findings"][0]["detail"]
    assert "ended after database_idle_in_transaction_max_s=300 s" in out["findings"][1]["detail"]
    idle = [
        {
            "pid": 1,
            "backend_start": "1",
            "user": "u",
            "application": "w",
            "client": "local",
            "query": "q",
            "idle_s": 400.0,
            "skip": None,
        }
    ]
    blocking = dx.evaluate_blocking(
        [node(1, "idle in transaction", state_s=400.0), node(2, blocked_by=[1])], idle, CFG
    )
    assert blocking["idle_detail"] == ["pid 1 (w, u, 6.7 min) blocks pid(s) 2"]
