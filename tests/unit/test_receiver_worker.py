"""Launching runs: the fixed argv, reading the child's outcome, timeouts, the run-lock probe."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from pflow_ops.lock import RunLock
from pflow_ops.receiver import worker


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path / "home"))


def test_production_argv_is_fixed() -> None:
    argv = worker.build_argv(worker.ALERT_COMMAND, "RedisHighEvictions", "staging", "0a1b", False)
    assert argv == [
        sys.executable, "-m", "pflow_ops", "alert", "RedisHighEvictions",
        "--env", "staging", "--output", "json", "--yes", "--fingerprint", "0a1b",
    ]  # fmt: skip
    assert worker.build_argv(("x",), "A", "local", "ff", True)[-1] == "--check"


@pytest.mark.parametrize(
    ("name", "fp"),
    [("--help", "ff"), ("A;id", "ff"), ("../A", "ff"), ("A", "--check"), ("A", "f f"), ("", "ff")],
)
def test_argv_refuses_anything_but_an_identifier_and_hex(name: str, fp: str) -> None:
    with pytest.raises(ValueError):
        worker.build_argv(("x",), name, "local", fp, False)


def test_outcome_comes_from_the_json_report_else_from_the_exit_code() -> None:
    report = json.dumps({"run_id": "r1", "outcome": "escalate", "changed": 2})
    got = worker.parse_result(4, report, "", 3.0)
    assert (got.outcome, got.run_id, got.changed) == ("escalate", "r1", 2)
    refused = worker.parse_result(3, "", "pflow-ops: refused: lock held\n", 0.1)
    assert (refused.outcome, refused.detail) == ("refused", "pflow-ops: refused: lock held")
    assert worker.parse_result(1, "Traceback...", "", 0.1).outcome == "error"
    assert worker.parse_result(0, json.dumps({"outcome": "??"}), "", 0.1).outcome == "healthy"


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_subprocess_launcher_runs_a_real_child() -> None:
    code = "import json; print(json.dumps({'run_id': 'x', 'outcome': 'recovered', 'changed': 1}))"
    got = worker.SubprocessLauncher().run(_py(code), timeout=30)
    assert (got.rc, got.outcome, got.run_id, got.aborted) == (0, "recovered", "x", False)


def test_subprocess_launcher_kills_a_run_past_its_timeout() -> None:
    got = worker.SubprocessLauncher().run(_py("import time; time.sleep(60)"), timeout=0.5)
    assert got.outcome == "error"
    assert "--run-timeout" in got.detail


def test_subprocess_launcher_reports_a_missing_command() -> None:
    got = worker.SubprocessLauncher().run(["/nonexistent/pflow"], timeout=5)
    assert (got.rc, got.outcome) == (1, "error")
    assert "cannot start the run" in got.detail


def test_abort_stops_the_running_child_and_marks_it_for_a_rerun() -> None:
    launcher = worker.SubprocessLauncher()
    results: list[worker.RunResult] = []
    t = threading.Thread(
        target=lambda: results.append(launcher.run(_py("import time; time.sleep(60)"), 120))
    )
    t.start()
    time.sleep(0.5)
    launcher.abort()
    t.join(15)
    assert results and results[0].aborted


def test_lock_probe_sees_a_held_run_lock_and_waits_for_it() -> None:
    held = RunLock("local", "database", "someone-else")
    held.acquire()
    try:
        assert not worker.lock_is_free("local", "database")
        assert worker.lock_is_free("local", "cache")
        stop = threading.Event()
        assert not worker.wait_for_lock("local", "database", stop, timeout=0.3, poll=0.1)
        threading.Timer(0.3, held.release).start()
        assert worker.wait_for_lock("local", "database", stop, timeout=10, poll=0.1)
    finally:
        held.release()
    # The probe wrote nothing: the holder record is still the real holder's.
    assert "someone-else" in held.path.read_text()
