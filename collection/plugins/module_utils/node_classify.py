# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-01's Node.js diagnosis: which Node.js failure mode the backend is in, the evidence, the
next step a Node.js engineer would take, and whether a restart may help. Pure: it reads RB-01's
own problem (backend_decisions.assess) and the node_signals module's result.

Classes (the closing table of docs and the role README):

  eventloop_blocked    the process runs (CPU busy, state R) but answers nothing, or the
                       event loop lag is above the limit                         restart
  heap_exhaustion      it exited after V8's "Reached heap limit" abort            restart
  heap_leak            that abort again, N times in the log tail (it recurs after restarts):
                       restarting only burns the budget                          escalate
  unhandled_rejection  it exited on an unhandled promise rejection               restart
  port_in_use          it could not listen (EADDRINUSE), or another process answers on its
                       port: a restart cannot bind it                            escalate
  dependency_slow      requests are slow while the event loop is not: PostgreSQL (or Redis)
                       is the slow part                                          escalate RB-02/03
  process_stopped      it exited with no Node.js signature (killed by a signal), or is
                       frozen (state T, SIGSTOP)                                 restart
  unknown              something is wrong, no Node.js signal says what           (RB-01's rules)

While the backend serves (RB-01 found no problem), the signals the Node.js alerts fire on are
still read, so a run started by BackendHeapNearLimit or BackendEventLoopLag never reports a
plain "healthy" the alert contradicts:

  heap_near_limit      the V8 heap is above HEAP_NEAR_LIMIT_RATIO of its old-generation limit:
                       a leak on its way to the abort; a restart now only resets the clock and
                       loses the evidence                                         escalate
  eventloop_lag        the event loop's p99 lag is above the limit while requests still meet
                       their latency threshold                                    warning only
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

EVENTLOOP_BLOCKED = "eventloop_blocked"
HEAP_EXHAUSTION = "heap_exhaustion"
HEAP_LEAK = "heap_leak"
UNHANDLED_REJECTION = "unhandled_rejection"
PORT_IN_USE = "port_in_use"
DEPENDENCY_SLOW = "dependency_slow"
PROCESS_STOPPED = "process_stopped"
UNKNOWN = "unknown"
HEAP_NEAR_LIMIT = "heap_near_limit"
EVENTLOOP_LAG = "eventloop_lag"
NO_RESTART = (HEAP_LEAK, PORT_IN_USE, DEPENDENCY_SLOW, HEAP_NEAR_LIMIT)
BUSY_CPU_SHARE = 0.5
# The BackendHeapNearLimit rule's line (monitoring/rules/pivotal-flow.rules.yml; a unit test keeps
# them equal): used heap over 90 % of V8's heap_size_limit less the young generation's reserve
# (3 x 16 MiB semi-spaces on 64-bit Node.js 18-22), which a leak never fills.
HEAP_NEAR_LIMIT_RATIO = 0.9
YOUNG_GENERATION_RESERVE_BYTES = 50331648

NEXT_STEPS = {
    EVENTLOOP_BLOCKED: "find the synchronous code on the event loop: take a CPU profile (node --cpu-prof) or a "
                       "diagnostic report (kill -USR2 with --report-signal) of the stuck process before it is "
                       "restarted, and look for a loop, a large JSON.parse or a sync crypto/fs call",
    HEAP_EXHAUSTION: "read the diagnostic report written by --report-on-fatalerror, compare --max-old-space-size "
                     "with the container's memory limit, and take heap snapshots (--heapsnapshot-near-heap-limit) "
                     "if it recurs",
    HEAP_LEAK: "the heap limit is reached again after restarts: a leak. Do not restart in a loop; take two heap "
               "snapshots some minutes apart (--heapsnapshot-near-heap-limit=2) and compare retained objects, "
               "roll back the last deploy if it started then",
    UNHANDLED_REJECTION: "fix the promise chain named by the rejection's stack (a missing catch or await); "
                         "until then each occurrence restarts the process",
    PORT_IN_USE: "find the process holding the port (ss -ltnp), stop it or fix the port setting; a restart "
                 "cannot bind an address in use",
    DEPENDENCY_SLOW: "the backend waits on its dependencies: follow RB-02 (slow queries, locks) or RB-03; "
                     "restarting the backend would only add a cold start",
    PROCESS_STOPPED: "look at who stopped or killed the process (OOM killer, an operator, a deploy) in the "
                     "host and service manager logs",
    UNKNOWN: "no Node.js signal explains it: read the log tail and /health's dependency checks",
    HEAP_NEAR_LIMIT: "take a heap snapshot now (node --heapsnapshot-signal=SIGUSR2, or the inspector), another "
                     "some minutes later, and compare retained objects; plan a restart in a quiet window and "
                     "check --max-old-space-size against the container's memory limit",
    EVENTLOOP_LAG: "requests still meet their latency threshold; take a CPU profile (node --cpu-prof) to find the "
                   "synchronous work that stalls the loop before it turns into a blocked loop",
}


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _mb(value):
    return "%s MB" % round(value / 1048576.0, 1)


def _heap_words(metrics):
    used, limit = _num(metrics.get("heap_used_bytes")), _num(metrics.get("heap_limit_bytes"))
    if used is None:
        return ""
    return "heap used %s%s" % (_mb(used), " of a %s limit" % _mb(limit) if limit else "")


def _lag_ms(metrics):
    """The larger of prom-client's two lag readings, in ms: the p99 of the loop's delay since
    the last read (what BackendEventLoopLag fires on) and the one probe taken while /metrics is
    served (which misses stalls between reads)."""
    lags = [lag for lag in (_num(metrics.get("eventloop_lag_s")), _num(metrics.get("eventloop_lag_p99_s")))
            if lag is not None]
    return round(max(lags) * 1000, 1) if lags else None


def _heap_share(metrics):
    """Used heap over the old generation's limit, or None when /metrics gave no usable limit."""
    used, limit = _num(metrics.get("heap_used_bytes")), _num(metrics.get("heap_limit_bytes"))
    if used is None or limit is None or limit <= YOUNG_GENERATION_RESERVE_BYTES:
        return None
    return used / (limit - YOUNG_GENERATION_RESERVE_BYTES)


def _serving_class(metrics, lag_max_ms):
    """What the Node.js signals say while the backend serves: (class, evidence) or None."""
    share = _heap_share(metrics)
    if share is not None and share > HEAP_NEAR_LIMIT_RATIO:
        return HEAP_NEAR_LIMIT, "%s: %s%% of the old generation's limit (line %s%%)" % (
            _heap_words(metrics), round(share * 100, 1), round(HEAP_NEAR_LIMIT_RATIO * 100))
    lag = _lag_ms(metrics)
    if lag is not None and lag > lag_max_ms:
        return EVENTLOOP_LAG, "event loop lag p99 %s ms (max %s ms) while it serves" % (lag, lag_max_ms)
    return None


def _down_class(status, logs, settings):
    leak_after = int(_num(settings.get("heap_leak_crashes")) or 2)
    report = logs.get("report_file") or ""
    if report:
        where = "" if report.startswith("/") else " in the process's working directory"
        report = " (diagnostic report: %s%s)" % (report, where)
    if logs.get("heap_limit"):
        crashes = int(logs.get("heap_limit_crashes") or 1)
        if crashes >= leak_after:
            return HEAP_LEAK, "%s, %s times in the log tail%s" % (logs["heap_limit"], crashes, report)
        return HEAP_EXHAUSTION, logs["heap_limit"] + report
    if logs.get("unhandled_rejection"):
        stack = logs.get("rejection_stack") or []
        return UNHANDLED_REJECTION, logs["unhandled_rejection"] + ("; " + stack[0] if stack else "")
    if logs.get("addr_in_use"):
        return PORT_IN_USE, logs["addr_in_use"]
    return PROCESS_STOPPED, status.get("detail") or "not running"


def _hung_class(process, metrics, lag_max_ms):
    state, share = process.get("state"), _num(process.get("cpu_share"))
    if state == "T":
        return PROCESS_STOPPED, "the process is stopped (state T: SIGSTOP or a debugger)"
    if state == "R" or (share is not None and share >= BUSY_CPU_SHARE):
        return EVENTLOOP_BLOCKED, "the process runs (state %s, %s%% of a CPU) but answers nothing: its event loop " \
                                  "is blocked" % (state, round((share or 0) * 100))
    lag = _lag_ms(metrics)
    if lag is not None and lag > lag_max_ms:
        return EVENTLOOP_BLOCKED, "event loop lag %s ms (max %s ms)" % (lag, lag_max_ms)
    return UNKNOWN, "the process (state %s) does not answer" % (state or "unknown")


def classify(problem, status, signals, settings=None):
    """{node_class, evidence, next_step, restart_ok}; node_class "" when RB-01 found nothing.

    problem: backend_decisions' problem (down, hung, unhealthy, errors, slow, port_squatter,
    manager_unreachable or ""); status: service_manager_status; signals: the node_signals
    module's result {metrics, process, logs}; settings: eventloop_lag_max_ms, heap_leak_crashes.
    """
    status, signals, settings = status or {}, signals or {}, settings or {}
    metrics, process = signals.get("metrics") or {}, signals.get("process") or {}
    logs = signals.get("logs") or {}
    lag_max_ms = _num(settings.get("eventloop_lag_max_ms")) or 500.0
    lag = _lag_ms(metrics)
    if not problem:
        serving = _serving_class(metrics, lag_max_ms)
        if not serving:
            return {"node_class": "", "evidence": "", "next_step": "", "restart_ok": True}
        return {"node_class": serving[0], "evidence": serving[1], "next_step": NEXT_STEPS[serving[0]],
                "restart_ok": serving[0] not in NO_RESTART}
    if problem == "manager_unreachable":
        found = UNKNOWN, "the service manager cannot be asked about the process"
    elif problem == "port_squatter":
        found = PORT_IN_USE, logs.get("addr_in_use") or "another process answers on the backend's port"
    elif problem == "down":
        found = _down_class(status, logs, settings)
    elif problem == "hung":
        found = _hung_class(process, metrics, lag_max_ms)
    elif lag is not None and lag > lag_max_ms:
        found = EVENTLOOP_BLOCKED, "event loop lag %s ms (max %s ms)" % (lag, lag_max_ms)
    elif problem == "slow":
        found = DEPENDENCY_SLOW, "requests are slow while the event loop lag is %s" % (
            "%s ms (max %s ms)" % (lag, lag_max_ms) if lag is not None else "unknown (/metrics did not answer)")
    else:
        found = UNKNOWN, "%s without a Node.js signal" % problem
    node_class, evidence = found
    heap = _heap_words(metrics)
    if heap and node_class in (HEAP_EXHAUSTION, HEAP_LEAK, UNKNOWN, DEPENDENCY_SLOW):
        evidence += "; " + heap
    return {"node_class": node_class, "evidence": evidence, "next_step": NEXT_STEPS[node_class],
            "restart_ok": node_class not in NO_RESTART}


def finding(diagnosis):
    """The report's node_diagnosis finding row (ok when there is nothing to diagnose)."""
    diagnosis = diagnosis or {}
    node_class = diagnosis.get("node_class")
    if not node_class:
        return {"check": "node_diagnosis", "status": "ok", "detail": "no Node.js failure signal"}
    return {"check": "node_diagnosis", "status": "warning" if node_class in (UNKNOWN, EVENTLOOP_LAG) else "critical",
            "detail": "%s: %s. Next: %s" % (node_class, diagnosis.get("evidence"), diagnosis.get("next_step"))}
