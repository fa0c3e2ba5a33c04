"""RB-01 decisions, branch by branch: inputs -> problem / plan / outcome + reason."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_decisions as rb01

SETTINGS = {
    "manager": "supervisord",
    "service": "backend",
    "target": "web1:backend",
    "health_url": "http://127.0.0.1:3000/health",
    "health_timeout": 2.0,
    "error_rate_max": 0.05,
    "latency_p95_max_ms": 1000,
    "check_dependencies": True,
    "soak_seconds": 60,
    "gate_timeout": 30,
    "gate_timeout_setting": "backend_health_gate_timeout",
    "override_reason": "",
    "manager_msg": "",
}
RUNNING = {
    "manager": "supervisord",
    "name": "backend",
    "reachable": True,
    "running": True,
    "pid": 4242,
    "detail": "supervisord program 'backend': running, pid 4242",
}
STOPPED = {
    **RUNNING,
    "running": False,
    "pid": None,
    "detail": "supervisord program 'backend': not running (EXITED, killed by SIGKILL)",
}
UNREACHABLE = {**RUNNING, "reachable": False, "running": False, "detail": "unreachable"}
HEALTHY = {"healthy": True, "state": "healthy", "status": 200, "latency_ms": 3.2}
REFUSED = {"healthy": False, "state": "refused", "status": None, "listener": None}
HUNG = {"healthy": False, "state": "hung", "status": None}
H503 = {"healthy": False, "state": "unhealthy", "status": 503}
SQUATTED = {
    "healthy": True,
    "state": "healthy",
    "status": 200,
    "listener": {"port": 3000, "pid": 999, "cmdline": "python3 -m http.server 3000"},
}
SQUATTED_404 = {**SQUATTED, "healthy": False, "state": "unhealthy", "status": 404}
DEPS_OK = {
    "dependencies": {
        "postgresql": {"state": "ok", "msg": "SELECT 1 ok"},
        "redis": {"state": "ok", "available": True, "msg": "PONG"},
    }
}
PG_DOWN = {
    "dependencies": {
        "postgresql": {"state": "refused", "msg": "connection refused"},
        "redis": {"state": "ok", "available": True, "msg": "PONG"},
    }
}
REDIS_DOWN = {
    "dependencies": {
        "postgresql": {"state": "ok", "msg": "ok"},
        "redis": {"state": "refused", "available": False, "msg": "refused"},
    }
}
PG_NO_DRIVER = {
    "dependencies": {
        "postgresql": {"state": "driver_missing", "msg": "psycopg2 missing"},
        "redis": {"state": "ok", "available": True, "msg": "PONG"},
    }
}


def probe(error_rate: float = 0.0, p95: float = 10.0) -> dict:
    return {"samples": {"count": 20, "error_rate": error_rate, "p95_ms": p95}}


@pytest.mark.parametrize(
    ("status", "health", "sample", "deps", "problem"),
    [
        (UNREACHABLE, REFUSED, None, DEPS_OK, "manager_unreachable"),
        (STOPPED, SQUATTED, None, DEPS_OK, "port_squatter"),
        (STOPPED, SQUATTED_404, None, DEPS_OK, "port_squatter"),
        (STOPPED, HUNG, None, DEPS_OK, "port_squatter"),
        (STOPPED, REFUSED, None, DEPS_OK, "down"),
        (RUNNING, HUNG, None, DEPS_OK, "hung"),
        (RUNNING, {"healthy": False, "state": "timeout"}, None, DEPS_OK, "hung"),
        (RUNNING, H503, None, DEPS_OK, "unhealthy"),
        (RUNNING, HEALTHY, probe(error_rate=0.3), DEPS_OK, "errors"),
        (RUNNING, HEALTHY, probe(p95=5000), DEPS_OK, "slow"),
        (RUNNING, HEALTHY, probe(), DEPS_OK, ""),
        (RUNNING, HEALTHY, {"skipped": True}, DEPS_OK, ""),
    ],
)
def test_assess_problem(status: dict, health: dict, sample: dict, deps: dict, problem: str) -> None:
    assert rb01.assess(status, health, sample, {}, deps, SETTINGS)["problem"] == problem


@pytest.mark.parametrize(
    ("deps", "down"),
    [
        (DEPS_OK, []),
        (PG_DOWN, [("postgresql", "RB-02")]),
        (REDIS_DOWN, [("redis", "RB-03")]),
        (PG_NO_DRIVER, []),  # "could not check from here" never blames RB-02
        ({"skipped": True}, []),
    ],
)
def test_dependencies_down(deps: dict, down: list) -> None:
    found = rb01.assess(RUNNING, H503, None, {}, deps, SETTINGS)["dependencies_down"]
    assert [(d["dependency"], d["runbook"]) for d in found] == down


def test_squatter_finding_names_port_pid_and_command() -> None:
    a = rb01.assess(STOPPED, SQUATTED, None, {}, DEPS_OK, SETTINGS)
    service = next(f for f in a["findings"] if f["check"] == "service_status")
    assert service["status"] == "critical"
    assert "port 3000 answers (HTTP 200)" in service["detail"]
    assert "pid 999 (python3 -m http.server 3000)" in service["detail"]
    assert "killed by SIGKILL" in a["squatter"]
    health = next(f for f in a["findings"] if f["check"] == "health_endpoint")
    assert health["status"] == "critical" and "not the backend" in health["detail"]


def test_squatter_whose_process_is_not_visible_says_so() -> None:
    hidden = {**SQUATTED, "listener": {"port": 3000, "pid": None, "detail": "not visible (become)"}}
    assert (
        "not visible (become)"
        in rb01.assess(STOPPED, hidden, None, {}, DEPS_OK, SETTINGS)["squatter"]
    )


@pytest.mark.parametrize(
    ("check", "deps", "settings", "status"),
    [
        ("dependency_postgresql", PG_NO_DRIVER, SETTINGS, "critical"),
        (
            "dependency_postgresql",
            PG_NO_DRIVER,
            {**SETTINGS, "allow_unvalidated_dependencies": True},
            "warning",
        ),
        ("dependency_postgresql", PG_DOWN, SETTINGS, "critical"),
        ("dependency_redis", REDIS_DOWN, SETTINGS, "critical"),
        ("dependency_redis", DEPS_OK, SETTINGS, "ok"),
        ("dependency_redis", DEPS_OK, {**SETTINGS, "check_dependencies": False}, "skipped"),
        ("error_rate", DEPS_OK, SETTINGS, "skipped"),
        ("latency_p95", DEPS_OK, SETTINGS, "skipped"),
    ],
)
def test_findings_status(check: str, deps: dict, settings: dict, status: str) -> None:
    findings = rb01.assess(
        RUNNING, HEALTHY, None, {"findings": [{"check": "disk"}]}, deps, settings
    )
    assert next(f for f in findings["findings"] if f["check"] == check)["status"] == status
    assert findings["findings"][-1] == {"check": "disk"}


def test_sampled_findings_words() -> None:
    findings = rb01.assess(RUNNING, HEALTHY, probe(0.3, 5000), {}, DEPS_OK, SETTINGS)["findings"]
    rows = {f["check"]: f for f in findings}
    assert rows["error_rate"]["detail"] == "30.0% of 20 requests failed, max 5.0%"
    assert (
        rows["latency_p95"]["status"] == "warning"
        and "p95 5000.0 ms" in rows["latency_p95"]["detail"]
    )


@pytest.mark.parametrize(
    ("problem", "deps_down", "mode", "restart"),
    [
        ("down", [], "recover", True),
        ("hung", [], "recover", True),
        ("unhealthy", [], "recover", True),
        ("errors", [], "recover", True),
        ("slow", [], "recover", False),
        ("port_squatter", [], "recover", False),
        ("manager_unreachable", [], "recover", False),
        ("", [], "recover", False),
        ("down", [{"dependency": "redis"}], "recover", False),
        ("down", [], "diagnose", False),
    ],
)
def test_plan(problem: str, deps_down: list, mode: str, restart: bool) -> None:
    plan = rb01.plan({"problem": problem, "dependencies_down": deps_down}, mode)
    assert plan["restart"] is restart and plan["why"]


BUDGET_OK = {
    "allowed": True,
    "used": 1,
    "max_restarts": 3,
    "summary": "allowed: 1 of 3",
    "key": "k",
}
HELD = {
    "manager": "supervisord",
    "budget": BUDGET_OK,
    "budget_words": "allowed: 1 of 3",
    "restarted": True,
    "before": "not running (EXITED, killed by SIGKILL)",
    "after": "running, pid 77",
    "pid_after": 77,
    "confirmed": True,
    "gate": {"ran": True, "passed": True, "waited_s": 0.5, "attempts": 2},
    "soak": {"probes": 30, "failures": 0},
    "problem": "",
    "detail": "restarted: not running (EXITED, killed by SIGKILL) -> running, pid 77",
}


def a(problem: str, down: list | None = None, squatter: str = "") -> dict:
    return {"problem": problem, "dependencies_down": down or [], "squatter": squatter}


@pytest.mark.parametrize(
    ("assessment", "restart", "mode", "check", "outcome", "words", "next_runbook"),
    [
        (a(""), {}, "recover", False, "healthy", "within its error-rate", ""),
        (
            a("down", [{"dependency": "postgresql", "state": "refused", "runbook": "RB-02"}]),
            {},
            "recover",
            False,
            "escalate",
            "postgresql (refused) down",
            "RB-02",
        ),
        (a("manager_unreachable"), {}, "recover", False, "escalate", "cannot act on backend", ""),
        (
            a("port_squatter", squatter="port 3000 answers"),
            {},
            "recover",
            False,
            "escalate",
            "no restart budget was spent",
            "",
        ),
        (a("slow"), {}, "recover", False, "escalate", "p95 above 1000 ms", "RB-02"),
        (a("down"), {}, "diagnose", False, "escalate", "diagnose only", ""),
        (
            a("down"),
            {"budget": {"allowed": False, "max_restarts": 0}},
            "recover",
            False,
            "refused",
            "restarts are disabled",
            "",
        ),
        (
            a("down"),
            {
                "budget": {
                    "allowed": False,
                    "used": 3,
                    "max_restarts": 3,
                    "window_seconds": 1800,
                    "resets_in_s": 42,
                }
            },
            "recover",
            False,
            "refused",
            "3 of 3 restarts used in the last 30 min (next slot in 42 s)",
            "",
        ),
        (
            a("hung"),
            {
                **HELD,
                "restarted": False,
                "would_restart": True,
                "detail": "would restart (check mode): x",
            },
            "recover",
            True,
            "escalate",
            "check mode: recovery would restart the backend (hung): would restart",
            "",
        ),
        (
            a("down"),
            HELD,
            "recover",
            False,
            "recovered",
            "running, pid 77, passed the health gate and a 60 s soak",
            "",
        ),
        (
            a("down"),
            {**HELD, "restarted": False, "problem": "", "detail": "not restarted"},
            "recover",
            False,
            "escalate",
            "the restart did not happen",
            "",
        ),
        (
            a("down"),
            {
                **HELD,
                "confirmed": False,
                "problem": "the restarted process died ... exit status 127",
            },
            "recover",
            False,
            "escalate",
            "did not restore service: the restarted process died",
            "",
        ),
    ],
)
def test_verdict(
    assessment: dict,
    restart: dict,
    mode: str,
    check: bool,
    outcome: str,
    words: str,
    next_runbook: str,
) -> None:
    v = rb01.conclude(assessment, rb01.plan(assessment, mode), restart, None, SETTINGS, mode, check)
    assert (v["outcome"], v["next_runbook"]) == (outcome, next_runbook)
    assert words in v["reason"]


def test_error_rate_is_rechecked_after_an_error_restart() -> None:
    still = rb01.conclude(a("errors"), {"restart": True}, HELD, probe(error_rate=0.5), SETTINGS)
    assert still["outcome"] == "escalate" and "error rate still 50.0%" in still["reason"]
    assert still["verification"][-1] == {
        "check": "error_rate_after",
        "status": "critical",
        "detail": "50.0% of 20 requests failed",
    }
    fixed = rb01.conclude(a("errors"), {"restart": True}, HELD, probe(error_rate=0.0), SETTINGS)
    assert fixed["outcome"] == "recovered"


def test_actions_and_verification_rows() -> None:
    v = rb01.conclude(a("down"), {"restart": True}, HELD, None, SETTINGS)
    assert [x["action"] for x in v["actions"]] == ["restart_budget", "restart"]
    assert v["actions"][1]["result"] == HELD["detail"]
    assert v["actions"][1]["before"] == "not running (EXITED, killed by SIGKILL)"
    rows = {r["check"]: r for r in v["verification"]}
    assert rows["health_gate"] == {
        "check": "health_gate",
        "status": "ok",
        "detail": "healthy after 0.5 s, 2 probes",
    }
    assert rows["soak"]["status"] == "ok" and rows["process_confirmed"]["status"] == "ok"


@pytest.mark.parametrize(
    ("gate", "soak", "confirmed", "rows"),
    [
        (
            {
                "ran": True,
                "passed": False,
                "gone": "supervisord reports the started process (pid 7) gone",
            },
            {},
            False,
            {
                "health_gate": ("critical", "stopped early: supervisord reports"),
                "process_confirmed": ("critical", ""),
            },
        ),
        (
            {"ran": True, "passed": False, "state": "unhealthy", "reason": "HTTP 503"},
            {},
            True,
            {"health_gate": ("critical", "the setting is backend_health_gate_timeout")},
        ),
        (
            {"ran": True, "passed": True},
            {"probes": 5, "failures": 0, "gone": "gone: now EXITED"},
            False,
            {"soak": ("critical", "gone: now EXITED")},
        ),
        (
            {"ran": False},
            {},
            True,
            {"process_confirmed": ("ok", "still shows the restarted process")},
        ),
    ],
)
def test_verification_rows_on_failure(gate: dict, soak: dict, confirmed: bool, rows: dict) -> None:
    restart = {**HELD, "gate": gate, "soak": soak, "confirmed": confirmed, "problem": "x"}
    v = rb01.conclude(a("down"), {"restart": True}, restart, None, SETTINGS)
    got = {r["check"]: r for r in v["verification"]}
    for check, (status, words) in rows.items():
        assert got[check]["status"] == status and words in got[check]["detail"]


def test_check_mode_budget_action_carries_before_and_after() -> None:
    restart = {
        **HELD,
        "restarted": False,
        "would_restart": True,
        "budget_words": "would take one restart",
    }
    v = rb01.conclude(a("down"), {"restart": True}, restart, None, SETTINGS, "recover", True)
    budget = v["actions"][0]
    assert (budget["before"], budget["after"]) == ("0 of 3 used", "1 of 3 used")


def test_override_is_recorded_in_the_budget_action() -> None:
    restart = {**HELD, "budget": {**BUDGET_OK, "overridden": True}}
    v = rb01.conclude(
        a("down"), {"restart": True}, restart, None, {**SETTINGS, "override_reason": "INC-42"}
    )
    assert v["actions"][0]["result"].endswith("(override: INC-42)")


@pytest.mark.parametrize(
    ("health", "settings", "mode", "outcome", "restart", "words"),
    [
        # 0.3.0 counted driver_missing as ok and restarted without validating PostgreSQL.
        (H503, SETTINGS, "recover", "escalate", False, "cannot validate PostgreSQL from this host"),
        # A healthy backend needs no restart: the unvalidated dependency stays a finding only.
        (HEALTHY, SETTINGS, "recover", "healthy", False, "backend is running"),
        # The inventory opted out: the restart goes ahead on the backend's own fault.
        (
            H503,
            {**SETTINGS, "allow_unvalidated_dependencies": True},
            "recover",
            None,
            True,
            None,
        ),
        # Not checking dependencies at all is its own explicit choice.
        (H503, {**SETTINGS, "check_dependencies": False}, "recover", None, True, None),
    ],
)
def test_unvalidated_dependency_blocks_the_restart(
    health: dict, settings: dict, mode: str, outcome: str | None, restart: bool, words: str | None
) -> None:
    a = rb01.assess(RUNNING, health, None, {}, PG_NO_DRIVER, settings)
    p = rb01.plan(a, mode)
    assert p["restart"] is restart
    if outcome is not None:
        v = rb01.conclude(a, p, {}, None, settings, mode)
        assert v["outcome"] == outcome
        assert words in v["reason"]
        if outcome == "escalate":
            assert "backend_allow_unvalidated_dependencies" in v["reason"]


@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        (
            "restart budget state unreadable at /s/restarts.json (kept as /s/b.corrupt-1);"
            " a human may --override-budget",
            "restart budget state unreadable at /s/restarts.json",
        ),
        ("--override-budget needs a reason", "--override-budget needs a reason"),
        # The budget itself: the words name the count and the way past it.
        ("restart budget spent: 3 of 3", "restart budget spent: 3 of 3 restarts used"),
    ],
)
def test_a_guard_refusal_reads_as_itself(refusal: str, reason: str) -> None:
    a = rb01.assess(STOPPED, REFUSED, None, {}, DEPS_OK, SETTINGS)
    budget = {
        "allowed": False,
        "refusal": refusal,
        "used": 3,
        "max_restarts": 3,
        "window_seconds": 1800,
        "resets_in_s": 60,
        "key": "local/web1/backend",
    }
    v = rb01.conclude(a, rb01.plan(a, "recover"), {"budget": budget}, None, SETTINGS, "recover")
    assert v["outcome"] == "refused"
    assert v["reason"].startswith(reason)


RECORD = {"runbook": "RB-01", "host": "web1", "service": "backend", "mode": "recover", "logs": [], "investigation": []}


def test_run_result_concludes_with_the_findings_actions_and_verification() -> None:
    assessment = dict(a("down"), findings=[{"check": "service_status", "status": "critical"}])
    out = rb01.run_result(RECORD, assessment, {"restart": True}, HELD, None, SETTINGS)
    assert out["outcome"] == "recovered" and out["host"] == "web1" and out["next_runbook"] == ""
    assert out["findings"] == assessment["findings"]
    assert [x["action"] for x in out["actions"]] == ["restart_budget", "restart"]
    assert [v["check"] for v in out["verification"]] == ["health_gate", "soak", "process_confirmed"]


def test_run_result_ignores_a_restart_the_plan_did_not_make() -> None:
    """A restart result left by an earlier run of the role in the same play is not this run's."""
    out = rb01.run_result(RECORD, a("slow"), {"restart": False}, HELD, None, SETTINGS)
    assert out["outcome"] == "escalate" and out["actions"] == [] and out["verification"] == []


def test_run_result_a_failed_step_wins_and_keeps_the_findings() -> None:
    assessment = dict(a("down"), findings=[{"check": "service_status"}])
    stopped = {"outcome": "error", "reason": "step 'Restart' failed: boom"}
    out = rb01.run_result(RECORD, assessment, {"restart": True}, HELD, None, SETTINGS, stopped=stopped)
    assert (out["outcome"], out["reason"]) == ("error", "step 'Restart' failed: boom")
    assert out["findings"] == [{"check": "service_status"}] and out["actions"] == [] and out["verification"] == []


@pytest.mark.parametrize("stopped", [None, {"outcome": "", "reason": ""}])
def test_run_result_without_an_assessment_is_an_error(stopped: dict | None) -> None:
    out = rb01.run_result(RECORD, {}, {}, {}, None, SETTINGS, stopped=stopped)
    assert (out["outcome"], out["reason"]) == ("error", rb01.STOPPED_EARLY) and out["findings"] == []
