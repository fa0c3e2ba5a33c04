"""The investigation's sub-steps in the report's timeline.

A runbook that investigates in one module execution (RB-01's ``backend_diagnose``) publishes, per
host, the module's timeline (``pflow_results[host].investigation``: per check its step name,
start offset, duration, status and one line). The report shows them right after the task that
ran them, the first task of the host's investigate phase (one diagnose module per service is the
roles' rule), so every check an engineer read as a task of its own is still a row of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pflow_ops.runner import Step

PHASE = "investigate"


def _checks(published: object) -> list[Mapping[str, Any]]:
    rows = published.get("investigation") if isinstance(published, Mapping) else None
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def _offset(start: str, seconds: object) -> str:
    """The parent's ISO start moved by ``seconds``; the parent's own start if either is unusable."""
    try:
        moved = datetime.fromisoformat(start) + timedelta(seconds=float(str(seconds)))
    except (TypeError, ValueError):
        return start
    return moved.isoformat()


def _seconds(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def substeps(parent: Step, checks: Sequence[Mapping[str, Any]]) -> list[Step]:
    return [
        Step(
            name=str(c.get("step") or c.get("check") or "?"),
            phase=PHASE,
            host=parent.host,
            start=_offset(parent.start, c.get("start_s", 0)),
            duration_s=_seconds(c.get("duration_s", 0)),
            status=str(c.get("status") or "ok"),
            changed=False,
            message=str(c.get("detail") or "")[:500],
        )
        for c in checks
    ]


def with_substeps(steps: Sequence[Step], results: object) -> tuple[Step, ...]:
    """``steps`` with each host's published investigation after its first investigate step."""
    published: Mapping[str, Any] = results if isinstance(results, Mapping) else {}
    out: list[Step] = []
    expanded: set[str] = set()
    for step in steps:
        out.append(step)
        if step.phase != PHASE or step.host in expanded:
            continue
        expanded.add(step.host)
        out += substeps(step, _checks(published.get(step.host)))
    return tuple(out)
