"""Parsing a Node.js service's signals: prom-client text, log tail, /proc stat."""

from __future__ import annotations

import os

import pytest

from ansible_collections.pivotal.flow_ops.plugins.module_utils import node_signals as ns

METRICS = """\
# HELP nodejs_eventloop_lag_seconds Lag of event loop in seconds.
# TYPE nodejs_eventloop_lag_seconds gauge
nodejs_eventloop_lag_seconds 0.0123
nodejs_eventloop_lag_p99_seconds 0.05
nodejs_heap_size_used_bytes 14408960
nodejs_heap_size_total_bytes 20000000
pivotal_nodejs_heap_size_limit_bytes 117440512
process_resident_memory_bytes 73592832
nodejs_active_handles_total 6
nodejs_active_handles{type="Socket"} 3
nodejs_version_info{version="v20.20.2",major="20",minor="20",patch="2"} 1
http_requests_total{method="GET",route="/health",status="200"} 2
nodejs_heap_size_used_bytes_broken NaNx
process_resident_memory_bytes notanumber
"""


def test_parse_metrics_keeps_the_unlabelled_prom_client_values():
    out = ns.parse_metrics(METRICS)
    assert out == {
        "eventloop_lag_s": 0.0123,
        "eventloop_lag_p99_s": 0.05,
        "heap_used_bytes": 14408960.0,
        "heap_total_bytes": 20000000.0,
        "heap_limit_bytes": 117440512.0,
        "rss_bytes": 73592832.0,
        "active_handles": 6.0,
        "version": "v20.20.2",
    }
    assert ns.parse_metrics("") == {} and ns.parse_metrics(None) == {}


LOG = [
    "2026-12-06T02:07:05.191Z INFO listening on http://127.0.0.1:3000 (pid 1)",
    "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    "Writing Node.js report to file: report.20261206.020754.1.0.001.json",
    "2026-12-06T02:08:05.191Z INFO listening on http://127.0.0.1:3000 (pid 2)",
    "2026-12-06T02:08:06.000Z WARNING starting a job",
    "FATAL: UnhandledPromiseRejection: Error: invoice sync failed",
    "    at job (/srv/server.js:228:20)",
    "    at process.emit (node:events:524:28)",
    "Node.js v20.20.2",
]


def test_log_signals_reads_the_last_process_and_counts_heap_aborts():
    out = ns.log_signals(LOG)
    assert out["unhandled_rejection"] == "FATAL: UnhandledPromiseRejection: Error: invoice sync failed"
    assert out["rejection_stack"] == ["at job (/srv/server.js:228:20)", "at process.emit (node:events:524:28)"]
    # The last process ended on a rejection, not a heap abort: no heap-limit run.
    assert out["heap_limit"] == "" and out["heap_limit_crashes"] == 0 and out["report_file"] == ""
    assert out["addr_in_use"] == ""


def test_log_signals_heap_abort_with_report_and_addr_in_use():
    out = ns.log_signals(LOG[:3])
    assert out["heap_limit"].startswith("FATAL ERROR: Reached heap limit")
    assert out["report_file"] == "report.20261206.020754.1.0.001.json"
    assert ns.log_signals(LOG[:3])["heap_limit_crashes"] == 1


def test_heap_aborts_in_a_row_count_until_a_clean_lifetime():
    abort, start = LOG[1], LOG[0]
    assert ns.log_signals([abort, start, abort])["heap_limit_crashes"] == 2
    assert ns.log_signals([start, abort, start, abort, start, abort])["heap_limit_crashes"] == 3
    stopped = [abort, start, "INFO received SIGTERM, shutting down", start, abort]
    assert ns.log_signals(stopped)["heap_limit_crashes"] == 1
    assert ns.log_signals([abort, start, abort, start])["heap_limit_crashes"] == 0


def test_addr_in_use_and_empty_tail():
    busy = ns.log_signals(["FATAL: cannot listen: Error: listen EADDRINUSE: address already in use"])
    assert "EADDRINUSE" in busy["addr_in_use"]
    assert ns.log_signals(None)["heap_limit_crashes"] == 0


def test_proc_state_and_cpu_share():
    stat = "42 (node server) R 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 11 0"
    assert ns.proc_state(stat) == ("R", 200)
    assert ns.proc_state("garbage") == (None, None)
    assert ns.cpu_share(100, 150, 0.5, 100) == 1.0
    assert ns.cpu_share(None, 150, 0.5) is None and ns.cpu_share(1, 2, 0) is None


def test_read_cpu_of_this_process_and_of_none():
    once = ns.read_cpu(os.getpid(), 0)
    assert once["state"] in ("R", "S") and once["cpu_share"] is None
    sampled = ns.read_cpu(os.getpid(), 0.05)
    assert sampled["cpu_share"] is not None
    assert "error" in ns.read_cpu(2**22 + 12345, 0.01)


def test_fetch_metrics_without_a_url_or_an_answer():
    assert ns.fetch_metrics("", 1.0) == ({}, "no metrics URL")
    metrics, error = ns.fetch_metrics("http://127.0.0.1:1/metrics", 0.5)
    assert metrics == {} and error.startswith("http://127.0.0.1:1/metrics did not answer: ")


@pytest.mark.parametrize(
    ("pid", "number"),
    [(None, None), ("", None), (0, None), ("0", None), ("3f2a@12", None), (" 4242 ", 4242), (4242, 4242)],
)
def test_pid_number(pid, number):
    assert ns.pid_number(pid) == number


def test_signals_samples_the_cpu_only_when_the_metrics_did_not_answer():
    lines = ["listening on :3000", "FATAL ERROR: Reached heap limit Allocation failed"]
    answered = ns.signals({"eventloop_lag_s": 0.01}, "", os.getpid(), lines, 0.05)
    assert answered["process"]["cpu_share"] is None and answered["metrics"] == {"eventloop_lag_s": 0.01}
    assert answered["logs"]["heap_limit"].startswith("FATAL ERROR")
    silent = ns.signals({}, "no metrics URL", str(os.getpid()), [], 0.05)
    assert silent["process"]["cpu_share"] is not None and silent["metrics_error"] == "no metrics URL"
    assert ns.signals({}, "x", "3f2a@12", None, 0.05)["process"] == {}
