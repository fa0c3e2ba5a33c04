"""The run record (runs/ID/run.json), the watchdog wrapper and the runner's filtered
environment: pure Python, no Ansible."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pflow_ops import runrecord, watchdog
from pflow_ops.lock import LockHeld, RunLock
from pflow_ops.report import timeline_actions
from pflow_ops.runner import EventConsumer, RunResult, Step, passed_env

WATCHDOG = Path(watchdog.__file__)


def _step(name: str, changed: bool) -> Step:
    return Step(name, "recover", "localhost", "", 0.1, "changed" if changed else "ok", changed)


def test_a_record_is_running_while_its_process_lives_and_interrupted_after(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    runrecord.start(run_dir, {"run_id": "r1", "env": "local", "service": "backend"})
    record = runrecord.load(run_dir)
    assert record is not None and runrecord.state(record) == runrecord.RUNNING
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert (run_dir / "run.json").stat().st_mode & 0o777 == 0o600
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record["pid"] = int(dead.stdout)
    assert runrecord.state(record) == runrecord.INTERRUPTED
    record["pid"] = os.getpid()
    record["pid_start"] = "1"  # our pid, but another process's start time: a reused pid
    assert runrecord.state(record) == runrecord.INTERRUPTED


def test_the_previous_interrupted_run_is_found_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runrecord.start(runs / "a", {"env": "local", "service": "backend"})
    runrecord.update(runs / "a", pid=2**22 + 1)  # no such process
    assert runrecord.previous_interrupted(runs, "local", "cache", "b") is None
    assert runrecord.previous_interrupted(runs, "local", "backend", "b") == runs / "a"
    runrecord.update(runs / "a", noticed_by="b")
    assert runrecord.previous_interrupted(runs, "local", "backend", "c") is None


def test_replay_rebuilds_an_interrupted_run_from_its_events(tmp_path: Path) -> None:
    events = tmp_path / "r" / "artifacts" / "runner" / "job_events"
    events.mkdir(parents=True)
    for n, (task, changed) in enumerate([("Check", False), ("Restart the backend", True)], 1):
        data = {"task": task, "host": "localhost", "res": {"changed": changed}}
        event = {"counter": n, "event": "runner_on_ok", "event_data": data}
        (events / f"{n}-x.json").write_text(json.dumps(event))
    result = runrecord.replay(tmp_path / "r")
    assert result.status == "interrupted" and runrecord.last_step(result) == "Restart the backend"
    assert result.changed == 1
    assert [a.action for a in timeline_actions(result)] == ["Restart the backend"]


def test_task_warnings_are_collected_once_each() -> None:
    consumer = EventConsumer()
    for _ in range(2):
        res = {"changed": False, "warnings": ["budget file corrupt"]}
        consumer.dispatch({"event": "runner_on_ok", "event_data": {"task": "t", "res": res}})
    assert consumer.warnings == ["budget file corrupt"]


def test_a_canceled_run_counts_the_changes_of_its_timeline() -> None:
    result = RunResult("canceled", 254, steps=[_step("a", False), _step("restart", True)])
    assert result.changed == 1
    assert [a.action for a in timeline_actions(result)] == ["restart"]


def test_prune_removes_old_finished_runs_only(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runrecord.start(runs / "old", {})
    runrecord.update(runs / "old", state=runrecord.FINISHED, started=time.time() - 40 * 86400)
    runrecord.start(runs / "live", {})
    runrecord.update(runs / "live", started=time.time() - 40 * 86400)  # still running: kept
    runrecord.start(runs / "new", {})
    runrecord.update(runs / "new", state=runrecord.FINISHED)
    assert runrecord.prune(runs, 30) == ["old"]
    assert sorted(p.name for p in runs.iterdir()) == ["live", "new"]


def test_retention_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runrecord.RETENTION_ENV, "7")
    assert runrecord.retention_days() == 7
    monkeypatch.setenv(runrecord.RETENTION_ENV, "soon")
    assert runrecord.retention_days() == runrecord.RETENTION_DAYS


def test_the_playbook_sees_only_the_variables_it_needs() -> None:
    caller = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "ANSIBLE_VAULT_PASSWORD_FILE": "/p"}
    config = {**caller, "AWX_ISOLATED_DATA_DIR": "/a", "PFLOW_OPS_HOME": "/h"}
    assert passed_env(config, caller) == {
        "PATH": "/bin",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/p",
        "AWX_ISOLATED_DATA_DIR": "/a",
        "PFLOW_OPS_HOME": "/h",
    }


def test_the_watchdog_holds_the_lock_for_its_command_and_removes_the_secrets_file(
    tmp_path: Path,
) -> None:
    lock = RunLock("local", "backend", "run-1", directory=tmp_path)
    secrets_file = tmp_path / "extravars"
    secrets_file.write_text("{}")
    probe = (
        "import fcntl, sys; fd = open(sys.argv[1]); fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    )
    # While the wrapped command runs the hold lock is held: a fresh open of it cannot lock.
    child = [sys.executable, "-c", probe, str(lock.hold_path)]
    argv = ["--parent", str(os.getpid()), "--hold", str(lock.hold_path)]
    argv += ["--run-id", "run-1", "--remove", str(secrets_file), "--", *child]
    proc = subprocess.run([sys.executable, "-I", str(WATCHDOG), *argv], check=False)
    assert proc.returncode == 1  # BlockingIOError in the probe: the lock was held
    assert not secrets_file.exists()
    with lock:  # all gone: free again
        pass


def test_the_lock_is_refused_while_a_run_process_holds_the_hold_file(tmp_path: Path) -> None:
    lock = RunLock("local", "backend", "run-2", directory=tmp_path)
    fd = os.open(lock.hold_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(LockHeld, match="processes of an earlier run"):
            lock.acquire()
    finally:
        os.close(fd)
    with lock:
        pass


def test_the_watchdog_stops_its_command_when_the_parent_dies(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    child = f"import time, pathlib; time.sleep(3); pathlib.Path({str(marker)!r}).write_text('x')"
    launcher = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-I', {str(WATCHDOG)!r}, '--parent', "
        "str(__import__('os').getpid()), '--hold', '', '--', sys.executable, '-c', "
        f"{child!r}], start_new_session=True); time.sleep(0.5)"
    )
    subprocess.run([sys.executable, "-c", launcher], check=True)  # exits: the parent dies
    time.sleep(4.5)
    assert not marker.exists()


def test_a_run_whose_cli_died_is_running_while_its_playbook_still_stops(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run-77"
    runrecord.start(run_dir, {"run_id": "run-77"})
    runrecord.update(run_dir, pid=2**22 + 1)  # the CLI is gone
    record = runrecord.load(run_dir) or {}
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)", "ansible-playbook", "run-77"]
    with subprocess.Popen(sleeper) as playbook:
        cmdline = Path(f"/proc/{playbook.pid}/cmdline")
        while b"run-77" not in cmdline.read_bytes():  # set once the exec is through
            time.sleep(0.01)
        try:
            assert runrecord.state(record) == runrecord.RUNNING
        finally:
            playbook.kill()
    assert runrecord.state(record) == runrecord.INTERRUPTED


def test_extra_vars_reach_ansible_as_data_never_templates() -> None:
    """The extravars file tags every string !unsafe: Ansible's own loader and templar leave
    `{{ }}` in an override reason or an -e value as text (nothing is looked up or run)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    from pflow_ops.runner import extravars_text

    sent = {
        "pflow_restart_budget_override_reason": "INC-1 {{ lookup('pipe', 'id') }}",
        "backend_data_paths": ["{{ x }}", "/var/lib"],
        "nested": {"k": "{% raw %}"},
        "cache_backend_health_url": "",  # stays "" (Ansible reads `!unsafe ""` as null)
        "backend_soak_seconds": 3,
        "flag": True,
    }
    loaded = DataLoader().load(extravars_text(sent))
    assert loaded == sent
    assert Templar(variables={"x": "EVALUATED"}).template(loaded) == sent


