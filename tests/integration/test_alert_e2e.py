"""The closed loop, end to end, with nothing stood in: `sandbox break FAULT` -> the alert fires in
the real Prometheus (the shipped rules, time-compressed) -> the real Alertmanager calls the real
receiver (`pflow-ops serve`, a supervisord program of the sandbox) -> the mapped runbook runs ->
the alert resolves, and the run's report says so.

Each fault must produce exactly one run for its alert: Alertmanager re-sends a firing alert
every group interval, and the receiver dedupes them by fingerprint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.loadtest import alert, measure, notification
from pflow_ops.sandbox import observe
from tests.integration.conftest import Stack, running_stack

# fault, the alert it raises, the runbook that alert maps to (catalogue.yml)
FAULTS = [
    ("backend-crash", "BackendServiceDown", "RB-01"),
    ("backend-errors", "HighErrorRate", "RB-01"),
    # A Node.js fault: the blocked event loop is seen on the real scrapes (they time out), named
    # before BackendServiceDown (shorter `for:`), diagnosed as such and restarted.
    ("backend-eventloop-block", "BackendEventLoopBlocked", "RB-01"),
    ("db-down", "DatabaseConnectionFailure", "RB-02"),
    ("db-connections", "DatabaseHighConnections", "RB-02"),
    ("redis-down", "RedisConnectionFailure", "RB-03"),
    ("redis-evictions", "RedisHighEvictions", "RB-03"),
]
# The Node.js diagnosis the run must name for a Node.js fault (the report's node_diagnosis row).
NODE_CLASS = {"backend-eventloop-block": "eventloop_blocked"}
FIRE_TIMEOUT = 90.0
RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def monitored() -> Iterator[Stack]:
    with running_stack("pfo-e2e-", "--monitoring", timeout=240) as st:
        yield st


def _monitoring(st: Stack) -> dict[str, Any]:
    data: dict[str, Any] = st.endpoints["monitoring"]
    return data


def _quiet(st: Stack) -> None:
    """Heal, then wait until Prometheus has no pending or firing alert at all."""
    healed = st.cli("sandbox", "heal")
    assert healed.rc == 0, healed.stderr
    shutil.rmtree(st.home / "budget", ignore_errors=True)
    observe.wait_quiet(_monitoring(st)["prometheus_url"], timeout=120)


def _finished_runs(st: Stack, runbook: str, since: float) -> list[dict[str, Any]]:
    """Reports of the runs an alert started for ``runbook`` since ``since``, oldest first."""
    reports = [r.report for r in observe.runs(st.home / "runs", runbook, since)]
    return [rep for rep in reports if rep is not None and rep.get("alert")]


def _started_argv(st: Stack, fingerprint: str) -> list[str]:
    """The argv the receiver started the run of ``fingerprint`` with (its journal)."""
    journal = st.home / "receiver" / "local" / "journal.jsonl"
    started = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    argvs = [
        e["argv"]
        for e in started
        if e["event"] == "started" and e.get("fingerprint") == fingerprint
    ]
    assert argvs, f"no run started for {fingerprint}"
    return list(argvs[-1])


@pytest.mark.parametrize(("fault", "alertname", "runbook"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_fault_fires_its_alert_runs_its_runbook_and_the_alert_resolves(
    monitored: Stack, fault: str, alertname: str, runbook: str
) -> None:
    _quiet(monitored)
    prom = _monitoring(monitored)["prometheus_url"]
    since = time.time()
    broken = monitored.cli("sandbox", "break", fault)
    assert broken.rc == 0, broken.stderr

    observe.wait_until(lambda: observe.alert_state(prom, alertname) == "firing", FIRE_TIMEOUT)
    observe.wait_until(lambda: bool(_finished_runs(monitored, runbook, since)), RUN_TIMEOUT, 1.0)
    # A fault may raise several alerts of one runbook (evictions also lower the hit rate, the
    # SLO burn alert, routed by its `runbook` label, fires next to HighErrorRate): the receiver
    # attaches them to one run, started for the first of them.
    first = _finished_runs(monitored, runbook, since)[0]
    assert first["outcome"] == "recovered", first["reason"]
    if fault in NODE_CLASS:  # the cause-specific alert started the run, and RB-01 named it
        assert first["alert"]["alertname"] == alertname, first["alert"]
        [node] = [f["detail"] for f in first["findings"] if f["check"] == "node_diagnosis"]
        assert node.startswith(NODE_CLASS[fault] + ": "), node
    assert first["alert"]["state"] == "resolved", first["alert"]
    assert first["alert"]["fingerprint"], "the receiver passes the alert's fingerprint"
    assert _started_argv(monitored, first["alert"]["fingerprint"])[-2:] == ["--runbook", runbook]
    assert any(
        v["check"] == "alert_resolved" and v["status"] == "ok" for v in first["verification"]
    )
    # The run fixed the fault, so this fault's own alert resolves too.
    observe.wait_until(lambda: observe.alert_state(prom, alertname) == "inactive", FIRE_TIMEOUT)
    # Alertmanager kept notifying while the alerts fired: still one run for the runbook.
    time.sleep(3)
    assert len(_finished_runs(monitored, runbook, since)) == 1


def test_the_receiver_killed_mid_run_loses_no_alert(monitored: Stack) -> None:
    """SIGKILL the receiver while its run is in flight; supervisord starts it again and the journal
    still holds the alert: the interrupted item is queued again, and then either runs again or,
    once the orphaned run has fixed the fault and the alert resolved, is cancelled by that."""
    _quiet(monitored)
    since = time.time()
    assert monitored.cli("sandbox", "break", "backend-crash").rc == 0
    journal = monitored.home / "receiver" / "local" / "journal.jsonl"

    def events() -> list[dict[str, Any]]:
        lines = journal.read_text().splitlines() if journal.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def started() -> bool:
        return any(
            e["event"] == "started" and e["ts"] >= since and "BackendServiceDown" in e["argv"]
            for e in events()
        )

    def rerun_settled() -> bool:
        log = [e for e in events() if e.get("ts", 0) >= since]
        requeued = {e["rid"] for e in log if e["event"] == "requeued"}
        settled = {e["rid"] for e in log if e["event"] == "finished"}
        settled |= {rid for e in log for rid in e.get("cancelled", [])}
        return bool(requeued) and requeued <= settled

    observe.wait_until(started, RUN_TIMEOUT, 0.2)
    pid = monitored.status()["programs"]["receiver"]["pid"]
    os.kill(int(pid), signal.SIGKILL)
    observe.wait_until(rerun_settled, RUN_TIMEOUT, 1.0)
    log = events()
    received = {e["rid"] for e in log if e["event"] == "received"}
    decided = {e["rid"] for e in log if e.get("rid") in received and e["event"] != "received"}
    assert received == decided, "every received alert has a decision after the restart"
    observe.wait_until(lambda: bool(_finished_runs(monitored, "RB-01", since)), RUN_TIMEOUT, 1.0)
    assert _finished_runs(monitored, "RB-01", since)[0]["outcome"] == "recovered"
    assert monitored.health() == 200


def test_an_alert_storm_starts_one_run_and_a_bad_token_starts_none(monitored: Stack) -> None:
    """300 notifications of one firing alert reach the sandbox's receiver: one RB-01 run. The
    same storm with a wrong token: 401 for each, and nothing starts."""
    _quiet(monitored)
    mon = _monitoring(monitored)
    url = mon["receiver_webhook_url"]
    since = time.time()
    storm = json.dumps(
        notification(alert("SlowRequests", "5a5a5a5a5a5a5a5a", labels={"path": "$(reboot)"}))
    ).encode()
    rejected = measure(url, "not-the-token-at-all", count=50, concurrency=2, body=storm)
    assert rejected.statuses == {401: 50}
    token = Path(mon["receiver_token_file"]).read_text().strip()
    accepted = measure(url, token, count=300, concurrency=4, body=storm)
    assert accepted.statuses == {200: 300}
    observe.wait_until(lambda: bool(_finished_runs(monitored, "RB-01", since)), RUN_TIMEOUT, 1.0)
    time.sleep(3)
    (run,) = _finished_runs(monitored, "RB-01", since)
    assert run["alert"]["alertname"] == "SlowRequests"
    assert run["alert"]["fingerprint"] == "5a5a5a5a5a5a5a5a"
    # The backend was healthy: nothing to fix, and the alert is not active in Prometheus.
    assert run["outcome"] == "healthy" and run["changed"] == 0
    with urllib.request.urlopen(mon["receiver_url"] + "/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'pflow_receiver_requests_rejected_total{reason="unauthorized"}' in metrics
