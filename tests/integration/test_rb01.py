"""RB-01 Backend Service Down, end to end: the real CLI, ansible-runner, the real playbook and
the real sandbox. Each test asserts what an on-call engineer would check: does the backend answer
/health, was it restarted or not, what does the report say."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Stack

pytestmark = pytest.mark.integration


def _checks(data: dict[str, object], status: str) -> set[str]:
    findings = data["findings"]
    assert isinstance(findings, list)
    return {f["check"] for f in findings if f["status"] == status}


def test_healthy_backend_is_left_alone(sandbox: Stack) -> None:
    pid = sandbox.backend_pid()
    run = sandbox.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "healthy" and data["changed"] == 0 and data["check"] is False
    assert data["actions"] == []
    assert {
        "service_status",
        "health_endpoint",
        "dependency_postgresql",
        "dependency_redis",
        "error_rate",
    } <= _checks(data, "ok")
    assert any(f["check"].startswith("disk_free:") for f in data["findings"])
    assert sandbox.backend_pid() == pid
    for key in ("json", "md"):
        assert Path(data["report"][key]).is_file()
    assert set(data) >= {
        "run_id",
        "runbook",
        "env",
        "check",
        "outcome",
        "changed",
        "findings",
        "actions",
        "report",
    }


def test_crashed_backend_is_restarted_and_verified(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    assert sandbox.health() is None
    run = sandbox.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered" and data["changed"] >= 1
    assert sandbox.health() == 200
    assert [a["action"] for a in data["actions"]] == ["restart_budget", "restart"]
    assert {v["check"]: v["status"] for v in data["verification"]} == {
        "health_gate": "ok",
        "soak": "ok",
        "process_confirmed": "ok",
    }
    assert "service_status" in _checks(data, "critical")
    md = Path(data["report"]["md"]).read_text()
    assert "RECOVERED" in md and "## Timeline" in md and "Restart the service backend" in md
    restart = [s for s in data["timeline"] if s["name"] == "Restart the service backend"]
    assert restart[0]["status"] == "changed" and restart[0]["phase"] == "recover"
    assert data["logs"]["localhost"], "recent logs are captured into the report"

    again = sandbox.recover().json
    assert again["outcome"] == "healthy" and again["changed"] == 0


def test_hung_backend_counts_as_down_and_is_restarted(sandbox: Stack) -> None:
    pid = sandbox.backend_pid()
    assert sandbox.cli("sandbox", "break", "backend-hang").rc == 0
    assert sandbox.health(timeout=1) is None
    run = sandbox.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered"
    health = next(f for f in data["findings"] if f["check"] == "health_endpoint")
    assert health["status"] == "critical" and "hung" in health["detail"]
    assert sandbox.health() == 200 and sandbox.backend_pid() != pid


def test_backend_errors_are_restarted_and_error_rate_is_rechecked(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-errors").rc == 0
    run = sandbox.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered"
    assert "error_rate" in _checks(data, "critical")
    after = {v["check"]: v for v in data["verification"]}["error_rate_after"]
    assert after["status"] == "ok"


@pytest.mark.parametrize(
    ("fault", "runbook", "dependency"),
    [("db-down", "RB-02", "postgresql"), ("redis-down", "RB-03", "redis")],
)
def test_dependency_down_escalates_without_restarting(
    sandbox: Stack, fault: str, runbook: str, dependency: str
) -> None:
    pid = sandbox.backend_pid()
    assert sandbox.cli("sandbox", "break", fault).rc == 0
    run = sandbox.recover()
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert data["changed"] == 0
    assert data["escalation"]["next_runbooks"] == [runbook]
    assert any(f"recover {runbook.lower()}" in s for s in data["escalation"]["next_steps"])
    assert f"dependency_{dependency}" in _checks(data, "critical")
    assert data["actions"] == []
    assert sandbox.backend_pid() == pid, "the backend must not be restarted"
    assert sandbox.budget_entries() == []
    md = Path(data["report"]["md"]).read_text()
    assert "## Escalation" in md
    # The path links the runbook page's escalation section when the report knows its URL.
    url = data.get("runbook_url") or ""
    path = f"[RB-01]({url}#escalation)" if url else "RB-01"
    assert f"Escalation path ({path}):" in md


def test_check_mode_diagnoses_for_real_and_changes_nothing(sandbox: Stack) -> None:
    pid = sandbox.backend_pid()
    assert sandbox.cli("sandbox", "break", "backend-hang").rc == 0
    run = sandbox.recover("--check")
    data = run.json
    assert data["check"] is True
    assert data["outcome"] == "escalate" and run.rc == 4
    assert "hung" in next(f for f in data["findings"] if f["check"] == "health_endpoint")["detail"]
    [restart] = [a for a in data["actions"] if a["action"] == "restart"]
    assert restart["result"].startswith("would restart (check mode): running, pid")
    assert (
        restart["before"].startswith("running, pid") and restart["after"] == "running (a new pid)"
    )
    assert sandbox.backend_pid() == pid, "check mode must not restart anything"
    assert sandbox.health(timeout=1) is None, "the backend is still hung"
    assert sandbox.budget_entries() == [], "check mode must not consume the budget"


def test_diagnose_never_changes_anything(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    run = sandbox.cli("diagnose", "rb-01", "--env", "local", "--output", "json")
    data = run.json
    assert run.rc == 4 and data["outcome"] == "escalate" and data["changed"] == 0
    assert "diagnose only" in data["reason"]
    assert sandbox.health() is None and sandbox.backend_pid() is None
    assert sandbox.budget_entries() == []


def test_an_out_of_range_threshold_stops_the_run_before_anything_is_touched(
    sandbox: Stack,
) -> None:
    """Workflow extra vars bypass AWX's survey bounds: the role checks the ranges itself."""
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    run = sandbox.recover("-e", "backend_error_rate_max=5")
    data = run.json
    # pflow-ops checks the same ranges before launch (exit 2, nothing ran: see
    # test_guardrails_input.py); the role's assert still guards AWX and plain ansible-playbook.
    assert run.rc == 2 and data["outcome"] == "usage"
    assert "out of range" in data["reason"] and "backend_error_rate_max" in data["reason"]
    # An AWX job whose survey said "prod", launched against this inventory: refused the same way.
    other = sandbox.recover("-e", "pflow_confirm_env=prod").json
    assert other["outcome"] == "error"
    assert "'prod' is not this inventory's environment 'local'" in other["reason"]
    assert sandbox.backend_pid() is None, "nothing was restarted"
    assert sandbox.budget_entries() == []


