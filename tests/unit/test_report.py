"""Reports are built from runner events and the roles' set_stats, never from text."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from pflow_ops import catalogue, outcome, report
from pflow_ops.report_model import Action, Report
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
    built = report.build(_ctx(tmp_path), result)
    assert built.outcome == "recovered" and built.changed == 1
    assert built.escalation is None
    assert built.timeline[0].status == "changed"
    report.write(built, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "RECOVERED" in md and "restarted: pid 1 -> 2" in md and "line one" in md
    data = json.loads((tmp_path / "report.json").read_text())
    assert data == built.to_dict()
    assert data["run_id"] == built.run_id and data["timeline"][0]["duration_s"] == 1.25
    assert data["findings"] == host["findings"] and data["actions"] == host["actions"]
    assert data["logs"] == {"localhost": ["line one"]}


# The keys of report.json and `--output json`: the README documents them, the integration
# tests and the receiver read them. A key may be added, never renamed or dropped.
REPORT_KEYS = [
    "run_id",
    "runbook",
    "title",
    "runbook_url",
    "severity",
    "env",
    "check",
    "mode",
    "outcome",
    "reason",
    "changed",
    "started_at",
    "finished_at",
    "duration_s",
    "budget_override",
    "findings",
    "actions",
    "verification",
    "alert",
    "rollout",
    "escalation",
    "timeline",
    "logs",
    "runner",
    "warnings",
    "notes",
    "incident",
    "report",
]


def test_the_json_report_keeps_its_keys_and_what_roles_add(tmp_path: Path) -> None:
    host = {
        "outcome": "escalate",
        "reason": "postgresql down",
        "next_runbook": "RB-02",
        "findings": [{"check": "db", "status": "critical", "detail": "down", "tree": ["a"]}],
        "actions": [{"action": "cancel", "target": "pid 7", "result": "done", "why": "runaway"}],
    }
    data = report.build(_ctx(tmp_path), _consume(_events({"localhost": host}))).to_dict()
    assert list(data) == REPORT_KEYS
    assert data["findings"][0]["tree"] == ["a"] and data["actions"][0]["why"] == "runaway"
    assert list(data["escalation"]) == ["reason", "next_runbooks", "tried", "next_steps", "path"]
    assert data["escalation"]["tried"] == host["actions"]
    assert data["runner"] == {"status": "successful", "rc": 0, "artifacts": ""}
    assert data["report"] == {
        "json": str(tmp_path / "report.json"),
        "md": str(tmp_path / "report.md"),
    }
    # Several hosts: every item names its host.
    two = {"a": {**host, "outcome": "healthy"}, "b": host}
    data = report.build(_ctx(tmp_path), _consume(_events(two))).to_dict()
    assert [f["host"] for f in data["findings"]] == ["a", "b"]
    assert data["reason"] == "b: postgresql down"


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
    built = report.build(_ctx(tmp_path), _consume(_events({"localhost": host})))
    md = report.to_markdown(built)
    assert "| check | status | value | threshold | detail |" in md
    assert "| eviction_policy | critical | noeviction | allkeys-lru | writes fail with OOM |" in md
    row = "| config_set | maxmemory-policy | noeviction | allkeys-lru | applied and persisted |"
    assert row in md
    assert built.actions[0].change == " (noeviction -> allkeys-lru)"
    was = Action.from_published({"action": "end", "before": "active 75 s", "after": ""})
    assert was.change == " (was active 75 s)"
    assert Action.from_published({"action": "analyze"}).change == ""


def test_escalation_quotes_the_runbook_path_and_next_runbook(tmp_path: Path) -> None:
    host = {
        "outcome": "escalate",
        "reason": "postgresql down",
        "next_runbook": "RB-02",
        "findings": [],
        "actions": [],
    }
    built = report.build(_ctx(tmp_path), _consume(_events({"localhost": host}, changed=0)))
    esc = built.escalation
    assert esc is not None
    assert built.outcome == "escalate" and esc.next_runbooks == ("RB-02",)
    assert any("recover rb-02" in s for s in esc.next_steps)
    assert [p.level for p in esc.path] == ["L1", "L2", "L3"]
    md = report.to_markdown(built)
    assert "## Escalation" in md and "Backend team lead" in md
    # The report links its runbook page (docs/runbooks, published at the catalogue's URL).
    url = catalogue.load().get("rb-01").runbook_url
    assert built.runbook_url == url and url.endswith("/rb-01")
    assert f"- Runbook: [RB-01 Backend Service Down]({url})" in md
    assert f"Escalation path ([RB-01]({url}#escalation)):" in md


def test_worst_host_outcome_wins_and_missing_results_are_errors(tmp_path: Path) -> None:
    hosts = {
        "a": {"outcome": "recovered", "reason": "ok"},
        "b": {"outcome": "refused", "reason": "budget spent"},
    }
    built = report.build(_ctx(tmp_path), _consume(_events(hosts)))
    assert built.outcome == "refused" and "b: budget spent" in built.reason
    empty = RunResult(status="failed", rc=4, stdout_tail=["ERROR! the playbook could not run"])
    built = report.build(_ctx(tmp_path), empty)
    assert built.outcome == "error" and "could not run" in built.reason
    assert outcome.exit_code(built.outcome) == 1


def test_an_outcome_outside_the_vocabulary_fails_closed(tmp_path: Path) -> None:
    hosts = {
        "a": {"outcome": "recovered", "reason": "ok"},
        "b": {"outcome": "fixed-ish", "reason": "a role typo"},
    }
    built = report.build(_ctx(tmp_path), _consume(_events(hosts)))
    assert built.outcome == "error" and built.reason == "b: a role typo"
    assert built.escalation is not None


def test_unreachable_hosts_escalate(tmp_path: Path) -> None:
    result = RunResult(status="failed", rc=4, stats={"dark": {"web-1": 1}, "changed": {}})
    built = report.build(_ctx(tmp_path), result)
    assert built.outcome == "escalate"
    assert built.findings[0].check == "reachability"


def _with_loop(tmp_path: Path, state: str, check: bool = False) -> Report:
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
    data = _with_loop(tmp_path, "resolved").to_dict()
    assert data["outcome"] == "recovered"
    assert data["verification"][-1] == {
        "check": "alert_resolved",
        "status": "ok",
        "detail": "BackendServiceDown resolved after 4.0 s",
    }
    assert data["alert"] == {
        "state": "resolved",
        "alertname": "BackendServiceDown",
        "timeout_s": 90,
        "detail": "BackendServiceDown resolved after 4.0 s",
    }
    firing = _with_loop(tmp_path, "firing")
    assert firing.outcome == "escalate"
    assert "did not resolve within 90 s" in firing.reason
    assert firing.escalation is not None
    unknown = _with_loop(tmp_path, "unknown")
    assert unknown.outcome == "escalate"
    assert "could not confirm" in unknown.reason
    # No monitoring configured: recorded, and the runbook's own verdict stands.
    assert _with_loop(tmp_path, "not_checked").outcome == "recovered"
    # A dry run fixed nothing, so an alert still firing does not change its verdict.
    assert _with_loop(tmp_path, "firing", check=True).outcome == "recovered"
    assert "alert_resolved" in report.to_markdown(firing)


def test_history_lists_runs_newest_first(tmp_path: Path) -> None:
    for run_id in ("20261126T000001Z-rb-01-aaaa", "20261126T000002Z-rb-01-bbbb"):
        ctx = _ctx(tmp_path / run_id)
        built = replace(report.build(ctx, RunResult(status="successful", rc=0)), run_id=run_id)
        report.write(built, tmp_path / run_id)
    assert [r.to_dict()["run_id"] for r in report.history(tmp_path)] == [
        "20261126T000002Z-rb-01-bbbb",
        "20261126T000001Z-rb-01-aaaa",
    ]
