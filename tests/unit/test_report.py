"""Reports are built from runner events and the roles' set_stats, never from text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pflow_ops import catalogue, exitcodes, report
from pflow_ops.runner import EventConsumer, RunResult, Step


def _ctx(tmp_path: Path, check: bool = False) -> report.RunContext:
    return report.RunContext(
        run_id="20261126T000000Z-rb-01-abcd",
        runbook=catalogue.load().get("rb-01"),
        env="local",
        check=check,
        mode="recover",
        started_at="2026-11-26T00:00:00+00:00",
        finished_at="2026-11-26T00:00:05+00:00",
        duration_s=5.0,
        run_dir=tmp_path,
    )


def _events(results: dict[str, Any], changed: int = 1) -> list[dict[str, Any]]:
    return [
        {"event": "playbook_on_task_start", "event_data": {"task": "Restart the backend service"}},
        {
            "event": "runner_on_ok",
            "event_data": {
                "task": "Restart the backend service",
                "host": "localhost",
                "task_path": "/x/collection/roles/backend/tasks/recover.yml:30",
                "start": "2026-11-26T00:00:01",
                "duration": 1.25,
                "res": {"changed": True},
            },
        },
        {
            "event": "runner_on_skipped",
            "event_data": {
                "task": "Monitor the backend through the soak window",
                "host": "localhost",
                "task_path": "/x/collection/roles/backend/tasks/verify.yml:3",
                "duration": 0.01,
            },
        },
        {
            "event": "playbook_on_stats",
            "event_data": {
                "changed": {"localhost": changed},
                "ok": {"localhost": 9},
                "failures": {},
                "dark": {},
                "artifact_data": {"pflow_results": results},
            },
        },
    ]


def _consume(events: list[dict[str, Any]]) -> RunResult:
    seen: list[Step] = []
    consumer = EventConsumer(on_step=seen.append)
    for ev in events:
        consumer.dispatch(ev)
    assert [s.phase for s in seen] == ["recover", "verify"]
    return RunResult(
        status="successful",
        rc=0,
        steps=consumer.steps,
        stats=consumer.stats,
        artifact_data=consumer.artifact_data,
    )


def test_recovered_run_report(tmp_path: Path) -> None:
    host = {
        "outcome": "recovered",
        "reason": "backend restarted (down)",
        "findings": [{"check": "service_status", "status": "critical", "detail": "EXITED"}],
        "actions": [
            {"action": "restart", "target": "localhost:backend", "result": "restarted: pid 1 -> 2"}
        ],
        "verification": [{"check": "health_gate", "status": "ok", "detail": "healthy"}],
        "logs": ["line one"],
    }
    result = _consume(_events({"localhost": host}))
    data = report.build(_ctx(tmp_path), result)
    assert data["outcome"] == "recovered" and data["changed"] == 1
    assert data["escalation"] is None
    assert data["timeline"][0]["status"] == "changed"
    assert data["timeline"][0]["duration_s"] == 1.25
    report.write(data, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "RECOVERED" in md and "restarted: pid 1 -> 2" in md and "line one" in md
    assert json.loads((tmp_path / "report.json").read_text())["run_id"] == data["run_id"]


def test_measured_values_thresholds_and_before_after_are_rendered(tmp_path: Path) -> None:
    host = {
        "outcome": "recovered",
        "reason": "policy switched",
        "findings": [
            {
                "check": "eviction_policy",
                "status": "critical",
                "value": "noeviction",
                "threshold": "allkeys-lru",
                "detail": "writes fail with OOM",
            }
        ],
        "actions": [
            {
                "action": "config_set",
                "target": "maxmemory-policy",
                "before": "noeviction",
                "after": "allkeys-lru",
                "result": "applied and persisted",
            }
        ],
    }
    data = report.build(_ctx(tmp_path), _consume(_events({"localhost": host})))
    md = report.to_markdown(data)
    assert "| check | status | value | threshold | detail |" in md
    assert "| eviction_policy | critical | noeviction | allkeys-lru | writes fail with OOM |" in md
    row = "| config_set | maxmemory-policy | noeviction | allkeys-lru | applied and persisted |"
    assert row in md
    assert report.change(data["actions"][0]) == " (noeviction -> allkeys-lru)"
    assert report.change({"before": "active 75 s", "after": ""}) == " (was active 75 s)"
    assert report.change({"action": "analyze"}) == ""


def test_escalation_quotes_the_runbook_path_and_next_runbook(tmp_path: Path) -> None:
    host = {
        "outcome": "escalate",
        "reason": "postgresql down",
        "next_runbook": "RB-02",
        "findings": [],
        "actions": [],
    }
    data = report.build(_ctx(tmp_path), _consume(_events({"localhost": host}, changed=0)))
    esc = data["escalation"]
    assert data["outcome"] == "escalate" and esc["next_runbooks"] == ["RB-02"]
    assert any("recover rb-02" in s for s in esc["next_steps"])
    assert [p["level"] for p in esc["path"]] == ["L1", "L2", "L3"]
    md = report.to_markdown(data)
    assert "## Escalation" in md and "Backend team lead" in md


def test_worst_host_outcome_wins_and_missing_results_are_errors(tmp_path: Path) -> None:
    hosts = {
        "a": {"outcome": "recovered", "reason": "ok"},
        "b": {"outcome": "refused", "reason": "budget spent"},
    }
    data = report.build(_ctx(tmp_path), _consume(_events(hosts)))
    assert data["outcome"] == "refused" and "b: budget spent" in data["reason"]
    empty = RunResult(status="failed", rc=4, stdout_tail=["ERROR! the playbook could not run"])
    data = report.build(_ctx(tmp_path), empty)
    assert data["outcome"] == "error" and "could not run" in data["reason"]
    assert exitcodes.BY_OUTCOME[data["outcome"]] == 1


def test_unreachable_hosts_escalate(tmp_path: Path) -> None:
    result = RunResult(status="failed", rc=4, stats={"dark": {"web-1": 1}, "changed": {}})
    data = report.build(_ctx(tmp_path), result)
    assert data["outcome"] == "escalate"
    assert data["findings"][0]["check"] == "reachability"


def _with_loop(tmp_path: Path, state: str, check: bool = False) -> dict[str, Any]:
    host = {"outcome": "recovered", "reason": "backend restarted (down)", "findings": []}
    result = _consume(_events({"localhost": host}))
    result.artifact_data["pflow_alert_loop"] = {
        "alertname": "BackendServiceDown",
        "state": state,
        "timeout_s": 90,
        "detail": f"BackendServiceDown {state} after 4.0 s",
    }
    return report.build(_ctx(tmp_path, check=check), result)


def test_the_closed_loop_confirms_a_recovery_or_turns_it_into_an_escalation(
    tmp_path: Path,
) -> None:
    data = _with_loop(tmp_path, "resolved")
    assert data["outcome"] == "recovered"
    assert data["verification"][-1] == {
        "check": "alert_resolved",
        "status": "ok",
        "detail": "BackendServiceDown resolved after 4.0 s",
    }
    assert data["alert"]["alertname"] == "BackendServiceDown"
    firing = _with_loop(tmp_path, "firing")
    assert firing["outcome"] == "escalate"
    assert "did not resolve within 90 s" in firing["reason"]
    assert firing["escalation"] is not None
    unknown = _with_loop(tmp_path, "unknown")
    assert unknown["outcome"] == "escalate"
    assert "could not confirm" in unknown["reason"]
    # No monitoring configured: recorded, and the runbook's own verdict stands.
    assert _with_loop(tmp_path, "not_checked")["outcome"] == "recovered"
    # A dry run fixed nothing, so an alert still firing does not change its verdict.
    assert _with_loop(tmp_path, "firing", check=True)["outcome"] == "recovered"
    assert "alert_resolved" in report.to_markdown(firing)


def test_history_lists_runs_newest_first(tmp_path: Path) -> None:
    for run_id in ("20261126T000001Z-rb-01-aaaa", "20261126T000002Z-rb-01-bbbb"):
        ctx = _ctx(tmp_path / run_id)
        data = report.build(ctx, RunResult(status="successful", rc=0))
        data["run_id"] = run_id
        report.write(data, tmp_path / run_id)
    assert [r["run_id"] for r in report.history(tmp_path)] == [
        "20261126T000002Z-rb-01-bbbb",
        "20261126T000001Z-rb-01-aaaa",
    ]