def test_spent_restart_budget_refuses_and_a_human_can_override(sandbox: Stack) -> None:
    # 2 of the inventory's 3 restarts used: one left (the policy is never set by -e)
    sandbox.spend_budget("local/localhost/backend", 2)
    budget: tuple[str, ...] = ()
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    assert sandbox.recover(*budget).json["outcome"] == "recovered"

    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    refused = sandbox.recover(*budget)
    assert refused.rc == 3
    assert refused.json["outcome"] == "refused"
    assert "restart budget spent" in refused.json["reason"]
    assert sandbox.health() is None, "a refused run must not restart"

    override = sandbox.recover(*budget, "--override-budget", "customer-facing outage, INC-42")
    data = override.json
    assert override.rc == 0 and data["outcome"] == "recovered"
    md = Path(data["report"]["md"]).read_text()
    assert "overridden" in md and "INC-42" in md
    assert data["budget_override"] is True
    assert sandbox.health() == 200


def test_two_concurrent_recoveries_one_is_refused(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    first = sandbox.popen(
        "recover", "rb-01", "--env", "local", "--output", "json", "-e", "backend_soak_seconds=6"
    )
    lock = sandbox.home / "locks" / "local-backend.lock"
    deadline = time.monotonic() + 20
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = sandbox.recover()
    out, err = first.communicate(timeout=120)
    assert second.rc == 3, second.stderr
    assert "another recovery is running" in second.stderr
    assert second.json["outcome"] == "refused"
    assert first.returncode == 0, err
    assert json.loads(out)["outcome"] == "recovered"


def test_a_killed_run_releases_its_lock(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    victim = sandbox.popen("recover", "rb-01", "--env", "local", "-e", "backend_soak_seconds=30")
    lock = sandbox.home / "locks" / "local-backend.lock"
    deadline = time.monotonic() + 20
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    run = sandbox.recover()
    assert run.rc == 0, run.stderr
    assert run.json["outcome"] in ("recovered", "healthy")


def test_history_and_report_commands(sandbox: Stack) -> None:
    data = sandbox.recover().json
    hist = sandbox.cli("history", "--output", "json")
    assert hist.rc == 0
    assert hist.json["runs"][0]["run_id"] == data["run_id"]
    shown = sandbox.cli("report", data["run_id"])
    assert shown.rc == 0 and shown.stdout.startswith("# RB-01 Backend Service Down: HEALTHY")


def test_plain_ansible_playbook_shares_the_restart_budget(sandbox: Stack) -> None:
    """AWX and hand-run ansible-playbook use the same budget as the CLI."""
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    proc = subprocess.run(
        [
            str(Path(__import__("sys").executable).parent / "ansible-playbook"),
            "-i",
            "inventories/local/hosts.yml",
            "playbooks/rb-01-backend-down.yml",
            "-e",
            "backend_soak_seconds=0",
        ],
        env={**sandbox.env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert sandbox.health() == 200
    assert len(sandbox.budget_entries()) == 1


def test_slow_but_up_backend_is_escalated_not_restarted(sandbox: Stack) -> None:
    """SlowRequests: a restart would not help; the runbook points at the database."""
    pid = sandbox.backend_pid()
    run = sandbox.recover("-e", "backend_latency_p95_max_ms=0.001", "--limit", "localhost")
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert "slow" in data["reason"] and data["escalation"]["next_runbooks"] == ["RB-02"]
    assert "latency_p95" in _checks(data, "warning")
    assert data["actions"] == [] and sandbox.backend_pid() == pid


def test_unreachable_service_manager_is_escalated(sandbox: Stack) -> None:
    run = sandbox.recover("-e", "backend_supervisor_server_url=unix:///nonexistent/supervisor.sock")
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert "service manager (supervisord) cannot act on backend" in data["reason"]
    assert "service_status" in _checks(data, "critical")
    assert data["actions"] == []
