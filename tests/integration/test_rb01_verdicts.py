"""RB-01 verdicts that 0.3.0 got wrong, each against the real sandbox (issue 12): a port held
by another process, a restarted backend that dies at once, a gate that times out, and the
words the report uses for what happened."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

# Answers 200 (or 404) to every GET: an impostor on the backend's port.
SQUATTER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(int(sys.argv[2])); self.send_header("Content-Length", "2")
        self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _supervisorctl(sandbox: Stack, *args: str) -> None:
    sup = sandbox.endpoints["supervisor"]
    subprocess.run(
        [sup["supervisorctl"], "-c", sup["config"], *args],
        check=False,
        capture_output=True,
        timeout=30,
    )


@contextmanager
def _process(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _wait_for_status(sandbox: Stack, status: int | None) -> None:
    deadline = time.monotonic() + 10
    while sandbox.health(timeout=1) != status:
        assert time.monotonic() < deadline, f"/health never answered {status}"
        time.sleep(0.05)


@pytest.mark.parametrize("answer", [200, 404])
def test_port_squatter_is_escalated_before_any_budget_is_spent(sandbox: Stack, answer: int) -> None:
    """0.3.0 restarted the backend (which could not bind its port) and called the impostor's
    200 `recovered`; with a 404 it escalated without naming the cause."""
    port = str(sandbox.endpoints["backend"]["port"])
    _supervisorctl(sandbox, "stop", "backend")
    assert sandbox.backend_pid() is None
    with _process(SQUATTER, port, str(answer)) as squatter:
        _wait_for_status(sandbox, answer)
        run = sandbox.recover()
        data = run.json
        assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
        assert f"port {port}" in data["reason"] and f"pid {squatter.pid}" in data["reason"]
        assert "not running" in data["reason"] and "python" in data["reason"]
        assert sandbox.budget_entries() == [], "no restart budget is spent on a squatter"
        assert data["actions"] == [] and data["changed"] == 0
        service = next(f for f in data["findings"] if f["check"] == "service_status")
        assert service["status"] == "critical" and f"pid {squatter.pid}" in service["detail"]
        assert sandbox.backend_pid() is None, "the backend was not started behind the squatter"


def test_crash_loop_stops_the_gate_at_once_and_shows_the_log_after_the_restart(
    sandbox: Stack,
) -> None:
    """0.3.0 waited out the whole gate on a dead process and showed the log from before.
    The backend's working directory is gone: supervisord's child cannot chdir and exits 127."""
    workdir = Path(sandbox.endpoints["backend"]["data_paths"][0])
    moved = workdir.with_name(workdir.name + ".moved")
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    workdir.rename(moved)
    try:
        run = sandbox.recover("-e", "backend_health_gate_timeout=120")
    finally:
        moved.rename(workdir)
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    reason = data["reason"]
    assert "died before it answered the health check" in reason
    assert "exit status 127" in reason
    assert "couldn't chdir" in reason, "the log lines written after the restart"
    rows = {v["check"]: v for v in data["verification"]}
    assert rows["health_gate"]["status"] == "critical"
    assert rows["health_gate"]["detail"].startswith("stopped early: supervisord reports")
    assert rows["process_confirmed"]["status"] == "critical"
    assert len(sandbox.budget_entries()) == 1


def test_gate_timeout_names_the_setting_to_change(sandbox: Stack) -> None:
    # Redis down and the dependency check off: the backend runs, /health answers 503, and the
    # restarted backend still answers 503, so the gate times out.
    assert sandbox.cli("sandbox", "break", "redis-down").rc == 0
    run = sandbox.recover(
        "-e", "backend_check_dependencies=false", "-e", "backend_health_gate_timeout=3"
    )
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert "did not pass the health gate within 3" in data["reason"]
    assert "backend_health_gate_timeout" in data["reason"]
    assert "running, pid" in data["reason"]


def test_actions_say_what_happened_in_words(sandbox: Stack) -> None:
    """0.3.0: `restarted: was not running -> pid none`, `exit status -1` for SIGKILL."""
    assert sandbox.cli("sandbox", "break", "backend-crash").rc == 0
    dry = sandbox.recover("--check").json
    restart = next(a for a in dry["actions"] if a["action"] == "restart")
    assert restart["before"] == "not running (EXITED, killed by SIGKILL)"
    assert restart["after"] == "running (a new pid)"
    budget = next(a for a in dry["actions"] if a["action"] == "restart_budget")
    assert (budget["before"], budget["after"]) == ("0 of 3 used", "1 of 3 used")
    assert dry["changed"] >= 1, "check mode counts what would change"
    service = next(f for f in dry["findings"] if f["check"] == "service_status")
    assert "killed by SIGKILL" in service["detail"] and "-1" not in service["detail"]

    data = sandbox.recover().json
    assert data["outcome"] == "recovered", data["reason"]
    pid = sandbox.backend_pid()
    restart = next(a for a in data["actions"] if a["action"] == "restart")
    assert restart["result"] == (
        f"restarted: not running (EXITED, killed by SIGKILL) -> running, pid {pid}"
    )
    confirmed = {v["check"]: v for v in data["verification"]}["process_confirmed"]
    assert confirmed["status"] == "ok" and f"pid {pid}" in confirmed["detail"]
