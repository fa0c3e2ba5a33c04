"""Watching an alert-driven recovery from the outside: the alert's state in Prometheus and the
runs the receiver started. The end-to-end tests and ``bench/alert_loop.py`` both time a fault
through the same milestones: injected, alert firing, run started, service healthy, alert resolved.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pflow_ops.sandbox.net import wait_for

ALERT_WAIT_TASK = "Wait for the alert to resolve in Prometheus and Alertmanager"


def active_alerts(prometheus_url: str, timeout: float = 2.0) -> list[dict[str, Any]] | None:
    """Prometheus' pending and firing alerts; None when Prometheus does not answer."""
    try:
        with urllib.request.urlopen(prometheus_url + "/api/v1/alerts", timeout=timeout) as resp:
            payload = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    alerts: list[dict[str, Any]] = payload.get("data", {}).get("alerts", [])
    return alerts


def alert_state(prometheus_url: str, alertname: str) -> str:
    """``firing``, ``pending`` or ``inactive`` (``unreachable`` when Prometheus does not answer)."""
    alerts = active_alerts(prometheus_url)
    if alerts is None:
        return "unreachable"
    states = {a.get("state") for a in alerts if a.get("labels", {}).get("alertname") == alertname}
    for state in ("firing", "pending"):
        if state in states:
            return state
    return "inactive"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
    """Poll until ``predicate()`` holds; SandboxError after ``timeout``."""
    wait_for(lambda: True if predicate() else None, timeout, "the condition", interval)


SELF_LABEL = "pflow_ops_self"  # monitoring/rules/pflow-ops-receiver.rules.yml


def service_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts about the services, without pflow-ops' own (runs in progress, queued alerts,
    an escalation in the last 15 minutes): those are not faults a heal clears."""
    return [a for a in alerts if (a.get("labels") or {}).get(SELF_LABEL) != "true"]


def wait_quiet(prometheus_url: str, timeout: float) -> None:
    """Wait until Prometheus has no pending or firing alert about the services (after a heal)."""

    def quiet() -> bool:
        alerts = active_alerts(prometheus_url)
        return alerts is not None and service_alerts(alerts) == []

    wait_until(quiet, timeout, 0.5)


@dataclass(frozen=True)
class Run:
    """A run directory under ``$PFLOW_OPS_HOME/runs`` and its report, once written."""

    run_id: str
    path: Path
    created: float

    @property
    def report(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def runs(runs_dir: Path, runbook: str, since: float) -> list[Run]:
    """Runs of ``runbook`` (e.g. ``RB-01``) whose directory appeared after ``since`` (epoch s)."""
    slug = f"-{runbook.lower()}-"
    found = []
    for path in runs_dir.glob("*"):
        if slug not in path.name or not path.is_dir():
            continue
        created = _started(path)
        if created >= since:
            found.append(Run(path.name, path, created))
    return sorted(found, key=lambda r: r.created)


def _started(path: Path) -> float:
    # The run directory's mtime moves when the report is written; its artifacts directory gets
    # its one entry (the runner's) when the run starts.
    artifacts = path / "artifacts"
    return (artifacts if artifacts.exists() else path).stat().st_mtime


def step_times(report: dict[str, Any], task: str = ALERT_WAIT_TASK) -> tuple[float, float] | None:
    """(start, end) in epoch seconds of a timeline step, e.g. the closed-loop wait."""
    for step in report.get("timeline", []):
        if step.get("name") == task and step.get("start"):
            start = datetime.fromisoformat(str(step["start"])).timestamp()
            return start, start + float(step.get("duration_s") or 0.0)
    return None
