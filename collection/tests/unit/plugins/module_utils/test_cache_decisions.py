"""RB-03's decisions (module_utils/cache_decisions): the plan, the classification of an
unavailable Redis and the verdict, one row per branch (inputs -> outcome + reason)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_decisions as cd
from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_verdict as cv

MB = 1024**2
SETTINGS = {
    "redis_port": 6379,
    "eviction_rate_max": 10.0,
    "hit_rate_min_lookups": 50,
    "backend_health_url": "http://127.0.0.1:3000/health",
    "health_gate_timeout": 30,
    "ping_gate_timeout": 20,
    "budget_window": 1800,
    "budget_key": "local/h/redis",
    "override_reason": "",
    "restart_target": "h:redis",
}


def _diag(signals: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "available": True,
        "state": "ok",
        "config_access": True,
        "host_memory_bytes": 1024 * MB,
        "signals": {"jemalloc": True, **(signals or {})},
        "config": {"maxmemory-policy": "allkeys-lru", "activedefrag": "no"},
        "memory": {"maxmemory": 16 * MB},
        "rates": {"evicted": 0, "evicted_per_s": 0.0, "window_s": 3.0},
        "clients": {"connected": 9600, "maxclients": 10000},
        "findings": [],
    }
    return {**base, **kw}


# --- plan: signals -> settings / purge / kill / recommendations -----------------------------------


@pytest.mark.parametrize(
    ("signals", "config", "options", "settings", "rec"),
    [
        ({}, {}, {}, {}, None),
        (
            {"noeviction_cache": True},
            {"maxmemory-policy": "noeviction"},
            {},
            {"maxmemory-policy": "allkeys-lru"},
            None,
        ),
        (
            {"volatile_without_ttl": True},
            {"maxmemory-policy": "volatile-lru"},
            {"eviction_policy": "allkeys-lfu"},
            {"maxmemory-policy": "allkeys-lfu"},
            None,
        ),
        ({"noeviction_cache": True}, {"maxmemory-policy": "allkeys-lru"}, {}, {}, None),
        ({"evicting": True}, {}, {}, {"maxmemory": str(20 * MB)}, None),
        ({"evicting": True}, {}, {"maxmemory_ceiling": 16 * MB}, {}, "capacity change"),
        ({"fragmentation": True}, {}, {}, {"activedefrag": "yes"}, None),
        ({"fragmentation": True}, {"activedefrag": "yes"}, {}, {}, None),
        ({"fragmentation": True, "jemalloc": False}, {}, {}, {}, "not jemalloc"),
        (
            {"bigkeys_evicted": True},
            {},
            {},
            {"lazyfree-lazy-eviction": "yes", "lazyfree-lazy-expire": "yes"},
            None,
        ),
        ({"maxmemory_unset": True}, {}, {}, {}, "maxmemory is 0"),
        ({"low_hit_rate": True}, {}, {}, {}, "never cached"),
        ({"low_hit_rate": True, "evicting": True}, {}, {}, {"maxmemory": str(20 * MB)}, None),
        ({"clients_saturated": True}, {}, {}, {}, "cache_kill_idle_clients"),
    ],
)
def test_plan(
    signals: dict[str, Any],
    config: dict[str, Any],
    options: dict[str, Any],
    settings: dict[str, str],
    rec: str | None,
) -> None:
    diag = _diag(signals)
    diag["config"] = {**diag["config"], **config}
    plan = cd.plan(diag, options)
    assert plan["settings"] == settings
    assert set(plan["reasons"]) == set(settings), "every setting says why"
    if rec is None:
        assert plan["recommendations"] == []
    else:
        assert any(rec in r for r in plan["recommendations"]), plan["recommendations"]


def test_plan_purge_kill_ceiling_and_unhandled_criticals() -> None:
    critical = {
        "check": "persistence_rdb",
        "status": "critical",
        "detail": "last background save FAILED",
    }
    handled = {"check": "eviction_policy", "status": "critical", "detail": "handled by the plan"}
    diag = _diag({"peak_purge": True, "clients_saturated": True}, findings=[critical, handled])
    plan = cd.plan(diag, {"kill_idle_clients": True, "maxmemory_ceiling_pct": 25})
    assert plan["purge"] and plan["kill_idle_clients"]
    assert plan["maxmemory_ceiling"] == 256 * MB
    assert plan["recommendations"] == ["last background save FAILED"]


def test_raise_is_rounded_up_to_mib_and_capped_at_the_ceiling() -> None:
    assert cd.raise_to(16 * MB, 25, 1024 * MB) == 20 * MB
    assert cd.raise_to(10 * MB + 1, 10, 1024 * MB) == 12 * MB
    assert cd.raise_to(16 * MB, 25, 18 * MB + 5) == 18 * MB


# --- assess: classification of an unavailable Redis, and what recovery may do -------------------


@pytest.mark.parametrize(
    ("state", "service", "problem"),
    [
        ("max_clients", {}, "max_clients"),
        ("auth_failed", {}, "auth"),
        ("noauth", {}, "auth"),
        ("auth_not_required", {}, "auth_not_required"),
        ("loading", {}, "loading"),
        ("not_permitted", {}, "acl"),
        ("refused", {"reachable": False}, "manager_unreachable"),
        ("refused", {"reachable": True, "running": False}, "down"),
        ("busy", {"reachable": True, "running": True}, "unresponsive"),
        ("timeout", {"reachable": True, "running": True}, "unresponsive"),
    ],
)
def test_classify_unavailable(state: str, service: dict[str, Any], problem: str) -> None:
    result = cd.assess({"available": False, "state": state}, service)
    assert result["problem"] == problem
    assert result["findings"][0]["check"] == "service_status"
    assert result["settings"] == {} and result["purge"] is False


@pytest.mark.parametrize(
    ("diag_kw", "enabled", "problem", "settings", "rec"),
    [
        ({}, True, "tuning", {"maxmemory-policy": "allkeys-lru"}, None),
        ({"config_access": False}, True, "", {}, "+config|set"),
        ({"signals": {"noeviction_cache": True, "replica": True}}, True, "", {}, "replica"),
        ({}, False, "", {}, "tuning is disabled"),
        ({"signals": {}}, True, "", {}, None),
        ({"signals": {"peak_purge": True}}, True, "tuning", {}, None),
    ],
)
def test_assess_live_redis(
    diag_kw: dict[str, Any], enabled: bool, problem: str, settings: dict[str, str], rec: str | None
) -> None:
    diag = _diag({"noeviction_cache": True})
    diag["config"]["maxmemory-policy"] = "noeviction"
    diag.update(diag_kw)
    result = cd.assess(diag, {}, enabled)
    assert (result["problem"], result["settings"]) == (problem, settings)
    if rec:
        assert any(rec in r for r in result["recommendations"]), result["recommendations"]
    else:
        assert result["recommendations"] == []


def test_assess_uses_the_modules_candidates() -> None:
    candidates = {
        "settings": {"activedefrag": "yes"},
        "reasons": {"activedefrag": "x"},
        "purge": False,
        "kill_idle_clients": False,
        "recommendations": [],
        "maxmemory_ceiling": 7,
    }
    result = cd.assess(_diag(candidates=candidates), {}, True)
    assert result["settings"] == {"activedefrag": "yes"} and result["maxmemory_ceiling"] == 7
    assert result["plan"] == ["set activedefrag"]


# --- verdict ------------------------------------------------------------------------------------


def _tune(**kw: Any) -> dict[str, Any]:
    action = {
        "action": "config_set",
        "target": "maxmemory-policy",
        "before": "noeviction",
        "after": "allkeys-lru",
        "result": "set",
    }
    base: dict[str, Any] = {
        "changed": True,
        "actions": [action],
        "wanted": {"maxmemory-policy": "allkeys-lru"},
        "persisted": True,
        "config_file": "/etc/redis.conf",
        "msg": "persisted to /etc/redis.conf",
        "write_probe": {"ok": True, "detail": "SET and DEL of a probe key succeeded"},
    }
    return {**base, **kw}


AFTER = {
    "config": {"maxmemory-policy": "allkeys-lru"},
    "memory": {"maxmemory_policy": "allkeys-lru"},
    "rates": {"evicted": 0, "evicted_per_s": 0.0, "window_s": 2.0, "oom_errors": 0},
    "signals": {},
}


def _facts(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "mode": "recover",
        "check_mode": False,
        "problem": "",
        "state": "ok",
        "diag": _diag(),
        "assessment": {"recommendations": [], "plan": []},
        "findings": [],
        "tune": {},
        "maint_apply": {},
        "after": {},
        "drift": [],
        "restart": {},
        "ping_gate": {},
        "backend_gate": {},
        "settings": SETTINGS,
    }
    return {**base, **kw}


DOWN_RESTARTED = {  # service_manager_restart_result (service_manager/restart_gated.yml)
    "manager": "supervisord",
    "budget": {"allowed": True, "summary": "1 of 3 used", "key": "k", "used": 1, "max_restarts": 3},
    "allowed": True,
    "restarted": True,
    "would_restart": False,
    "before": "not running (STOPPED)",
    "after": "running, pid 42",
    "pid_after": 42,
    "exit": "",
    "logs_after": [],
    "problem": "",
    "detail": "restarted: not running (STOPPED) -> running, pid 42",
}
WOULD_RESTART = {
    **DOWN_RESTARTED,
    "restarted": False,
    "would_restart": True,
    "after": "running (a new pid)",
    "budget_words": "would take one restart: 0 -> 1 of 3 used in the window",
    "detail": "would restart (check mode): not running (STOPPED) -> running (a new pid)",
}
CRASHED = {
    **DOWN_RESTARTED,
    "after": "not running (FATAL, spawn error: can't find command 'redis-server')",
    "exit": "spawn error: can't find command 'redis-server'",
    "problem": "the service manager did not bring the service up: redis did not reach RUNNING",
    "detail": "restarted: not running (STOPPED) -> not running (FATAL, spawn error: ...)",
}
PLAN = {"recommendations": [], "plan": ["set maxmemory-policy"]}


@pytest.mark.parametrize(
    ("facts", "outcome", "reason", "next_runbook"),
    [
        (
            _facts(problem="max_clients", state="max_clients"),
            "escalate",
            "max number of clients reached",
            "",
        ),
        (
            _facts(problem="auth", state="noauth"),
            "escalate",
            "refused the credentials (noauth)",
            "",
        ),
        (
            _facts(problem="auth_not_required", state="auth_not_required"),
            "escalate",
            "Redis has none configured",
            "",
        ),
        (_facts(problem="loading"), "escalate", "loading its dataset", ""),
        (
            _facts(problem="acl", diag_msg="this user may not run INFO: grant +info"),
            "escalate",
            "grant +info (the cache role README lists",
            "",
        ),
        (
            _facts(problem="manager_unreachable", state="refused", service_msg="no socket"),
            "escalate",
            "service manager cannot be reached (no socket)",
            "",
        ),
        (_facts(problem="unresponsive", state="busy"), "escalate", "SCRIPT KILL", ""),
        (
            _facts(problem="unresponsive", state="timeout"),
            "escalate",
            "does not answer in time",
            "",
        ),
        (
            _facts(problem="unresponsive", state="error", diag_msg="ERR odd"),
            "escalate",
            "(error: ERR odd)",
            "",
        ),
        (
            _facts(
                mode="maintain",
                drift=[
                    {"target": "maxmemory-policy", "before": "volatile-lru", "after": "allkeys-lru"}
                ],
            ),
            "escalate",
            "config drift from the intended config: maxmemory-policy (set cache_maintenance",
            "",
        ),
        (
            _facts(
                mode="maintain",
                check_mode=True,
                drift=[{"target": "x", "before": "1", "after": "2"}],
            ),
            "escalate",
            "(check mode: nothing re-applied)",
            "",
        ),
        (
            _facts(assessment={"recommendations": ["hit rate low"], "plan": []}),
            "escalate",
            "needs a human: hit rate low",
            "",
        ),
        (_facts(), "healthy", "every check is within its threshold", ""),
        (
            _facts(findings=[{"check": "slowlog", "status": "warning"}]),
            "healthy",
            "(warnings: slowlog)",
            "",
        ),
        (
            _facts(diag=_diag(rates={"evicted": 12, "evicted_per_s": 4.0, "window_s": 3.0})),
            "healthy",
            "12 keys evicted in 3.0 s (4.0/s; maxmemory is raised above 10.0/s)",
            "",
        ),
        (
            _facts(
                diag=_diag(
                    rates={"evicted": 0, "misses": 30, "hits": 0, "window_s": 3.0},
                    findings=[{"check": "hit_rate", "status": "skipped"}],
                )
            ),
            "healthy",
            "judged from 50 lookups",
            "",
        ),
        (
            _facts(mode="diagnose", problem="tuning", assessment=PLAN),
            "escalate",
            "diagnose only: recovery would set maxmemory-policy",
            "",
        ),
        (
            _facts(mode="diagnose", problem="down", state="refused"),
            "escalate",
            "recovery would restart Redis (refused)",
            "",
        ),
        (
            _facts(mode="maintain", problem="tuning", assessment=PLAN),
            "escalate",
            "maintenance found an incident",
            "RB-03",
        ),
        (
            _facts(problem="down", restart={"budget": {"allowed": False, "max_restarts": 0}}),
            "refused",
            "automatic restarts are disabled",
            "",
        ),
        # A guard's own refusal (unreadable budget state) reads as itself.
        (
            _facts(
                problem="down",
                restart={
                    "budget": {
                        "allowed": False,
                        "max_restarts": 3,
                        "refusal": "restart budget state unreadable at /b (kept as /b.corrupt-1)",
                    }
                },
            ),
            "refused",
            "Redis is down; restart budget state unreadable at /b (kept as /b.corrupt-1)",
            "",
        ),
        (
            _facts(
                problem="down",
                restart={
                    "budget": {"allowed": False, "max_restarts": 3, "used": 3, "resets_in_s": 60}
                },
            ),
            "refused",
            "restart budget spent: 3 of 3 restarts used in the last 30 min (next slot in 60 s)",
            "",
        ),
        (
            _facts(problem="down", check_mode=True, restart=WOULD_RESTART),
            "escalate",
            "check mode: recovery would restart Redis (not running (STOPPED) -> running); nothing",
            "",
        ),
        (
            _facts(
                problem="tuning",
                check_mode=True,
                assessment=PLAN,
                tune=_tune(
                    actions=[
                        {
                            "action": "config_set",
                            "target": "maxmemory-policy",
                            "before": "noeviction",
                            "after": "allkeys-lru",
                            "result": "would set (check mode)",
                        }
                    ]
                ),
            ),
            "escalate",
            "check mode: recovery would maxmemory-policy noeviction -> allkeys-lru",
            "",
        ),
        (
            _facts(
                problem="down",
                restart=DOWN_RESTARTED,
                ping_gate={"state": "ok", "available": True},
                backend_gate={"healthy": True, "state": "200"},
            ),
            "recovered",
            "Redis restarted (not running (STOPPED) -> running, pid 42), answers PING and the "
            "backend /health passed",
            "",
        ),
        (
            _facts(
                problem="down",
                restart=DOWN_RESTARTED,
                ping_gate={"state": "ok", "available": True},
                settings={**SETTINGS, "backend_health_url": ""},
            ),
            "recovered",
            "Redis restarted (not running (STOPPED) -> running, pid 42), answers PING",
            "",
        ),
        (
            _facts(problem="down", restart=CRASHED),
            "escalate",
            "the Redis restart did not restore service: the service manager did not bring",
            "",
        ),
        (
            _facts(problem="down", restart={**DOWN_RESTARTED, "restarted": False}),
            "escalate",
            "the Redis restart did not happen: restarted: not running (STOPPED) -> running",
            "",
        ),
        (
            _facts(  # a restart result left on the host by another role never counts
                problem="tuning",
                tune=_tune(),
                after=AFTER,
                restart={"budget": {"allowed": False, "max_restarts": 0}},
            ),
            "recovered",
            "tuning applied (maxmemory-policy), verified",
            "",
        ),
        (
            _facts(
                problem="down",
                restart={**DOWN_RESTARTED, "logs_after": ["# Server initialized"]},
                ping_gate={"state": "refused", "available": False},
            ),
            "escalate",
            "Redis (running, pid 42) does not answer PING within 20 s; its log after the restart: "
            "# Server initialized",
            "",
        ),
        (
            _facts(
                problem="down",
                restart=DOWN_RESTARTED,
                ping_gate={"state": "ok", "available": True},
                backend_gate={"healthy": False, "state": "503"},
            ),
            "escalate",
            "the backend /health did not pass within 30 s",
            "RB-01",
        ),
        (
            _facts(problem="tuning", tune=_tune(), after=AFTER),
            "recovered",
            "tuning applied (maxmemory-policy), verified and persisted to /etc/redis.conf",
            "",
        ),
        (
            _facts(mode="maintain", maint_apply=_tune(), after=AFTER),
            "recovered",
            "intended config re-applied",
            "",
        ),
        (
            _facts(
                problem="tuning",
                tune=_tune(),
                after=AFTER,
                assessment={"recommendations": ["fork failing"], "plan": []},
            ),
            "escalate",
            "verified (maxmemory-policy); still needs a human: fork failing",
            "",
        ),
        (
            _facts(
                problem="tuning",
                after=AFTER,
                tune=_tune(
                    persisted=False,
                    msg="x -> y; NOT persisted: Redis started without a config file",
                ),
            ),
            "escalate",
            "tuning applied (maxmemory-policy) but NOT persisted: Redis started without a config "
            "file",
            "",
        ),
        (
            _facts(
                problem="tuning",
                after={**AFTER, "signals": {"oom": True}},
                tune=_tune(
                    persisted=False, msg="NOT persisted: this user may not run CONFIG REWRITE"
                ),
            ),
            "escalate",
            "but NOT persisted: this user may not run CONFIG REWRITE; add it to the deployment "
            "config before the next restart; writes still fail",
            "",
        ),
        (
            _facts(
                problem="tuning",
                after=AFTER,
                tune=_tune(write_probe={"ok": False, "detail": "OOM"}),
            ),
            "escalate",
            "but writes still fail",
            "",
        ),
        (
            _facts(
                problem="tuning",
                after=AFTER,
                tune=_tune(
                    write_probe={
                        "ok": None,
                        "detail": "this user may not run SET (grant +set +del)",
                    }
                ),
            ),
            "recovered",
            "(write probe not run: this user may not run SET (grant +set +del))",
            "",
        ),
        (
            _facts(
                problem="tuning",
                after={**AFTER, "config": {"maxmemory-policy": "noeviction"}},
                tune=_tune(),
            ),
            "escalate",
            "but a setting did not stick",
            "",
        ),
        (
            _facts(
                problem="tuning",
                tune=_tune(
                    actions=[
                        {
                            "action": "config_set",
                            "target": "maxmemory",
                            "before": "16mb",
                            "after": "20mb",
                            "result": "set",
                        }
                    ],
                    wanted={"maxmemory": str(20 * MB)},
                ),
                after={
                    **AFTER,
                    "config": {"maxmemory": str(20 * MB)},
                    "rates": {"evicted": 90, "evicted_per_s": 45.0, "window_s": 2.0},
                },
            ),
            "escalate",
            "but evictions continue at 45.0/s",
            "",
        ),
    ],
)
def test_verdict(facts: dict[str, Any], outcome: str, reason: str, next_runbook: str) -> None:
    result = cv.verdict(facts)
    assert result["outcome"] == outcome, result["reason"]
    assert reason in result["reason"]
    assert result["next_runbook"] == next_runbook


def test_not_persisted_is_said_before_any_other_failure() -> None:
    facts = _facts(
        problem="tuning",
        after={**AFTER, "signals": {"oom": True}},
        tune=_tune(persisted=False, msg="NOT persisted: no config file"),
    )
    reason = cv.verdict(facts)["reason"]
    assert reason.index("NOT persisted") < reason.index("writes still fail")


def test_verdict_rows_restart_and_gates() -> None:
    facts = _facts(
        problem="down",
        restart=DOWN_RESTARTED,
        ping_gate={"state": "ok", "available": True, "msg": "m"},
        backend_gate={"healthy": True, "state": "200"},
    )
    result = cv.verdict(facts)
    assert [a["action"] for a in result["actions"]] == ["restart_budget", "restart"]
    restart = result["actions"][1]
    assert (restart["target"], restart["before"], restart["after"], restart["result"]) == (
        "h:redis",
        "not running (STOPPED)",
        "running, pid 42",
        "restarted: not running (STOPPED) -> running, pid 42",
    )
    assert {v["check"]: v["status"] for v in result["verification"]} == {
        "ping_gate": "ok",
        "backend_health_gate": "ok",
    }


def test_check_mode_restart_shows_before_and_after_without_a_pid() -> None:
    result = cv.verdict(_facts(problem="down", check_mode="True", restart=WOULD_RESTART))
    budget, restart = result["actions"]
    assert (budget["before"], budget["after"]) == ("0 of 3 restarts used", "1 of 3 restarts used")
    assert budget["result"] == (
        "would take one restart: 0 -> 1 of 3 used in the window (check mode: nothing recorded)"
    )
    assert (restart["before"], restart["after"], restart["result"]) == (
        "not running (STOPPED)",
        "running",
        "would restart (check mode)",
    )


def test_a_restart_that_did_not_hold_says_how_it_ended() -> None:
    restart = cv.verdict(_facts(problem="down", restart=CRASHED))["actions"][1]
    assert restart["after"] == CRASHED["after"]
    assert restart["result"] == CRASHED["detail"] + "; " + CRASHED["problem"]


def test_a_container_is_not_called_a_pid() -> None:
    restart = {
        **DOWN_RESTARTED,
        "manager": "compose",
        "before": "container 3f2a1b exited (exit code 0)",
        "after": "container 3f2a1b (started 12:01:02)",
    }
    facts = _facts(
        problem="down",
        restart=restart,
        ping_gate={"state": "ok", "available": True},
        backend_gate={"healthy": True},
    )
    action = cv.verdict(facts)["actions"][1]
    assert (action["before"], action["after"]) == (restart["before"], restart["after"])


@pytest.mark.parametrize(
    ("mode", "problem", "override", "restart", "tune", "reason"),
    [
        ("recover", "down", False, True, False, "RB-03 redis refused"),
        ("recover", "tuning", False, False, True, "RB-03 redis refused"),
        ("diagnose", "down", False, False, False, "RB-03 redis refused"),
        ("maintain", "tuning", False, False, False, "RB-03 redis refused"),
        ("recover", "down", "true", True, False, "RB-03 redis refused, override: incident 7"),
    ],
)
def test_recovery_plan(
    mode: str, problem: str, override: Any, restart: bool, tune: bool, reason: str
) -> None:
    out = cd.recovery(mode, problem, "refused", override, "incident 7")
    assert out == {"restart": restart, "tune": tune, "restart_reason": reason}


def test_verdict_rows_tuning_and_drift_findings() -> None:
    result = cv.verdict(_facts(problem="tuning", tune=_tune(), after=AFTER))
    rows = {v["check"]: v for v in result["verification"]}
    assert set(rows) == {"setting:maxmemory-policy", "write_probe", "oom_after", "persisted"}
    assert rows["setting:maxmemory-policy"]["detail"] == (
        "CONFIG GET maxmemory-policy after the change: allkeys-lru (was noeviction)"
    )
    assert result["actions"] == _tune()["actions"]
    drift = cv.verdict(
        _facts(mode="maintain", drift=[{"target": "maxmemory", "before": "1", "after": "2"}])
    )
    assert drift["findings"] == [
        {
            "check": "config_drift:maxmemory",
            "status": "warning",
            "value": "1",
            "threshold": "2",
            "detail": "maxmemory is 1, intended 2",
        }
    ]


@pytest.mark.parametrize(
    ("signals", "refused"),
    [({}, True), ({"oom": True}, False), ({"volatile_without_ttl": True}, False)],
)
def test_writes_refused_under_an_evicting_policy_need_no_threshold(
    signals: dict[str, Any], refused: bool
) -> None:
    diag = _diag(
        signals, rates={"evicted": 0, "evicted_per_s": 0.0, "window_s": 3.0, "oom_errors": 4}
    )
    diag["memory"] = {"maxmemory": 512 * 1024, "used_memory": 1 * MB}
    recs = cd.plan(diag)["recommendations"]
    said = [r for r in recs if "4 writes refused with OOM in the window under allkeys-lru" in r]
    assert bool(said) is refused, recs
    if refused:
        assert "used_memory 1mb, maxmemory 512.0kb" in said[0]
