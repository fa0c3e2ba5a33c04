"""A stopped rolling restart is reported: the batches that ran and the hosts never reached."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pflow_ops import report
from pflow_ops.runner import RunResult
from tests.unit.test_report import _ctx as run_context


def _ctx(tmp_path: Path) -> report.RunContext:
    return replace(run_context(tmp_path), env="fleet")


def _result(outcomes: dict[str, str], batches: list[list[str]], hosts: list[str]) -> RunResult:
    results: dict[str, Any] = {
        h: {"outcome": o, "reason": f"{o} here", "findings": [], "actions": []}
        for h, o in outcomes.items()
    }
    return RunResult(
        status="failed",
        rc=2,
        artifact_data={
            "pflow_results": results,
            "pflow_rollout": {
                "hosts": hosts,
                "rolling": True,
                "serial": [1, "25%"],
                "max_fail_percentage": 0,
            },
            "pflow_rollout_batches": batches,
        },
    )


def test_stopped_rollout_names_the_hosts_not_attempted(tmp_path: Path) -> None:
    hosts = ["b1", "b2", "b3", "b4", "b5"]
    result = _result(
        {"b1": "healthy", "b2": "recovered", "b3": "escalate"}, [["b1"], ["b2", "b3"]], hosts
    )
    built = report.build(_ctx(tmp_path), result)
    data = built.to_dict()
    assert data["outcome"] == "escalate"
    assert data["rollout"]["not_attempted"] == ["b4", "b5"]
    assert data["reason"].startswith("b3: escalate here; the rollout stopped after batch 2")
    assert any("2 host(s) were not attempted" in s for s in data["escalation"]["next_steps"])
    md = report.to_markdown(built)
    assert "## Rollout" in md and "Not attempted (the rollout stopped): b4, b5" in md


def test_a_rollout_cut_short_is_never_a_recovery(tmp_path: Path) -> None:
    # A cancelled or timed-out run: every host reached recovered, two were never reached.
    result = _result({"b1": "recovered"}, [["b1"]], ["b1", "b2", "b3"])
    built = report.build(_ctx(tmp_path), result)
    assert built.outcome == "escalate"
    assert "not attempted: b2, b3" in built.reason


def test_complete_rollout_and_runs_without_a_plan_are_unchanged(tmp_path: Path) -> None:
    done = _result({"b1": "healthy", "b2": "recovered"}, [["b1"], ["b2"]], ["b1", "b2"])
    data = report.build(_ctx(tmp_path), done).to_dict()
    assert data["outcome"] == "recovered" and data["rollout"]["not_attempted"] == []
    plain = RunResult(
        status="successful", rc=0, artifact_data={"pflow_results": {"h": {"outcome": "healthy"}}}
    )
    assert report.build(_ctx(tmp_path), plain).rollout is None
