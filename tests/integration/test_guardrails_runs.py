"""Guardrails for runs that die (issue 13, section 2): a killed CLI leaves no playbook acting on
its own and keeps the service locked while any process of the run lives; every run is on disk
from its first second; a canceled run reports what its own timeline shows; tasks' warnings reach
the report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from pflow_ops.lock import LockHeld, RunLock
from tests.integration.conftest import Stack


def _run_pids(run_id: str) -> set[int]:
    """Every process whose command line names the run (the watchdog, ansible-playbook and its
    workers all carry the run's directory on theirs)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if run_id.encode() in cmdline and b"ansible-playbook" in cmdline:
            pids.add(int(entry.name))
    return pids


def _wait_for(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def _record(home: Path) -> tuple[str, dict[str, object]]:
    records = sorted((home / "runs").glob("*/run.json"))
    assert records, "no run record"
    return records[-1].parent.name, json.loads(records[-1].read_text())


def _start_and_wait_for_the_restart(sandbox: Stack, *extra: str) -> subprocess.Popen[str]:
    """A recover on a crashed backend, returned once it has taken its restart (the budget file
    has the entry) and is in its soak: the playbook is acting on the service."""
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    proc = sandbox.popen("recover", "rb-01", "--env", "local", *extra)
    _wait_for(lambda: len(sandbox.budget_entries()) == 1)
    _wait_for(lambda: sandbox.health() == 200)  # the restart is done: the soak runs
    return proc


def test_a_killed_cli_stops_its_playbook_and_keeps_the_service_locked(sandbox: Stack) -> None:
    victim = _start_and_wait_for_the_restart(sandbox, "-e", "backend_soak_seconds=30")
    run_id, record = _record(sandbox.home)
    assert record["state"] == "running"
    assert _run_pids(run_id), "the playbook runs"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    # While any process of the killed run lives, the lock is not free: acquire waits for the hold
    # (HOLD_WAIT_S) and refuses if it outlasts that. Whenever it returns, the run's processes are
    # gone, however fast or slow the watchdog stopped them (no timing assumed here).
    for _ in range(30):  # each refusal has waited HOLD_WAIT_S: the run is stopped long before
        lock = RunLock("local", "backend", "probe", directory=sandbox.home / "locks")
        try:
            lock.acquire()
        except LockHeld:
            continue
        lock.release()
        assert not _run_pids(run_id), "lock free while the killed run's playbook still lives"
        break
    else:
        raise AssertionError("the killed run's processes still hold the service")
    second = sandbox.recover()
    # The killed run's playbook is gone and did not restart again; one restart for the incident.
    assert not _run_pids(run_id)
    assert second.rc == 0, second.stderr
    assert second.json["outcome"] in ("healthy", "recovered")
    assert len(sandbox.budget_entries()) == 1
    assert f"the previous run {run_id} was interrupted at step" in second.stderr
    assert any(run_id in note for note in second.json["notes"])
    # history lists it as interrupted; its report says what it did, from its events.
    hist = sandbox.cli("history", "--output", "json").json["runs"]
    killed = next(r for r in hist if r["run_id"] == run_id)
    assert killed["state"] == "interrupted"
    shown = sandbox.cli("report", run_id)
    assert shown.rc == 0, shown.stderr
    assert (
        "interrupted" in shown.stdout and "Take one restart from the restart budget" in shown.stdout
    )
    assert not (sandbox.home / "runs" / run_id / "env" / "extravars").exists()


def test_a_run_is_listed_while_it_runs_and_a_refused_one_is_on_record(sandbox: Stack) -> None:
    first = _start_and_wait_for_the_restart(
        sandbox, "--output", "json", "-e", "backend_soak_seconds=8"
    )
    run_id, _ = _record(sandbox.home)
    hist = sandbox.cli("history", "--output", "json").json["runs"]
    assert [r["state"] for r in hist if r["run_id"] == run_id] == ["running"]
    second = sandbox.recover()
    assert second.rc == 3, second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    rows = {r["run_id"]: r for r in sandbox.cli("history", "--output", "json").json["runs"]}
    assert rows[second.json["run_id"]]["state"] == "refused"
    assert rows[second.json["run_id"]]["outcome"] == "refused"
    assert rows[run_id]["state"] == "finished" and rows[run_id]["outcome"] == "recovered"
    shown = sandbox.cli("report", second.json["run_id"])
    assert shown.rc == 2 and "refused" in shown.stderr and "another recovery" in shown.stderr


def test_sigterm_the_canceled_run_reports_the_changes_its_timeline_shows(sandbox: Stack) -> None:
    proc = _start_and_wait_for_the_restart(
        sandbox, "--output", "json", "-e", "backend_soak_seconds=30"
    )
    run_id, _ = _record(sandbox.home)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    data = json.loads(out)
    assert data["runner"]["status"] == "canceled"
    assert data["changed"] >= 1
    assert any("restart" in a["action"].lower() for a in data["actions"]), data["actions"]
    md = (sandbox.home / "runs" / run_id / "report.md").read_text()
    assert "nothing needed or allowed" not in md
    assert not _run_pids(run_id)


def test_task_warnings_reach_the_report_and_the_cli(sandbox: Stack) -> None:
    budget = sandbox.home / "budget" / "restarts.json"
    budget.parent.mkdir(parents=True, exist_ok=True)
    budget.write_text("{not json")
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    run = sandbox.cli(
        "recover", "rb-01", "--check", "--output", "json", "-e", "backend_soak_seconds=1"
    )
    warnings = run.json["warnings"]
    assert any("corrupt" in w for w in warnings), (warnings, run.stderr)
    assert "pflow-ops: warning: " in run.stderr and "corrupt" in run.stderr
    md = Path(run.json["report"]["md"]).read_text()
    assert "## Warnings" in md and "corrupt" in md


def test_run_directories_are_private_and_old_runs_are_pruned(sandbox: Stack) -> None:
    data = sandbox.recover().json
    run_dir = sandbox.home / "runs" / data["run_id"]
    assert run_dir.stat().st_mode & 0o777 == 0o700
    for name in ("report.json", "report.md", "run.json"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o600
    old = os.path.getmtime(run_dir) - 40 * 86400
    record = json.loads((run_dir / "run.json").read_text())
    record["started"] = old
    (run_dir / "run.json").write_text(json.dumps(record))
    kept = sandbox.cli("history", "--prune", "--older-than", "60d")
    assert kept.rc == 0 and run_dir.is_dir()
    pruned = sandbox.cli("history", "--prune", "--older-than", "30d", "--output", "json")
    assert pruned.rc == 0 and pruned.json["removed"] == [data["run_id"]]
    assert not run_dir.exists()
    assert sandbox.cli("history", "--prune", "--older-than", "soon").rc == 2
