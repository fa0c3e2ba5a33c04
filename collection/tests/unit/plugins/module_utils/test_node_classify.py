"""RB-01's Node.js diagnosis, branch by branch: problem + signals -> class, evidence, restart."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_decisions as rb01
from ansible_collections.pivotal.flow_ops.plugins.module_utils import node_classify as nc

DOWN = {"running": False, "detail": "supervisord program 'backend': not running (EXITED, killed by SIGKILL)"}
HEAP = "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"


def _signals(metrics=None, process=None, **logs):
    return {"metrics": metrics or {}, "process": process or {}, "logs": logs}


@pytest.mark.parametrize(
    ("problem", "status", "signals", "expected", "restart_ok"),
    [
        ("", {}, _signals(), "", True),
        # serving: the heap near its old-generation limit (112 MiB limit - 48 MiB reserve = 64 MiB)
        ("", {}, _signals({"heap_used_bytes": 60 * 1048576, "heap_limit_bytes": 112 * 1048576}),
         nc.HEAP_NEAR_LIMIT, False),
        ("", {}, _signals({"heap_used_bytes": 57 * 1048576, "heap_limit_bytes": 112 * 1048576}), "", True),
        ("", {}, _signals({"heap_used_bytes": 60 * 1048576, "heap_limit_bytes": 40 * 1048576}), "", True),
        ("", {}, _signals({"heap_used_bytes": 60 * 1048576}), "", True),
        # serving: the p99 lag (what BackendEventLoopLag reads) above the limit, the probe not
        ("", {}, _signals({"eventloop_lag_s": 0.004, "eventloop_lag_p99_s": 0.71}), nc.EVENTLOOP_LAG, True),
        ("", {}, _signals({"eventloop_lag_s": 0.004, "eventloop_lag_p99_s": 0.2}), "", True),
        ("manager_unreachable", {}, _signals(), nc.UNKNOWN, True),
        ("port_squatter", {}, _signals(), nc.PORT_IN_USE, False),
        ("down", DOWN, _signals(heap_limit=HEAP, heap_limit_crashes=1), nc.HEAP_EXHAUSTION, True),
        ("down", DOWN, _signals(heap_limit=HEAP, heap_limit_crashes=2), nc.HEAP_LEAK, False),
        ("down", DOWN, _signals(unhandled_rejection="FATAL: UnhandledPromiseRejection: Error: x",
                                rejection_stack=["at job (/srv/app.js:1:1)"]), nc.UNHANDLED_REJECTION, True),
        ("down", DOWN, _signals(addr_in_use="Error: listen EADDRINUSE: address already in use"), nc.PORT_IN_USE,
         False),
        ("down", DOWN, _signals(), nc.PROCESS_STOPPED, True),
        ("hung", {}, _signals(process={"state": "T", "cpu_share": 0.0}), nc.PROCESS_STOPPED, True),
        ("hung", {}, _signals(process={"state": "R", "cpu_share": 0.97}), nc.EVENTLOOP_BLOCKED, True),
        ("hung", {}, _signals(process={"state": "S", "cpu_share": 0.9}), nc.EVENTLOOP_BLOCKED, True),
        ("hung", {}, _signals({"eventloop_lag_s": 2.0}, {"state": "S", "cpu_share": 0.0}), nc.EVENTLOOP_BLOCKED,
         True),
        ("hung", {}, _signals(process={"state": "S", "cpu_share": 0.0}), nc.UNKNOWN, True),
        ("errors", {}, _signals({"eventloop_lag_s": 0.9}), nc.EVENTLOOP_BLOCKED, True),
        ("slow", {}, _signals({"eventloop_lag_s": 0.002, "heap_used_bytes": 1048576}), nc.DEPENDENCY_SLOW, False),
        ("slow", {}, _signals(), nc.DEPENDENCY_SLOW, False),
        ("errors", {}, _signals({"eventloop_lag_s": 0.001}), nc.UNKNOWN, True),
    ],
)
def test_classify(problem, status, signals, expected, restart_ok):
    out = nc.classify(problem, status, signals, {"eventloop_lag_max_ms": 500, "heap_leak_crashes": 2})
    assert out["node_class"] == expected
    assert out["restart_ok"] is restart_ok
    assert bool(out["next_step"]) is bool(expected)


def test_evidence_names_the_log_line_report_and_heap():
    signals = _signals({"heap_used_bytes": 60 * 1048576, "heap_limit_bytes": 112 * 1048576},
                       heap_limit=HEAP, heap_limit_crashes=1, report_file="report.1.json")
    out = nc.classify("down", DOWN, signals)
    assert HEAP in out["evidence"] and "report.1.json in the process's working directory" in out["evidence"]
    assert "heap used 60.0 MB of a 112.0 MB limit" in out["evidence"]
    absolute = nc.classify("down", DOWN, _signals(heap_limit=HEAP, report_file="/srv/r.json"))
    assert "(diagnostic report: /srv/r.json)" in absolute["evidence"]


def test_slow_without_metrics_says_so():
    assert "unknown (/metrics did not answer)" in nc.classify("slow", {}, _signals())["evidence"]


def test_finding_rows():
    assert nc.finding({})["status"] == "ok"
    assert nc.finding({"node_class": nc.UNKNOWN, "evidence": "e", "next_step": "n"})["status"] == "warning"
    row = nc.finding(nc.classify("hung", {}, _signals(process={"state": "R", "cpu_share": 1.0})))
    assert row["status"] == "critical" and row["detail"].startswith("eventloop_blocked: ")


ASSESSED_DOWN = {"problem": rb01.DOWN, "findings": [], "dependencies_down": []}


def test_with_node_adds_the_class_and_a_finding():
    out = rb01.with_node(ASSESSED_DOWN, DOWN, _signals(heap_limit=HEAP, heap_limit_crashes=3))
    assert out["node"]["node_class"] == nc.HEAP_LEAK
    assert out["findings"][-1]["check"] == "node_diagnosis"


@pytest.mark.parametrize(
    ("signals", "restart"),
    [
        (_signals(heap_limit=HEAP, heap_limit_crashes=3), False),
        (_signals(addr_in_use="EADDRINUSE"), False),
        (_signals(heap_limit=HEAP, heap_limit_crashes=1), True),
        (_signals(), True),
    ],
)
def test_plan_follows_the_node_class(signals, restart):
    assessment = rb01.with_node(ASSESSED_DOWN, DOWN, signals)
    plan = rb01.plan(assessment, "recover")
    assert plan["restart"] is restart
    if not restart:
        assert assessment["node"]["node_class"] in plan["why"]


@pytest.mark.parametrize(
    ("problem", "signals", "next_runbook", "words"),
    [
        (rb01.DOWN, _signals(heap_limit=HEAP, heap_limit_crashes=2), "", "a memory leak (heap_leak)"),
        (rb01.DOWN, _signals(addr_in_use="EADDRINUSE"), "", "address is in use (port_in_use)"),
        (rb01.SLOW, _signals({"eventloop_lag_s": 0.0}), "RB-02", "dependency_slow"),
    ],
)
def test_verdict_escalates_without_restart(problem, signals, next_runbook, words):
    assessment = rb01.with_node({**ASSESSED_DOWN, "problem": problem}, DOWN, signals)
    out = rb01.conclude(assessment, rb01.plan(assessment, "recover"), {}, None, {"latency_p95_max_ms": 1000})
    assert out["outcome"] == "escalate" and out["next_runbook"] == next_runbook
    assert words in out["reason"] and "Node.js diagnosis: " in out["reason"]
    assert out["actions"] == []


def test_recovered_reason_names_the_class():
    assessment = rb01.with_node(ASSESSED_DOWN, DOWN, _signals(unhandled_rejection="UnhandledPromiseRejection"))
    restart = {"restarted": True, "before": "pid 1", "after": "pid 2", "confirmed": True, "manager": "supervisord"}
    out = rb01.conclude(assessment, rb01.plan(assessment, "recover"), restart, None, {})
    assert out["outcome"] == "recovered"
    assert out["reason"].startswith("backend restarted (down, unhandled_rejection): pid 1 -> pid 2")
    assert "Next: fix the promise chain" in out["reason"]


def test_the_p99_lag_counts_where_the_probe_saw_nothing():
    out = nc.classify("errors", {}, _signals({"eventloop_lag_s": 0.001, "eventloop_lag_p99_s": 0.9}))
    assert out["node_class"] == nc.EVENTLOOP_BLOCKED and "900.0 ms" in out["evidence"]


ASSESSED_SERVING = {"problem": "", "findings": [], "dependencies_down": []}
SERVING = {"running": True, "pid": 7}


def test_a_heap_near_its_limit_escalates_a_serving_backend_without_a_restart():
    signals = _signals({"heap_used_bytes": 62 * 1048576, "heap_limit_bytes": 112 * 1048576})
    assessment = rb01.with_node(ASSESSED_SERVING, SERVING, signals)
    plan = rb01.plan(assessment, "recover")
    assert plan["restart"] is False
    out = rb01.conclude(assessment, plan, {}, None, {})
    assert out["outcome"] == "escalate" and out["actions"] == []
    assert "heap is near its limit" in out["reason"] and "no restart budget was spent" in out["reason"]
    assert "heap used 62.0 MB of a 112.0 MB limit: 96.9% of the old generation's limit" in out["reason"]
    assert "Next: take a heap snapshot now" in out["reason"]
    assert nc.finding(assessment["node"])["status"] == "critical"


def test_event_loop_lag_while_serving_is_a_warning_on_a_healthy_verdict():
    signals = _signals({"eventloop_lag_s": 0.003, "eventloop_lag_p99_s": 0.8})
    assessment = rb01.with_node(ASSESSED_SERVING, SERVING, signals)
    out = rb01.conclude(assessment, rb01.plan(assessment, "recover"), {}, None, {})
    assert out["outcome"] == "healthy" and out["actions"] == []
    assert "warning: event loop lag p99 800.0 ms (max 500.0 ms) while it serves" in out["reason"]
    assert "Next: requests still meet their latency threshold" in out["reason"]
    assert nc.finding(assessment["node"])["status"] == "warning"


def test_a_quiet_serving_backend_stays_plainly_healthy():
    signals = _signals({"eventloop_lag_s": 0.001, "eventloop_lag_p99_s": 0.012,
                        "heap_used_bytes": 9 * 1048576, "heap_limit_bytes": 112 * 1048576})
    assessment = rb01.with_node(ASSESSED_SERVING, SERVING, signals)
    out = rb01.conclude(assessment, rb01.plan(assessment, "recover"), {}, None, {})
    assert out["outcome"] == "healthy" and "warning" not in out["reason"]
    assert nc.finding(assessment["node"])["status"] == "ok"