# -- the receiver's receipt: finding the run that did the work ------------------------------

RID = "18a2b3c4d5e6f708-0a1b2c"


def _receipt_run(runs: Path, run_id: str, receipt: str, **fields: object) -> Path:
    runrecord.start(runs / run_id, {"run_id": run_id, "receipt": receipt})
    if fields:
        runrecord.update(runs / run_id, **fields)
    return runs / run_id


def test_find_by_receipt_reads_each_state_of_the_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert runrecord.find_by_receipt(RID, runs) is None  # no runs at all
    _receipt_run(runs, "20261205T070000Z-rb-01-aaaa", "other-000000")
    assert runrecord.find_by_receipt(RID, runs) is None
    run = _receipt_run(runs, "20261205T070100Z-rb-01-bbbb", RID)
    assert runrecord.find_by_receipt(RID, runs) == ("20261205T070100Z-rb-01-bbbb", "", False)
    # The report is written (outcome) before the CLI releases its lock and says finished.
    runrecord.update(run, outcome="recovered")
    assert runrecord.find_by_receipt(RID, runs) == (
        "20261205T070100Z-rb-01-bbbb",
        "recovered",
        True,
    )
    runrecord.update(run, state=runrecord.FINISHED, exit_code=0)
    assert runrecord.find_by_receipt(RID, runs) == (
        "20261205T070100Z-rb-01-bbbb",
        "recovered",
        True,
    )


