"""RB-02 decisions, branch by branch: classification (what is wrong), plan (what recover may do)
and verdict (what happened), from plain module results to outcome + reason."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.filter import database as filters
from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_decisions as db


def finding(check: str, status: str, value: Any = "", detail: str = "") -> dict[str, Any]:
    return {"check": check, "status": status, "value": value, "threshold": "", "detail": detail}


def dx(available: bool = True, state: str = "ok", **extra: Any) -> dict[str, Any]:
    return {
        "available": available,
        "connectivity": {"state": state, "msg": "PostgreSQL at h:5432: " + state},
        "findings": extra.pop(
            "findings", [finding("connectivity", "ok" if available else "critical")]
        ),
        "escalations": extra.pop("escalations", []),
        "pending": extra.pop("pending", []),
        "candidates": extra.pop("candidates", {}),
        **extra,
    }


SERVICE_RUNNING = {
    "reachable": True,
    "running": True,
    "state": "RUNNING",
    "pid": 41,
    "logs": ["l1"],
}
SERVICE_DOWN = {
    "reachable": True,
    "running": False,
    "state": "STOPPED",
    "pid": 0,
    "logs": ["FATAL x"],
    "detail": "stopped",
}
SERVICE_GONE = {"reachable": False, "msg": "socket refused"}


# ------------------------------------------------------------------------------ classify


@pytest.mark.parametrize(
    ("diag", "status", "problem"),
    [
        (dx(), None, ""),
        (dx(), SERVICE_DOWN, ""),  # PostgreSQL answers: the service manager is not consulted
        (dx(False, "refused"), None, "manager_unreachable"),
        (dx(False, "refused"), SERVICE_GONE, "manager_unreachable"),
        (dx(False, "refused"), SERVICE_DOWN, "down"),
        (dx(False, "auth_failed"), SERVICE_RUNNING, "access"),
        (dx(False, "too_many_clients"), SERVICE_RUNNING, "access"),
        (dx(False, "timeout"), SERVICE_RUNNING, "unresponsive"),
    ],
)
def test_classify_names_the_problem(diag: dict[str, Any], status: Any, problem: str) -> None:
    assert db.classify(diag, status)["problem"] == problem


def test_classify_adds_the_service_finding_logs_and_pid_only_when_asked() -> None:
    down = db.classify(dx(False, "refused"), SERVICE_DOWN)
    assert down["findings"][-1] == {
        "check": "service_status",
        "status": "critical",
        "value": "STOPPED",
        "threshold": "running",
        "detail": "stopped",
    }
    assert down["logs"] == ["FATAL x"] and down["pid_before"] == 0
    up = db.classify(dx(), SERVICE_DOWN)
    assert (
        [f["check"] for f in up["findings"]] == ["connectivity"]
        and up["logs"] == []
        and up["pid_before"] is None
    )


def test_classify_splits_human_work_from_advice_and_keeps_pending() -> None:
    esc = [
        {"check": "slow_queries", "reason": "index", "advisory": False},
        {"check": "bloat", "reason": "vacuum", "advisory": True},
    ]
    out = db.classify(dx(escalations=esc, pending=["pid 1 blocks 2"]), None)
    assert [e["check"] for e in out["escalations"]] == ["slow_queries"]
    assert [e["check"] for e in out["advisories"]] == ["bloat"]
    assert out["pending"] == ["pid 1 blocks 2"]


# ------------------------------------------------------------------------------ plan

CANDIDATES = {
    "runaway_queries": [{"pid": 1}],
    "idle_in_transaction": [{"pid": 2}],
    "idle_sessions": [{"pid": 3}],
    "stale_tables": [{"table": "t"}],
    "invalid_indexes": [{"index": "i"}],
    "settings": [
        {"name": "work_mem", "apply": "reload"},
        {"name": "shared_buffers", "apply": "restart"},
    ],
}


@pytest.mark.parametrize(
    ("mode", "problem", "available", "restart", "sessions", "objects", "settings"),
    [
        ("recover", "", True, False, 1, 1, ["work_mem"]),
        ("diagnose", "", True, False, 1, 1, ["work_mem"]),
        ("maintain", "", True, False, 0, 1, []),  # maintenance touches objects only
        ("recover", "down", False, True, 0, 0, []),
        ("diagnose", "down", False, False, 0, 0, []),
        ("maintain", "down", False, False, 0, 0, []),
        ("recover", "access", False, False, 0, 0, []),
    ],
)
def test_plan(
    mode: str,
    problem: str,
    available: bool,
    restart: bool,
    sessions: int,
    objects: int,
    settings: list[str],
) -> None:
    out = filters.database_plan(dx(available, candidates=CANDIDATES), mode, problem)
    assert out["restart_wanted"] is restart and out["remediate"] is available
    t = out["targets"]
    assert (
        len(t["cancel_queries"])
        == len(t["terminate_idle_in_transaction"])
        == len(t["terminate_idle"])
        == sessions
    )
    assert len(t["analyze_tables"]) == len(t["reindex_indexes"]) == objects
    assert [s["name"] for s in t["settings"]] == settings


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        (False, "RB-02 DatabaseConnectionFailure (refused)"),
        ("True", "RB-02 DatabaseConnectionFailure (refused), override: incident 7"),
    ],
)
def test_plan_names_the_restart_reason_and_the_override(override: Any, reason: str) -> None:
    out = filters.database_plan(dx(False, "refused"), "recover", "down", override, "incident 7")
    assert out["restart_reason"] == reason


def act(
    kind: str = "cancel_query", result: str = "cancelled", target: str = "pid 9 (app, u)"
) -> dict[str, Any]:
    return {"action": kind, "target": target, "result": result, "before": "b", "after": "a"}


@pytest.mark.parametrize(
    ("fix", "dry", "made"),
    [
        ({"changed": True, "actions": [act()]}, False, True),
        ({"changed": True, "actions": [act()]}, True, False),
        (
            {"changed": False, "actions": [act(result="skipped: session already gone")]},
            False,
            False,
        ),
        ({"changed": True, "actions": [act(result="skipped: gone")]}, False, False),
        ({"skipped": True, "changed": False}, False, False),
        (None, False, False),
    ],
)
def test_fixes_made(fix: Any, dry: bool, made: bool) -> None:
    assert filters.database_fixes_made(fix, dry) is made


# ------------------------------------------------------------------------------ verdict


def facts(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "mode": "recover",
        "check_mode": False,
        "host": "db1",
        "service_name": "postgres",
        "manager": "supervisord",
        "ready_timeout": 60,
        "override_reason": "",
        "problem": "",
        "state": "ok",
        "service": {},
        "service_msg": "",
        "findings": [finding("connectivity", "ok")],
        "escalations": [],
        "advisories": [],
        "pending": [],
        "restart_wanted": False,
        "restart": {},
        "ready": {},
        "fix": {},
        "fixed": False,
        "after": {},
    }
    base.update(over)
    return base


HUMAN = {"check": "slow_queries", "reason": "slow statements need an index", "advisory": False}
ADVICE = [{"check": "bloat", "reason": "vacuum", "advisory": True}]
BUDGET_OK = {
    "allowed": True,
    "key": "local/db1/postgres",
    "summary": "1 of 3 used",
    "used": 1,
    "max_restarts": 3,
}
BUDGET_SPENT = {
    "allowed": False,
    "key": "local/db1/postgres",
    "summary": "3 of 3 used",
    "used": 3,
    "max_restarts": 3,
}


def restarted(**over: Any) -> dict[str, Any]:
    """service_manager_restart_result (service_manager/restart_gated.yml) of a restart."""
    base: dict[str, Any] = {
        "manager": "supervisord",
        "budget": BUDGET_OK,
        "allowed": True,
        "budget_words": "1 of 3 used",
        "restarted": True,
        "would_restart": False,
        "before": "not running (STOPPED)",
        "after": "running, pid 77",
        "pid_after": 77,
        "exit": "",
        "logs_after": [],
        "problem": "",
        "detail": "restarted: not running (STOPPED) -> running, pid 77",
    }
    return {**base, **over}


CRASHED = restarted(
    after="not running (BACKOFF, exit status 1)",
    exit="exit status 1",
    logs_after=["FATAL:  data directory has wrong ownership"],
    problem="the service manager does not show the restarted process (77) running any more: "
    "now BACKOFF; its log after the restart: FATAL:  data directory has wrong ownership",
    detail="restarted: not running (STOPPED) -> not running (BACKOFF, exit status 1)",
)
WOULD = restarted(
    restarted=False,
    would_restart=True,
    after="running (a new pid)",
    budget_words="would take one restart: 0 -> 1 of 3 used in the window",
    detail="would restart (check mode): not running (STOPPED) -> running (a new pid)",
)
NOT_ALLOWED = {
    "budget": BUDGET_SPENT,
    "allowed": False,
    "restarted": False,
    "detail": "not restarted",
}
READY = {"available": True, "connectivity": {"state": "ok", "msg": "answered SELECT 1"}}
NOT_READY = {"available": False, "connectivity": {"state": "refused", "msg": "connection refused"}}
DOWN = {"problem": "down", "state": "refused", "service": SERVICE_DOWN, "restart_wanted": True}
CANCEL_FIX = {
    "changed": True,
    "failed_actions": 0,
    "actions": [act()],
    "sessions_by_application": {"reports": 1},
}
LONG_BAD = [finding("connectivity", "ok"), finding("long_running_queries", "critical", "2")]
SUPERUSER_LEFT = {
    "findings": [finding("long_running_queries", "critical", "1")],
    "escalations": [
        {
            "check": "long_running_queries",
            "reason": "runaway query pid 7 (psql, postgres) may not be cancelled",
            "advisory": False,
        }
    ],
}


@pytest.mark.parametrize(
    ("over", "outcome", "reason_has", "next_runbook"),
    [
        # PostgreSQL does not answer
        (
            {"problem": "manager_unreachable", "state": "refused", "service_msg": "socket refused"},
            "escalate",
            "service manager cannot be reached (socket refused)",
            "",
        ),
        (
            {"problem": "access", "state": "too_many_clients"},
            "escalate",
            "no connection slot left",
            "",
        ),
        (
            {"problem": "access", "state": "auth_failed"},
            "escalate",
            "refuses the monitoring role (auth_failed)",
            "",
        ),
        ({"problem": "unresponsive", "state": "timeout"}, "escalate", "a DBA decides", ""),
        # down: mode, budget, check mode, restart result
        (
            {**DOWN, "mode": "maintain", "restart_wanted": False},
            "escalate",
            "run RB-02 to restart it",
            "RB-02",
        ),
        (
            {**DOWN, "mode": "diagnose", "restart_wanted": False},
            "escalate",
            "diagnose only: recovery would restart",
            "",
        ),
        ({**DOWN, "restart": NOT_ALLOWED}, "refused", "restart budget spent (3 of 3", ""),
        (
            {
                **DOWN,
                "restart": {
                    **NOT_ALLOWED,
                    "budget": {"allowed": False, "refusal": "--override-budget needs a reason"},
                },
            },
            "refused",
            "PostgreSQL is down; --override-budget needs a reason",
            "",
        ),
        (
            {**DOWN, "restart": {**NOT_ALLOWED, "budget": {"allowed": False, "max_restarts": 0}}},
            "refused",
            "automatic restarts are disabled (restart budget 0)",
            "",
        ),
        (
            {**DOWN, "check_mode": True, "restart": WOULD},
            "escalate",
            "check mode: recovery would restart PostgreSQL (refused): would restart (check mode): "
            "not running (STOPPED) -> running (a new pid); nothing was changed",
            "",
        ),
        (
            {**DOWN, "restart": restarted(), "ready": READY},
            "recovered",
            "restarted through supervisord (not running (STOPPED) -> running, pid 77) and answers "
            "SELECT 1 again",
            "",
        ),
        (
            {**DOWN, "restart": restarted(logs_after=["LOG:  starting"]), "ready": NOT_READY},
            "escalate",
            "restarted (running, pid 77) but does not answer SELECT 1 within 60 s: connection "
            "refused; its log after the restart: LOG:  starting",
            "",
        ),
        (
            {**DOWN, "restart": CRASHED},
            "escalate",
            "the restart did not hold: the service manager does not show the restarted process "
            "(77) running any more: now BACKOFF; its log after the restart: FATAL:",
            "",
        ),
        (
            {**DOWN, "restart": restarted(restarted=False, detail="restarted: x -> x")},
            "escalate",
            "did not restart it: restarted: x -> x",
            "",
        ),
        # a restart result another role left on this host never counts
        (
            {**DOWN, "restart_wanted": False, "restart": restarted(), "ready": READY},
            "escalate",
            "did not restart it: no restart result",
            "",
        ),
        # dry runs (check mode, diagnose)
        (
            {"check_mode": True, "fix": {"changed": True, "actions": [act(result="would cancel")]}},
            "escalate",
            "check mode: recovery would take 1 action (cancel_query pid 9 (app, u)); "
            "nothing was changed",
            "",
        ),
        (
            {
                "mode": "diagnose",
                "fix": {"changed": True, "actions": [act(result="would cancel")]},
                "escalations": [HUMAN],
            },
            "escalate",
            "diagnose only: recovery would take 1 action",
            "",
        ),
        (
            {
                "mode": "maintain",
                "check_mode": True,
                "fix": {"changed": True, "actions": [act("analyze", "would ANALYZE")]},
            },
            "escalate",
            "check mode: maintenance would take",
            "",
        ),
        (
            {"check_mode": True, "escalations": [HUMAN]},
            "escalate",
            "needs a human: slow statements",
            "",
        ),
        (
            {
                "check_mode": True,
                "pending": ["pid 4 (w) blocks 2 sessions for 3 s; terminated after x=300 s"],
            },
            "escalate",
            "sessions are blocked now, not yet over the runbook's limits: pid 4",
            "",
        ),
        ({"mode": "diagnose"}, "healthy", "every check is within its threshold", ""),
        (
            {"mode": "diagnose", "findings": [finding("slow_queries", "warning", "unavailable")]},
            "healthy",
            "warnings stand: slow_queries (unavailable)",
            "",
        ),
        # real runs that changed something: the re-check decides
        (
            {
                "findings": LONG_BAD,
                "fix": CANCEL_FIX,
                "fixed": True,
                "after": {"findings": [finding("long_running_queries", "ok")]},
            },
            "recovered",
            "1 action (cancel_query pid 9 (app, u)) fixed long_running_queries; "
            "the re-check is clean; sessions by application: reports 1",
            "",
        ),
        (
            {
                "findings": LONG_BAD,
                "fix": CANCEL_FIX,
                "fixed": True,
                "after": {
                    "findings": [
                        finding("long_running_queries", "ok"),
                        finding("slow_queries", "warning", 2),
                    ]
                },
            },
            "recovered",
            "the re-check shows no critical finding, warnings stand: slow_queries (2)",
            "",
        ),
        (
            {
                "findings": LONG_BAD,
                "fix": CANCEL_FIX,
                "fixed": True,
                "after": {"findings": [finding("long_running_queries", "critical")]},
            },
            "escalate",
            "fixes did not hold: long_running_queries still critical after the re-check",
            "",
        ),
        (
            {
                "findings": LONG_BAD,
                "fix": dict(CANCEL_FIX, failed_actions=1),
                "fixed": True,
                "after": {"findings": [finding("long_running_queries", "ok")]},
            },
            "escalate",
            "fixes did not hold: 1 action failed",
            "",
        ),
        # a superuser's query left running next to the app's cancelled one: fixed X; a human for Y
        (
            {"findings": LONG_BAD, "fix": CANCEL_FIX, "fixed": True, "after": SUPERUSER_LEFT},
            "escalate",
            "fixed long_running_queries (in part) with 1 action (cancel_query pid 9 (app, u)); "
            "a human is needed for long_running_queries: runaway query pid 7 (psql, postgres) "
            "may not be cancelled",
            "",
        ),
        # real runs that changed nothing
        (
            {
                "fix": {
                    "changed": False,
                    "failed_actions": 1,
                    "actions": [act("analyze", "skipped: not the owner")],
                }
            },
            "escalate",
            "actions failed: skipped: not the owner",
            "",
        ),
        (
            {"escalations": [HUMAN], "advisories": ADVICE},
            "escalate",
            "needs a human: slow statements need an index; for review: bloat",
            "",
        ),
        ({"pending": ["pid 4 blocks 1 session"]}, "escalate", "sessions are blocked now", ""),
        (
            {"mode": "maintain", "advisories": ADVICE},
            "healthy",
            "maintenance found nothing to do; for review: bloat",
            "",
        ),
        ({}, "healthy", "PostgreSQL answers and every check is within its threshold", ""),
    ],
)
def test_verdict(over: dict[str, Any], outcome: str, reason_has: str, next_runbook: str) -> None:
    out = filters.database_verdict(facts(**over))
    assert (out["outcome"], out["next_runbook"]) == (outcome, next_runbook), out["reason"]
    assert reason_has in out["reason"]


def test_reason_never_claims_every_check_ok_while_warnings_stand() -> None:
    out = db.verdict(facts(findings=[finding("blocking_locks", "warning", "1 waiting")]))
    assert "every check is within its threshold" not in out["reason"]
    assert "blocking_locks (1 waiting)" in out["reason"]


def test_restart_actions_show_before_and_after_in_both_modes() -> None:
    real = db.verdict(facts(**DOWN, restart=restarted(), ready=READY))
    assert [a["action"] for a in real["actions"]] == ["restart_budget", "restart"]
    budget, restart = real["actions"]
    assert (budget["before"], budget["after"]) == ("0 of 3 restarts used", "1 of 3 restarts used")
    assert (restart["before"], restart["after"], restart["result"]) == (
        "not running (STOPPED)",
        "running, pid 77, answers SELECT 1",
        "restarted: not running (STOPPED) -> running, pid 77",
    )
    assert real["verification"] == [
        {
            "check": "select_1",
            "status": "ok",
            "value": "ok",
            "threshold": "60 s",
            "detail": "answered SELECT 1",
        }
    ]
    silent = db.verdict(facts(**DOWN, restart=restarted(), ready=NOT_READY))
    assert silent["actions"][1]["after"] == "running, pid 77, no answer to SELECT 1"
    dry = db.verdict(facts(**DOWN, check_mode=True, restart=WOULD))
    assert dry["actions"][0]["result"] == WOULD["budget_words"]
    assert dry["actions"][1]["result"] == WOULD["detail"]
    assert (dry["actions"][1]["before"], dry["actions"][1]["after"]) == (
        "not running (STOPPED)",
        "running (a new pid), then must answer SELECT 1 within 60 s",
    )
    override = db.verdict(
        facts(
            **DOWN,
            restart={**NOT_ALLOWED, "budget": dict(BUDGET_SPENT, overridden=True)},
            override_reason="incident 7",
        )
    )
    assert override["actions"][0]["result"] == "3 of 3 used (override: incident 7)"


def test_a_restart_that_did_not_hold_says_how_it_ended_and_what_it_logged() -> None:
    out = db.verdict(facts(**DOWN, restart=CRASHED))
    restart = out["actions"][1]
    assert restart["after"] == "not running (BACKOFF, exit status 1)"
    assert restart["result"].startswith(CRASHED["detail"] + "; the service manager does not show")
    assert "FATAL:  data directory has wrong ownership" in restart["result"]
    assert out["verification"] == [], "no SELECT 1 wait after a restart that did not hold"


def test_verification_holds_the_rechecked_fixable_findings_only() -> None:
    out = db.verdict(
        facts(
            findings=[*LONG_BAD, finding("slow_queries", "warning")],
            fix=CANCEL_FIX,
            fixed=True,
            after={
                "findings": [
                    finding("long_running_queries", "ok"),
                    finding("slow_queries", "warning"),
                ]
            },
        )
    )
    assert [v["check"] for v in out["verification"]] == ["long_running_queries"]
    assert out["actions"] == CANCEL_FIX["actions"]
