"""Process words and the restart_gated result, branch by branch."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import service_state as st


@pytest.mark.parametrize(
    ("program", "words"),
    [
        ({"state": "RUNNING", "pid": 42}, ""),
        (
            {
                "state": "EXITED",
                "exitstatus": -1,
                "exit_reason": "terminated by SIGKILL; not expected",
            },
            "killed by SIGKILL",
        ),
        (
            {"state": "EXITED", "exitstatus": 1, "exit_reason": "exit status 1; not expected"},
            "exit status 1",
        ),
        (
            {"state": "FATAL", "spawnerr": "can't find command '/x'"},
            "spawn error: can't find command '/x'",
        ),
        (
            {"state": "EXITED", "exitstatus": -1, "spawnerr": "Bad exit code -1"},
            "killed by a signal",
        ),
        ({"state": "EXITED", "exitstatus": 3}, "exit status 3"),
        ({"state": "STOPPED", "exitstatus": 0}, ""),
        ({}, ""),
    ],
)
def test_exit_words(program: dict, words: str) -> None:
    assert st.exit_words(program) == words


@pytest.mark.parametrize(
    ("manager", "instance", "words"),
    [
        ("supervisord", {"state": "RUNNING", "pid": 4388}, "running, pid 4388"),
        ("supervisord", {"state": "STARTING", "pid": 9}, "starting, pid 9"),
        (
            "supervisord",
            {
                "state": "EXITED",
                "exitstatus": -1,
                "exit_reason": "terminated by SIGKILL; not expected",
            },
            "not running (EXITED, killed by SIGKILL)",
        ),
        ("supervisord", {"state": "STOPPED"}, "not running (STOPPED)"),
        ("supervisord", {}, "not known to the service manager"),
        (
            "compose",
            {"id": "3f2a1b9c8d7e6f5a4b", "running": True, "started_at": "2026-12-04T12:01:02.5Z"},
            "container 3f2a1b9c8d7e (started 12:01:02)",
        ),
        (
            "compose",
            {"id": "abc", "running": False, "state": "exited", "exit_code": 1},
            "container abc exited (exit code 1)",
        ),
        (
            "compose",
            {"id": "abc", "running": False, "state": "exited", "oom_killed": True},
            "container abc exited, killed by the OOM killer",
        ),
    ],
)
def test_process_words(manager: str, instance: dict, words: str) -> None:
    assert st.process_words(manager, instance) == words


def test_process_id() -> None:
    assert st.process_id("supervisord", {"pid": 5}) == 5
    assert (
        st.process_id("compose", {"id": "3f2a1b9c8d7e6f", "started_at": "2026-12-04T12:01:02.5Z"})
        == "3f2a1b9c8d7e@2026-12-04T12:01:02"
    )
    assert st.process_id("compose", {}) is None


def test_supervisor_status() -> None:
    result = {"reachable": True, "program": {"state": "RUNNING", "pid": 7}, "log_tail": ["a"]}
    status = st.supervisor_status(result, "backend")
    assert status["running"] and status["pid"] == 7 and status["logs"] == ["a"]
    assert status["detail"] == "supervisord program 'backend': running, pid 7"
    down = st.supervisor_status(
        {"reachable": False, "program": None, "msg": "socket missing"}, "backend"
    )
    assert not down["reachable"] and not down["found"] and "socket missing" in down["detail"]


BUDGET = {"allowed": True, "used": 1, "max_restarts": 3, "summary": "allowed: 1 of 3 restarts used"}
BEFORE = {"state": "EXITED", "exitstatus": -1, "exit_reason": "terminated by SIGKILL; not expected"}


def sv_restart(**kw: object) -> dict:
    base = {
        "changed": True,
        "program": BEFORE,
        "program_after": {"state": "STARTING", "pid": 77},
        "program_final": {"state": "RUNNING", "pid": 77},
        "gate": {"passed": True, "waited_s": 0.4, "attempts": 2, "gone": None},
        "log_since_start": ["listening"],
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("restart", "confirmed", "problem"),
    [
        (sv_restart(), True, ""),
        (sv_restart(program_final={"state": "STARTING", "pid": 77}), True, ""),
        (
            sv_restart(
                gate={
                    "passed": False,
                    "gone": "supervisord reports the started process (pid 77) gone",
                },
                program_final={
                    "state": "EXITED",
                    "pid": None,
                    "exitstatus": 127,
                    "exit_reason": "exit status 127; not expected",
                },
                log_since_start=["supervisor: couldn't chdir to /x: ENOENT"],
            ),
            False,
            "died before it answered the health check (not running (EXITED, exit status 127)); "
            "its log after the restart: supervisor: couldn't chdir to /x: ENOENT",
        ),
        (
            sv_restart(
                gate={"passed": False, "state": "unhealthy", "reason": "HTTP 503, expected 200"}
            ),
            True,
            "the restarted process (running, pid 77) did not pass the health gate within 30 s: "
            "HTTP 503, "
            "expected 200 (raise backend_health_gate_timeout if the service needs longer to start)",
        ),
        (
            sv_restart(
                soak={"probes": 3, "failures": 1, "gone": "gone: now EXITED"},
                program_final={"state": "EXITED", "exitstatus": 1},
            ),
            False,
            "died during the soak: gone: now EXITED",
        ),
        (
            sv_restart(soak={"probes": 10, "failures": 2, "gone": None}),
            True,
            "failed 2 of 10 probes during the soak",
        ),
        (
            sv_restart(program_final={"state": "RUNNING", "pid": 78}),
            False,
            "does not show the restarted process (77) running any more: now running, pid 78",
        ),
        (
            sv_restart(
                gate={},
                program_final=None,
                program_after={"state": "FATAL", "spawnerr": "x"},
                msg="backend did not reach RUNNING",
            ),
            False,
            "did not bring the service up: backend did not reach RUNNING",
        ),
    ],
)
def test_supervisord_restart_result(restart: dict, confirmed: bool, problem: str) -> None:
    r = st.restart_result(
        "supervisord", BUDGET, restart, None, None, False, "backend_health_gate_timeout", 30
    )
    assert r["restarted"] and r["confirmed"] is confirmed
    assert problem in r["problem"] and bool(r["problem"]) is bool(problem)
    assert r["before"] == "not running (EXITED, killed by SIGKILL)"
    assert r["detail"].startswith("restarted: not running (EXITED, killed by SIGKILL) -> ")


def test_held_restart_words() -> None:
    r = st.restart_result("supervisord", BUDGET, sv_restart())
    assert r["detail"] == "restarted: not running (EXITED, killed by SIGKILL) -> running, pid 77"
    assert r["logs_after"] == ["listening"] and r["pid_after"] == 77


def test_budget_refused_or_skipped_restart() -> None:
    refused = st.restart_result(
        "supervisord", {"allowed": False, "summary": "refused: 3 of 3"}, {"skipped": True}
    )
    assert not refused["restarted"] and refused["detail"] == "not restarted: refused: 3 of 3"
    assert st.restart_result("supervisord", {"skipped": True}, {})["budget"] == {}


def test_check_mode_says_would_with_before_and_after() -> None:
    r = st.restart_result(
        "supervisord",
        BUDGET,
        {"changed": True, "program": BEFORE, "program_after": None},
        check_mode=True,
    )
    assert r["would_restart"] and not r["restarted"]
    assert (
        r["detail"] == "would restart (check mode): not running (EXITED, killed by SIGKILL)"
        " -> running (a new pid)"
    )
    assert r["budget_words"] == "would take one restart: 0 -> 1 of 3 used in the window"


def test_compose_restart_result() -> None:
    before = {"id": "aaaaaaaaaaaaaaaa", "running": False, "state": "exited", "exit_code": 137}
    after = {
        "id": "aaaaaaaaaaaaaaaa",
        "running": True,
        "state": "running",
        "started_at": "2026-12-04T12:01:02Z",
    }
    restart = {"changed": True, "ok": True, "instances": [before], "instances_after": [after]}
    gate = {
        "healthy": True,
        "state": "healthy",
        "gate": {"waited_s": 1.0, "attempts": 3},
        "soak": {},
    }
    r = st.restart_result("compose", BUDGET, restart, gate, {"instances": [after], "logs": ["up"]})
    assert r["confirmed"] and r["problem"] == ""
    assert (
        r["detail"] == "restarted: container aaaaaaaaaaaa exited (exit code 137)"
        " -> container aaaaaaaaaaaa (started 12:01:02)"
    )
    assert r["logs_after"] == ["up"]
    moved = {**after, "started_at": "2026-12-04T12:05:00Z"}
    again = st.restart_result("compose", BUDGET, restart, gate, {"instances": [moved]})
    assert not again["confirmed"] and "does not show the restarted process" in again["problem"]
    dry = st.restart_result("compose", BUDGET, restart, None, None, True)
    assert dry["would_restart"] and dry["detail"].startswith(
        "would restart (check mode): container aaaaaaaaaaaa"
    )
