"""``pflow-ops review``: per-runbook statistics of a generated run history (runs/*/report.json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pflow_ops import catalogue, cli, review

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _report(n: int, runbook: str, outcome: str, age_days: float, **extra: Any) -> dict[str, Any]:
    started = NOW - timedelta(days=age_days)
    return {
        "run_id": f"{started:%Y%m%dT%H%M%SZ}-{runbook.lower()}-{n:04d}",
        "runbook": runbook,
        "env": "local",
        "check": False,
        "outcome": outcome,
        "reason": extra.pop("reason", outcome),
        "started_at": started.isoformat(),
        "duration_s": extra.pop("duration_s", 1.0),
        "budget_override": False,
        "findings": [],
        "alert": None,
        "timeline": [{"phase": "preflight"}, {"phase": "investigate"}],
        **extra,
    }


def history() -> list[dict[str, Any]]:
    down = {"check": "service_status", "status": "critical"}
    ran_all = [{"phase": p} for p in ("preflight", "investigate", "recover", "verify", "report")]
    return [
        _report(
            1,
            "RB-01",
            "recovered",
            1,
            duration_s=10.0,
            findings=[down],
            timeline=ran_all,
            alert={"alertname": "BackendServiceDown", "state": "resolved"},
            incident={"key": "inc-1"},
        ),
        _report(
            2,
            "RB-01",
            "recovered",
            2,
            duration_s=30.0,
            findings=[down],
            timeline=ran_all,
            incident={"key": "inc-1"},
        ),  # the same incident, a second run
        _report(
            3,
            "RB-01",
            "recovered",
            3,
            duration_s=20.0,
            budget_override=True,
            timeline=ran_all,
            alert={"alertname": "BackendServiceDown"},
        ),
        _report(4, "RB-01", "escalate", 4, reason="a dependency is down", findings=[down]),
        _report(5, "RB-01", "refused", 5, reason="restart budget spent"),
        _report(6, "RB-01", "healthy", 6, check=True),
        _report(7, "RB-01", "recovered", 40, duration_s=999.0),  # outside the period
        _report(
            8,
            "RB-02",
            "escalate",
            1,
            reason="needs a human: wraparound",
            findings=[
                {"check": "wraparound", "status": "critical"},
                {"check": "cache_hit", "status": "ok"},
                {"check": "disk_free:/srv/pg", "status": "ok"},
                {"check": "disk_free:/tmp/pfo-bench-1", "status": "ok"},
            ],
            alert={"alertname": "DatabaseSlowQueries"},
        ),
    ]


def test_per_runbook_statistics_of_the_period() -> None:
    data = review.review(catalogue.load(), history(), NOW, 30)
    assert data["period"]["runs"] == 7
    rb01, rb02, rb03 = data["runbooks"]
    assert rb01["runs"] == 6 and rb01["check_runs"] == 1
    assert rb01["incidents"] == 4  # inc-1 twice, then runs 3, 4 and 5 on their own
    assert rb01["outcomes"] == {"escalate": 1, "healthy": 1, "recovered": 3, "refused": 1}
    assert rb01["time_to_recover_s"] == {"count": 3, "median": 20.0, "p90": 30.0}
    assert rb01["escalations"] == [{"name": "a dependency is down", "count": 1}]
    assert rb01["budget_refusals"] == 1 and rb01["budget_overrides"] == 1
    assert rb01["findings"] == [{"name": "service_status", "count": 3}]
    assert rb01["alerts"] == [{"name": "BackendServiceDown", "count": 2}]
    assert rb01["alerts_without_runs"] == [
        "HighErrorRate",
        "SlowRequests",
        "BackendEventLoopBlocked",
        "BackendEventLoopLag",
        "BackendHeapNearLimit",
    ]
    assert rb01["steps_never_ran"] == []
    assert rb02["findings"] == [{"name": "wraparound", "count": 1}]
    # one entry per kind of check: the paths disk_free ran on share one threshold
    assert rb02["checks_never_crossed"] == ["cache_hit", "disk_free"]
    assert rb01["checks_never_crossed"] == []
    never = rb02["steps_never_ran"]
    assert "Restart a down PostgreSQL under the restart budget, then SELECT 1" in never
    assert len(never) == sum(
        1
        for s in catalogue.load().get("rb-02").steps
        if s.phase not in ("preflight", "investigate")
    )
    assert rb03["runs"] == 0 and rb03["time_to_recover_s"]["median"] is None
    assert rb03["steps_never_ran"] == []  # no runs: nothing to say about its steps


@pytest.mark.parametrize(
    ("values", "p50", "p90"),
    [([], None, None), ([5.0], 5.0, 5.0), ([1.0, 2.0, 3.0, 4.0], 2.0, 4.0)],
)
def test_percentiles_are_nearest_rank(values: list[float], p50: Any, p90: Any) -> None:
    assert review.percentile(values, 50) == p50 and review.percentile(values, 90) == p90


def test_since_parses_and_refuses_bad_periods() -> None:
    assert review.since_days("30d") == 30 and review.since_days("2w") == 14
    assert review.since_days("12h") == 0.5
    for bad in ("30", "xd", "0d", "-1d"):
        with pytest.raises(review.UsageError):
            review.since_days(bad)


def test_the_cli_reads_runs_and_renders_json_and_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path))
    now = datetime.now(UTC)
    for i, rep in enumerate(history()):
        # Rebase the history onto the real clock, as the CLI reviews the period ending now.
        started = now - (NOW - datetime.fromisoformat(rep["started_at"]))
        rep["started_at"] = started.isoformat()
        run = tmp_path / "runs" / f"run-{i}"
        run.mkdir(parents=True)
        (run / "report.json").write_text(json.dumps(rep))
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "report.json").write_text("{not json")
    assert cli.main(["review", "--since", "30d", "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["runs"] for r in data["runbooks"]] == [6, 1, 0]
    assert cli.main(["review"]) == 0
    md = capsys.readouterr().out
    url = catalogue.load().get("rb-01").runbook_url
    assert f"## [RB-01 Backend Service Down]({url})" in md
    assert "median 20.0 s, p90 30.0 s (3 recovered runs)" in md
    assert "- 1 x a dependency is down" in md
    assert "Alerts that started no run: HighErrorRate, SlowRequests" in md
    assert "Checks that never crossed their threshold: cache_hit" in md
    assert cli.main(["review", "--since", "soon"]) == 2


def test_save_writes_the_review_with_its_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))
    now = datetime.now(UTC)
    for i, rep in enumerate(history()):
        rep["started_at"] = (now - (NOW - datetime.fromisoformat(rep["started_at"]))).isoformat()
        run = tmp_path / "home" / "runs" / f"run-{i}"
        run.mkdir(parents=True)
        (run / "report.json").write_text(json.dumps(rep))
    out = tmp_path / "review"
    assert cli.main(["review", "--save", str(out)]) == 0
    png = (out / "review.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    md = (out / "review.md").read_text()
    assert "![Run duration and outcome over the period](review.png)" in md
    saved = json.loads((out / "review.json").read_text())
    assert [len(r["timeline"]) for r in saved["runbooks"]] == [5, 1, 0]
    assert "review.png" not in capsys.readouterr().out  # stdout: the review without the plot


def test_a_check_crossed_on_one_instance_is_not_listed_as_never_crossed() -> None:
    runs = [
        _report(
            1,
            "RB-01",
            "escalate",
            1,
            findings=[
                {"check": "disk_free:/data", "status": "critical"},
                {"check": "disk_free:/var/log", "status": "ok"},
            ],
        ),
    ]
    rb01 = review.review(catalogue.load(), runs, NOW, 30)["runbooks"][0]
    assert rb01["checks_never_crossed"] == []
    assert rb01["findings"] == [{"name": "disk_free:/data", "count": 1}]