def test_find_by_receipt_without_a_report_uses_the_exit_code_or_says_interrupted(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    run = _receipt_run(runs, "20261205T070000Z-rb-01-aaaa", RID, state=runrecord.FINISHED)
    runrecord.update(run, exit_code=1)  # the launch raised: no report, exit code 1
    assert runrecord.find_by_receipt(RID, runs) == ("20261205T070000Z-rb-01-aaaa", "error", True)
    runrecord.update(run, exit_code="?")
    assert runrecord.find_by_receipt(RID, runs) == ("20261205T070000Z-rb-01-aaaa", "", True)
    # Killed with its machine: no outcome, its process gone.
    _receipt_run(runs, "20261205T070100Z-rb-01-bbbb", RID, pid=2**22 + 1)
    assert runrecord.find_by_receipt(RID, runs) == ("20261205T070100Z-rb-01-bbbb", "", True)
    # An outcome word that is not the vocabulary's is no outcome.
    runrecord.update(runs / "20261205T070100Z-rb-01-bbbb", outcome="pwned")
    assert runrecord.find_by_receipt(RID, runs) == ("20261205T070100Z-rb-01-bbbb", "", True)


def test_find_by_receipt_takes_the_newest_and_looks_back_a_bounded_way(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _receipt_run(runs, "20261205T070000Z-rb-01-aaaa", RID, outcome="refused")
    _receipt_run(runs, "20261205T070100Z-rb-01-bbbb", RID, outcome="recovered")
    assert runrecord.find_by_receipt(RID, runs) == (
        "20261205T070100Z-rb-01-bbbb",
        "recovered",
        True,
    )
    for n in range(3):
        _receipt_run(runs, f"20261205T0702{n:02d}Z-rb-02-cccc", "other-000000")
    assert runrecord.find_by_receipt(RID, runs, limit=3) is None
    assert runrecord.find_by_receipt(RID, runs, limit=4) is not None
    later = time.time() + runrecord.RECEIPT_MAX_AGE_S + 60
    assert runrecord.find_by_receipt(RID, runs, now=later) is None


def test_the_cli_records_the_receipt_and_refuses_a_malformed_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pflow_ops import cli

    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))
    # A protected environment without --yes is refused after the record is written: the
    # record carries the receipt without Ansible running.
    argv = ["alert", "BackendServiceDown", "--env", "prod", "--output", "json"]
    assert cli.main([*argv, "--receipt", RID]) == 3
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert runrecord.find_by_receipt(RID) == (run_id, "refused", True)
    for bad in ("--check", "../x-0a1b2c", "18a2-0a1b2", "18A2-0a1b2c", "{{ x }}-0a1b2c"):
        assert cli.main([*argv, f"--receipt={bad}"]) == 2
        err = capsys.readouterr().err.strip()
        assert "bad --receipt" in err and len(err.splitlines()) == 1
    assert (
        "--receipt"
        not in subprocess.run(
            [sys.executable, "-m", "pflow_ops", "alert", "--help"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        ).stdout
    )
