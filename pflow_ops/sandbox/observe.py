"""Watching an alert-driven recovery from the outside: the alert's state in Prometheus and the
runs the receiver started. The end-to-end tests and ``bench/alert_loop.py`` both time a fault
through the same milestones: injected, alert firing, run started, service healthy, alert resolved.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ALERT_WAIT_TASK = "Wait for the alert to resolve in Prometheus and Alertmanager"


def alert_state(prometheus_url: str, alertname: str, timeout: float = 2.0) -> str:
    """``firing``, ``pending`` or ``inactive`` (``unreachable`` when Prometheus does not answer)."""
    try:
        with urllib.request.urlopen(prometheus_url + "/api/v1/alerts", timeout=timeout) as resp:
            payload = json.loads(resp.read())
    except (OSError, ValueError):
        return "unreachable"
    states = {
        a.get("state")
        for a in payload.get("data", {}).get("alerts", [])
        if a.get("labels", {}).get("alertname") == alertname
    }
    for state in ("firing", "pending"):
        if state in states:
            return state
    return "inactive"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
    """Seconds until ``predicate()`` held; raises TimeoutError after ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not within {timeout:.0f} s")
        time.sleep(interval)


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
