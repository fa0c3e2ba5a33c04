"""RB-01 on the Node.js reference backend: each Node.js failure mode, injected for real by
`sandbox break`, is named by the diagnosis (the report's node_diagnosis finding) and gets the
right action: a restart, or an escalation without one (a leak, a slow dependency). A second run
changes nothing."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _node(data: dict[str, Any]) -> str:
    [row] = [f for f in data["findings"] if f["check"] == "node_diagnosis"]
    detail: str = row["detail"]
    return detail


def _diagnose(sandbox: Stack) -> dict[str, Any]:
    run = sandbox.cli("diagnose", "rb-01", "--env", "local", "--output", "json")
    assert run.rc == 4, run.stderr
    data: dict[str, Any] = run.json
    assert data["changed"] == 0
    return data


def _recovered_with(sandbox: Stack, node_class: str, evidence: str) -> None:
    pid = sandbox.backend_pid()
    diagnosed = _diagnose(sandbox)
    assert _node(diagnosed).startswith(node_class + ": "), _node(diagnosed)
    assert evidence in _node(diagnosed)
    run = sandbox.recover()
    data = run.json
    assert run.rc == 0, data["reason"]
    assert data["outcome"] == "recovered"
    assert data["reason"].startswith(f"backend restarted (down, {node_class})") or data[
        "reason"
    ].startswith(f"backend restarted (hung, {node_class})")
    assert "Next: " in data["reason"]
    assert [a["action"] for a in data["actions"]] == ["restart_budget", "restart"]
    assert sandbox.health() == 200 and sandbox.backend_pid() not in (None, pid)
    again = sandbox.recover().json
    assert again["outcome"] == "healthy" and again["changed"] == 0
    assert _node(again) == "no Node.js failure signal"


def test_blocked_event_loop_is_named_and_restarted(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-eventloop-block").rc == 0
    assert sandbox.health(timeout=1) is None, "the port accepts but nothing answers"
    assert sandbox.backend_pid() is not None, "the process still runs"
    _recovered_with(sandbox, "eventloop_blocked", "its event loop is blocked")


def test_unhandled_rejection_is_named_with_its_stack_and_restarted(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-unhandled-rejection").rc == 0
    assert sandbox.backend_pid() is None
    _recovered_with(sandbox, "unhandled_rejection", "invoice sync failed")


def test_heap_exhaustion_restarts_and_its_recurrence_escalates_as_a_leak(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "backend-heap-leak").rc == 0
    assert sandbox.backend_pid() is None, "V8 aborted at its heap limit"
    _recovered_with(sandbox, "heap_exhaustion", "Reached heap limit")

    # The same abort right after the restart: a leak. No restart, no budget spent.
    assert sandbox.cli("sandbox", "break", "backend-heap-leak").rc == 0
    assert "diagnostic report: report." in _node(_diagnose(sandbox))
    entries = len(sandbox.budget_entries())
    for _ in range(2):
        run = sandbox.recover()
        data = run.json
        assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
        assert _node(data).startswith("heap_leak: ") and "2 times in the log tail" in _node(data)
        assert "a memory leak (heap_leak)" in data["reason"]
        assert data["actions"] == [] and data["changed"] == 0
        assert sandbox.backend_pid() is None and len(sandbox.budget_entries()) == entries


def test_slow_database_escalates_to_rb02_without_restarting(sandbox: Stack) -> None:
    pid = sandbox.backend_pid()
    assert sandbox.cli("sandbox", "break", "backend-db-slow").rc == 0
    assert sandbox.health() == 200, "/health's SELECT 1 does not touch the locked table"
    for _ in range(2):
        run = sandbox.recover()
        data = run.json
        assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
        assert _node(data).startswith(
            "dependency_slow: requests are slow while the event loop lag is"
        )
        assert data["escalation"]["next_runbooks"] == ["RB-02"]
        assert data["actions"] == [] and data["changed"] == 0
        assert sandbox.backend_pid() == pid and sandbox.budget_entries() == []


def _heap_used_share(sandbox: Stack) -> float:
    """nodejs_heap_size_used_bytes over the old generation's limit, read from /metrics as
    Prometheus reads it."""
    url = sandbox.endpoints["backend"]["health_url"].replace("/health", "/metrics")
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    value = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(
            ("nodejs_heap_size_used_bytes ", "pivotal_nodejs_heap_size_limit_bytes ")
        )
    }
    limit = value["pivotal_nodejs_heap_size_limit_bytes"] - 48 * 1048576
    return value["nodejs_heap_size_used_bytes"] / limit


def test_heap_near_its_limit_while_serving_escalates_without_a_restart(sandbox: Stack) -> None:
    """What BackendHeapNearLimit fires on: the process serves, its heap is past the line. RB-01
    does not call that healthy, and does not restart it (the evidence would go with it)."""
    pid = sandbox.backend_pid()
    assert sandbox.cli("sandbox", "break", "backend-heap-high").rc == 0
    deadline = time.monotonic() + 30
    while _heap_used_share(sandbox) <= 0.9:
        assert time.monotonic() < deadline, "the fault did not hold the heap past 90 %"
        time.sleep(0.2)
    assert sandbox.health() == 200, "it serves"
    for _ in range(2):
        run = sandbox.recover()
        data = run.json
        assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
        assert _node(data).startswith("heap_near_limit: heap used "), _node(data)
        assert "of the old generation's limit (line 90%)" in _node(data)
        assert "heap is near its limit" in data["reason"]
        assert "Next: take a heap snapshot now" in data["reason"]
        assert data["actions"] == [] and data["changed"] == 0
        assert sandbox.backend_pid() == pid and sandbox.budget_entries() == []
