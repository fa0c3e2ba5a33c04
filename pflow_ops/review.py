"""``pflow-ops review``: the monthly runbook review, with data from the run reports (``runs/``).

Per runbook: runs and incidents handled, outcomes, time to recover (median and p90 of the
recovered runs' durations), escalations with their reasons, budget refusals and overrides, the
most frequent findings, the checks that never crossed their threshold, the alerts that started
runs (and those that started none), and the catalogue steps whose phase never ran in the period
(input for "update procedures based on new learnings"). Pure functions of the
reports' JSON; the CLI reads ``runs/*/report.json``, adds the receiver journal's section
(:mod:`pflow_ops.review_journal`) and renders JSON, Markdown or HTML.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pflow_ops.catalogue import Catalogue, Runbook
from pflow_ops.errors import UsageError

TOP = 5
BAD = ("warning", "critical")
UNITS = {"d": 1.0, "h": 1 / 24, "w": 7.0}


def since_days(text: str) -> float:
    """``30d``, ``12h``, ``2w`` -> days."""
    number, unit = text[:-1], text[-1:].lower()
    try:
        if unit in UNITS and float(number) > 0:
            return float(number) * UNITS[unit]
    except ValueError:
        pass
    raise UsageError(f"bad --since '{text}': expected a number with d, h or w (30d)")


def load_reports(runs_dir: Path) -> list[dict[str, Any]]:
    """Every finished run's report.json (unreadable ones are skipped: a review is a summary)."""
    out = []
    for path in sorted(runs_dir.glob("*/report.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.append(data)
    return out


def _started(report: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(report.get("started_at")))
    except ValueError:
        return None


def in_period(
    reports: Iterable[Mapping[str, Any]], now: datetime, days: float
) -> list[Mapping[str, Any]]:
    start = now - timedelta(days=days)
    return [r for r in reports if (t := _started(r)) is not None and start <= t <= now]


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (p50 is the median of an odd count), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 2)


def _top(counter: Counter[str]) -> list[dict[str, Any]]:
    return [
        {"name": k, "count": n} for k, n in sorted(counter.items(), key=lambda i: (-i[1], i[0]))
    ][:TOP]


def check_kind(check: str) -> str:
    """The kind of a check, without the instance a check name may carry (disk_free:/data)."""
    return check.split(":", 1)[0]


def runbook_stats(rb: Runbook, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One runbook's statistics over its runs in the period."""
    real = [r for r in runs if not r.get("check")]
    recovered = [float(r.get("duration_s") or 0) for r in real if r.get("outcome") == "recovered"]
    incidents = {str((r.get("incident") or {}).get("key") or r.get("run_id")) for r in real}
    escalations = Counter(str(r.get("reason", "")) for r in real if r.get("outcome") == "escalate")
    findings = Counter(
        str(f.get("check"))
        for r in runs
        for f in r.get("findings") or []
        if isinstance(f, Mapping) and f.get("status") in BAD
    )
    seen = {
        check_kind(str(f.get("check")))
        for r in runs
        for f in r.get("findings") or []
        if isinstance(f, Mapping) and f.get("check")
    }
    alerts = Counter(str((r.get("alert") or {}).get("alertname")) for r in runs if r.get("alert"))
    phases = {str(s.get("phase")) for r in runs for s in r.get("timeline") or [] if s.get("phase")}
    return {
        "runbook": rb.id,
        "title": rb.title,
        "runbook_url": rb.runbook_url,
        "runs": len(runs),
        "check_runs": len(runs) - len(real),
        "incidents": len(incidents),
        "outcomes": dict(sorted(Counter(str(r.get("outcome")) for r in runs).items())),
        "time_to_recover_s": {
            "count": len(recovered),
            "median": percentile(recovered, 50),
            "p90": percentile(recovered, 90),
        },
        "escalations": _top(escalations),
        "budget_refusals": sum(1 for r in real if r.get("outcome") == "refused"),
        "budget_overrides": sum(1 for r in real if r.get("budget_override")),
        "findings": _top(findings),
        "alerts": _top(alerts),
        "alerts_without_runs": [a for a in rb.alerts if a not in alerts],
        "steps_never_ran": [s.name for s in rb.steps if runs and s.phase not in phases],
        # Checks that ran but never crossed their threshold: candidates for a threshold review.
        # A threshold belongs to the kind of check, not to one of its instances: disk_free:/data
        # and disk_free:/var/log share backend_disk_free_pct_min, so they are reviewed as one.
        "checks_never_crossed": sorted(seen - {check_kind(name) for name in findings}),
        "timeline": [
            {
                "started_at": str(r.get("started_at")),
                "outcome": str(r.get("outcome")),
                "duration_s": float(r.get("duration_s") or 0),
            }
            for r in sorted(real, key=lambda r: str(r.get("started_at")))
        ],
    }


def review(
    cat: Catalogue, reports: Iterable[Mapping[str, Any]], now: datetime, days: float
) -> dict[str, Any]:
    """The review of the period ending ``now``: {period, runbooks: [runbook_stats]}."""
    period = in_period(reports, now, days)
    by_id: dict[str, list[Mapping[str, Any]]] = {}
    for r in period:
        by_id.setdefault(str(r.get("runbook")), []).append(r)
    return {
        "period": {
            "from": (now - timedelta(days=days)).isoformat(timespec="seconds"),
            "to": now.isoformat(timespec="seconds"),
            "days": days,
            "runs": len(period),
        },
        "runbooks": [runbook_stats(rb, by_id.get(rb.id, [])) for rb in cat.runbooks],
    }
