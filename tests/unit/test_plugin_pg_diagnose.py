"""pg_diagnose and pg_remediate logic without a server: thresholds, the evaluation of each
check, what becomes a candidate, what is escalated to a human, and the SQL safety rules."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.plugins import PLUGINS, load_plugin

# The modules import module_utils as ansible_collections.pivotal.flow_ops...: the checkout's
# collections/ directory (a symlink tree) makes that package importable without installing.
sys.path.insert(0, str(PLUGINS.parents[1] / "collections"))

dx = load_plugin("pg_diagnostics", "module_utils")
ox = load_plugin("pg_objects", "module_utils")
fix = load_plugin("pg_remediation", "module_utils")
diagnose = load_plugin("pg_diagnose")
remediate = load_plugin("pg_remediate")

CFG: dict[str, Any] = dict(diagnose.DEFAULT_THRESHOLDS)


def session(pid: int, age: float, skip: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "pid": pid,
        "backend_start": "1795721878.238728",
        "user": "pivotal_app",
        "application": "pivotal-flow-reports",
        "client": "10.0.0.5",
        "state": "active",
        "query": "SELECT pg_sleep(3600)",
        "running_s": age,
        "idle_s": age,
        "skip": skip,
        "total": 1,
        **extra,
    }


def test_thresholds_default_to_the_reference_and_reject_unknown_keys() -> None:
    cfg = diagnose.thresholds({"long_query_s": "5", "top": 3.0})
    assert cfg["long_query_s"] == 5.0 and cfg["top"] == 3 and isinstance(cfg["top"], int)
    assert cfg["connections_critical_pct"] == 95.0 and cfg["slow_query_ms"] == 20.0
    with pytest.raises(diagnose.ModuleFailure, match="unknown thresholds: nope"):
        diagnose.thresholds({"nope": 1})
    with pytest.raises(diagnose.ModuleFailure, match="must be a number"):
        diagnose.thresholds({"top": "many"})


def test_usable_connections_subtract_every_reserved_slot() -> None:
    assert (
        dx.usable_connections({"max_connections": 50, "superuser_reserved": 3, "reserved": None})
        == 47
    )
    assert (
        dx.usable_connections({"max_connections": 100, "superuser_reserved": 3, "reserved": "5"})
        == 92
    )


@pytest.mark.parametrize(("total", "status"), [(42, "ok"), (43, "warning"), (45, "critical")])
def test_connection_usage_follows_check_postgres_backends(total: int, status: str) -> None:
    row = {
        "total": total,
        "by_state": {"idle": total},
        "by_application": {"app": total},
        "idle_in_tx": 0,
    }
    result = dx.evaluate_connections(row, 47, CFG)
    assert result["findings"][0]["status"] == status
    assert result["findings"][0]["threshold"] == "warning 90.0%, critical 95.0%"


def test_runaway_queries_exclude_lock_waiters_autovacuum_and_protected_sessions() -> None:
    rows = [
        session(1, 400),
        session(2, 400, waiting=True),
        session(3, 400, skip="superuser"),
        session(4, 400, skip="autovacuum worker"),
        session(5, 90),
    ]
    result = dx.evaluate_long_queries(rows, CFG)
    assert [c["pid"] for c in result["runaway"]] == [1]
    finding = result["findings"][0]
    assert finding["status"] == "critical"
    assert "pid 3 (superuser)" in finding["detail"] and "autovacuum" in finding["detail"]


def test_long_but_not_runaway_query_is_a_warning_only() -> None:
    result = dx.evaluate_long_queries([session(5, 90)], CFG)
    assert result["findings"][0]["status"] == "warning" and result["runaway"] == []


def test_idle_in_transaction_blockers_become_candidates_with_their_victims() -> None:
    waits = [
        {**session(9, 0), "waiting": True, "waiting_s": 130.0, "blocked_by": [7]},
        {
            **session(7, 400, state="idle in transaction"),
            "waiting": False,
            "blocked_by": [],
            "state_s": 400,
        },
    ]
    idle = [
        session(7, 400, state="idle in transaction"),
        session(8, 400, skip="protected application"),
    ]
    result = dx.evaluate_blocking(waits, idle, CFG)
    assert result["findings"][0]["status"] == "critical"
    assert [(c["pid"], c["blocking"]) for c in result["idle_in_transaction"]] == [(7, [9])]
    assert result["blockers"] == [7]


def test_missing_pg_stat_statements_is_a_finding_with_the_fix() -> None:
    finding = dx.statements_missing("not installed")["findings"][0]
    assert (
        finding["status"] == "warning"
        and "CREATE EXTENSION pg_stat_statements" in finding["detail"]
    )
    assert dx.escalations([finding], {}, 47) == []


def test_stale_tables_never_analysed_are_critical() -> None:
    row = {
        "kind": "stale",
        "schema": "public",
        "table": "events",
        "n_live_tup": 20000,
        "n_dead_tup": 0,
        "n_mod_since_analyze": 20000,
        "seq_scan": 1,
        "idx_scan": 0,
        "analyzed_s_ago": None,
        "total": 1,
    }
    result = ox.evaluate_tables([row], CFG)
    assert result["findings"][0]["status"] == "critical"
    assert result["stale_tables"] == [
        {
            "schema": "public",
            "table": "events",
            "modified_rows": 20000,
            "live_rows": 20000,
            "analyzed_s_ago": None,
        }
    ]


def test_wraparound_and_sequences_follow_pghero() -> None:
    assert (
        ox.evaluate_wraparound({"database": "db", "xid_age": 200_000_000}, CFG)[0]["status"] == "ok"
    )
    assert (
        ox.evaluate_wraparound({"database": "db", "xid_age": 700_000_000}, CFG)[0]["status"]
        == "critical"
    )
    full = {"schema": "public", "sequence": "s", "used": 0.95, "last_value": 1, "max_value": 2}
    seq = ox.evaluate_sequences({"total": 1, "unreadable": 0, "over": 1, "top": [full]}, CFG)
    assert seq[0]["status"] == "critical" and "95.0%" in seq[0]["detail"]
    hidden = ox.evaluate_sequences({"total": 2, "unreadable": 2, "over": 0, "top": []}, CFG)
    assert hidden[0]["status"] == "skipped" and "not readable" in hidden[0]["detail"]


def test_settings_reload_only_allow_listed_reloadable_ones() -> None:
    columns = ("name", "current", "setting", "unit", "context", "can_alter")
    rows = [
        dict(zip(columns, values, strict=True))
        for values in (
            ("work_mem", "4MB", "4096", "kB", "user", True),
            ("max_connections", "50", "50", None, "postmaster", True),
            ("lock_timeout", "0", "0", "ms", "user", True),
            ("log_min_duration_statement", "1s", "1000", "ms", "superuser", False),
        )
    ]
    desired = {
        "work_mem": "8MB",
        "max_connections": "200",
        "lock_timeout": "0",
        "log_min_duration_statement": "500ms",
    }
    result = ox.evaluate_settings(rows, desired, ["work_mem", "log_min_duration_statement"])
    assert {s["name"]: s["apply"] for s in result["settings"]} == {
        "work_mem": "reload",
        "max_connections": "restart",
        "log_min_duration_statement": "no_privilege",
    }
    reasons = [e["reason"] for e in dx.escalations(result["findings"], result, 47)]
    assert any("max_connections" in r and "restart" in r for r in reasons)
    assert not any("work_mem" in r for r in reasons)


def test_escalations_separate_human_work_from_advice() -> None:
    findings = [
        dx.finding("slow_queries", "warning", 3, "", ""),
        dx.finding("wraparound", "critical", 1, 1, ""),
        dx.finding("unused_indexes", "warning", 1, "", ""),
        dx.finding("blocking_locks", "warning", "1 waiting", "", ""),
    ]
    root = {"pid": 42, "application": "psql", "user": "postgres", "blocks": 1}
    human_root = dict(root, fix="human", why="the runbook may not end it (superuser)")
    out = dx.escalations(findings, {"blockers": [42], "lock_roots": [human_root]}, 47)
    human = {e["check"] for e in out if not e["advisory"]}
    assert human == {"slow_queries", "wraparound", "blocking_locks"}
    assert {e["check"] for e in out if e["advisory"]} == {"unused_indexes"}
    # A blocker the runbook will end is not a human's problem.
    fixable = dx.escalations(
        findings[3:], {"blockers": [42], "lock_roots": [dict(root, fix="terminate", why="")]}, 47
    )
    assert fixable == []


def test_identifiers_are_quoted() -> None:
    assert fix.ident("public", 'we"ird') == '"public"."we""ird"'


def test_remediate_without_targets_does_not_even_connect() -> None:
    params = {
        key: [] for key in ("cancel_queries", "terminate_idle_in_transaction", "terminate_idle")
    }
    params.update(analyze_tables=[], reindex_indexes=[])
    result = remediate.run_module(params, check_mode=False)
    assert (
        result["changed"] is False and result["actions"] == [] and result["msg"] == "nothing to do"
    )
    assert result["sessions_by_application"] == {}


def test_session_recheck_matches_pid_and_backend_start_and_skips_untouchables() -> None:
    sql = fix.SESSION_RECHECK
    assert "a.pid = %(pid)s" in sql and "backend_start)::text = %(backend_start)s" in sql
    for why in ("tool session", "superuser", "protected application"):
        assert why in sql
