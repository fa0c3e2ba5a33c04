"""Launching runs: the fixed argv, reading the child's outcome, timeouts, the run-lock probe."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from pflow_ops import runrecord
from pflow_ops.lock import RunLock
from pflow_ops.paths import runs_dir
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


# -- the receipt, and the run a killed receiver left behind -------------------------------

RID = "18a2b3c4d5e6f708-0a1b2c"


def test_the_receipt_goes_last_on_argv_and_must_be_a_receipt_id() -> None:
    argv = worker.build_argv(("x",), "A", "local", "ff", True, RID)
    assert argv[-3:] == ["--check", "--receipt", RID]
    for bad in ("--yes", "0a-0a1b2c --check", "", "18a2-0A1B2C", "../../x-0a1b2c"):
        with pytest.raises(ValueError, match="receipt"):
            worker.build_argv(("x",), "A", "local", "ff", False, bad)


def _orphan(run_id: str = "20261205T070000Z-rb-01-aaaa", **fields: object) -> Path:
    run_dir = runs_dir() / run_id
    runrecord.start(run_dir, {"run_id": run_id, "receipt": RID})
    if fields:
        runrecord.update(run_dir, **fields)
    return run_dir


def test_no_orphan_when_no_run_carries_the_receipt() -> None:
    assert worker.orphan_result(RID) is None
    _orphan(receipt="ffff-000000")
    assert worker.orphan_result(RID) is None


def test_an_orphan_that_finished_is_the_result_and_is_not_run_again() -> None:
    _orphan(outcome="recovered", state=runrecord.FINISHED, exit_code=0)
    got = worker.orphan_result(RID)
    assert got == worker.RunResult(
        rc=0,
        outcome="recovered",
        duration_s=0.0,
        run_id="20261205T070000Z-rb-01-aaaa",
        detail=worker.ORPHAN_DETAIL,
    )
    _orphan("20261205T070100Z-rb-01-bbbb", outcome="escalate")
    escalated = worker.orphan_result(RID)
    assert escalated is not None
    assert (escalated.outcome, escalated.rc, escalated.aborted) == ("escalate", 4, False)


@pytest.mark.parametrize(
    "fields",
    [
        {"outcome": "refused", "state": runrecord.REFUSED},  # it did nothing
        {"pid": 2**22 + 1},  # interrupted: its process is gone without an outcome
    ],
)
def test_a_refused_or_interrupted_orphan_is_run_again(fields: dict[str, object]) -> None:
    _orphan(**fields)
    assert worker.orphan_result(RID) is None


def test_an_orphan_still_running_is_waited_for() -> None:
    run_dir = _orphan()  # our own pid: running
    threading.Timer(0.3, lambda: runrecord.update(run_dir, outcome="healthy")).start()
    got = worker.orphan_result(RID, threading.Event(), timeout=30, poll=0.05)
    assert got is not None and got.outcome == "healthy"


def test_an_orphan_still_running_past_the_timeout_or_at_shutdown_gives_none() -> None:
    _orphan()
    assert worker.orphan_result(RID, threading.Event(), timeout=0.2, poll=0.05) is None
    stop = threading.Event()
    stop.set()
    assert worker.orphan_result(RID, stop, timeout=30, poll=0.05) is None
