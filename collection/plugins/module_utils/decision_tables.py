# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbooks' decision tables: signal -> diagnosis -> what the automation does, or why it
escalates, for the written runbooks (``pflow-ops docs build``).

The tables are not retyped prose: each row names the problem the decision function returns for
that signal, and its action is what the decision engine itself answers for that problem (the
plan's ``why``, the verdict's reason, the tuning plan's reason), computed here from a
representative input. collection/tests/unit/plugins/module_utils/test_decision_tables.py feeds
each row's signal to the classification and checks it lands on the row's problem, and that
every problem the module names has a row.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_decisions as rb01
from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_decisions as rb03
from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_verdict
from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_decisions as rb02
from ansible_collections.pivotal.flow_ops.plugins.module_utils import node_classify as nc

MIB = 1024 * 1024


def _row(problem, signal, diagnosis, action):
    return {"problem": problem, "signal": signal, "diagnosis": diagnosis, "action": action}


def _restart_words(plan_):
    return ("restart the backend under the restart budget, then the health gate and the soak window: %s"
            % plan_["why"]) if plan_["restart"] else "no restart: %s" % plan_["why"]


# Backend: the branches of backend_decisions.assess, most fundamental first.
BACKEND_SIGNALS = (
    (rb01.MANAGER_UNREACHABLE, "the service manager does not answer",
     "the backend's state is unknown"),
    (rb01.PORT_SQUATTER, "the service manager says the backend is not running, yet its port answers",
     "another process holds the backend's port"),
    (rb01.DOWN, "the service manager says the backend is not running", "the backend is down"),
    (rb01.HUNG, "GET /health hangs or times out (backend_health_timeout)", "the backend is hung"),
    (rb01.UNHEALTHY, "GET /health answers, but not healthy", "the backend is unhealthy"),
    (rb01.ERRORS, "probe error rate above backend_error_rate_max", "the backend fails requests"),
    (rb01.SLOW, "probe p95 latency above backend_latency_p95_max_ms", "the backend is slow"),
    ("", "every check within its threshold", "healthy"),
)


def backend_table():
    """RB-01: one row per problem of ``assess``, the action from ``plan`` in recover mode; then
    the dependency rows (a dependency down, a dependency not validated)."""
    rows = [_row(p, s, d, _restart_words(rb01.plan({"problem": p}, "recover")))
            for p, s, d in BACKEND_SIGNALS]
    for name, runbook in rb01.DEPENDENCY_RUNBOOKS:
        down = {"problem": rb01.DOWN, "dependencies_down": [{"dependency": name, "runbook": runbook}]}
        rows.append(_row(rb01.DOWN, "the %s dependency check fails" % name,
                         "%s is down (%s's runbook)" % (name, runbook),
                         _restart_words(rb01.plan(down, "recover")) + "; next runbook %s" % runbook))
    unvalidated = {"problem": rb01.DOWN, "dependencies_unvalidated": [{"dependency": "postgresql"}]}
    rows.append(_row(rb01.DOWN, "the PostgreSQL dependency cannot be checked from this host (no driver)",
                     "a dependency is not validated (backend_allow_unvalidated_dependencies)",
                     _restart_words(rb01.plan(unvalidated, "recover"))))
    return rows + node_rows()


_HEAP = "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"
# The Node.js diagnosis (node_classify): RB-01's problem plus the service's own signals.
NODE_SIGNALS = (
    (rb01.HUNG, "/health hangs while the process runs (state R, CPU busy), or event loop lag above "
     "backend_node_eventloop_lag_max_ms", {"process": {"state": "R", "cpu_share": 1.0}}),
    (rb01.DOWN, "exited after V8's 'FATAL ERROR: Reached heap limit' (report from --report-on-fatalerror)",
     {"logs": {"heap_limit": _HEAP, "heap_limit_crashes": 1}}),
    (rb01.DOWN, "the same heap-limit abort backend_node_heap_leak_crashes times in the log tail",
     {"logs": {"heap_limit": _HEAP, "heap_limit_crashes": 2}}),
    (rb01.DOWN, "exited on an unhandled promise rejection (UnhandledPromiseRejection and its stack)",
     {"logs": {"unhandled_rejection": "UnhandledPromiseRejection"}}),
    (rb01.DOWN, "exited with 'listen EADDRINUSE'", {"logs": {"addr_in_use": "EADDRINUSE"}}),
    (rb01.SLOW, "probe p95 above backend_latency_p95_max_ms while the event loop lag is low",
     {"metrics": {"eventloop_lag_s": 0.001}}),
    (rb01.DOWN, "exited with no Node.js signature in its log (killed by a signal), or is stopped (state T)", {}),
    ("", "serves, but the V8 heap is above 90 % of its old-generation limit (BackendHeapNearLimit's line)",
     {"metrics": {"heap_used_bytes": 62 * 1048576, "heap_limit_bytes": 112 * 1048576}}),
    ("", "serves within its thresholds, but the event loop's p99 lag is above "
     "backend_node_eventloop_lag_max_ms (BackendEventLoopLag's line)",
     {"metrics": {"eventloop_lag_s": 0.001, "eventloop_lag_p99_s": 0.8}}),
)


def node_rows():
    """RB-01's Node.js classes: diagnosis 'node: CLASS', the action from ``plan``."""
    rows = []
    for problem, signal, signals in NODE_SIGNALS:
        assessed = rb01.with_node({"problem": problem}, {"running": problem != rb01.DOWN}, signals)
        plan_ = rb01.plan(assessed, "recover")
        action = _restart_words(plan_)
        if not problem:  # serving: the verdict, not the plan, says what happens
            verdict = rb01.conclude(assessed, plan_, {}, None, {})
            action = {"escalate": "escalate, no restart and no budget spent",
                      "healthy": "healthy, with the lag as a warning"}[verdict["outcome"]]
        if assessed["node"]["node_class"] == nc.DEPENDENCY_SLOW:
            action += "; next runbook RB-02"
        rows.append(_row(problem, "Node.js: " + signal, "node: %s" % assessed["node"]["node_class"], action))
    return rows


# Database: the branches of database_decisions.classify, with a connectivity state each.
DATABASE_SIGNALS = (
    (rb02.MANAGER_UNREACHABLE, "refused", "PostgreSQL does not answer and the service manager cannot be reached"),
    (rb02.DOWN, "refused", "PostgreSQL does not answer and the service manager says it is not running"),
    (rb02.TLS, "tls_failed", "PostgreSQL answers but the TLS handshake does not verify"),
    (rb02.ACCESS, "auth_failed", "PostgreSQL runs but refuses the monitoring role"),
    (rb02.ACCESS, "too_many_clients", "PostgreSQL runs but has no connection slot left"),
    (rb02.UNRESPONSIVE, "timeout", "PostgreSQL runs but does not answer"),
)


def _database_action(problem, state):
    if rb02.plan("recover", problem, {"connectivity": {"state": state}})["restart_wanted"]:
        return "restart PostgreSQL through the service manager under the restart budget, then wait for SELECT 1"
    found = rb02.verdict({"problem": problem, "state": state, "mode": "recover", "service_msg": "unreachable"})
    return "%s: %s" % (found["outcome"], found["reason"])


def database_table():
    """RB-02: the classification rows (PostgreSQL not answering), then one row per check the
    runbook fixes itself (``FIXABLE_CHECKS``) and the row for every other check (escalated)."""
    rows = [_row(p, "connectivity state %s" % s, d, _database_action(p, s)) for p, s, d in DATABASE_SIGNALS]
    for check in rb02.FIXABLE_CHECKS:
        rows.append(_row("", "check %s warning or critical" % check, "PostgreSQL answers; %s is over its threshold"
                         % check, "fixed by pg_remediate on the diagnosis' exact targets, then diagnosed again"))
    found = rb02.verdict({"problem": "", "mode": "recover",
                          "escalations": [{"check": "other", "reason": "the check's own reason"}]})
    rows.append(_row("", "any other check critical (wraparound, sequences, unused indexes, ...)",
                     "PostgreSQL answers; the finding needs a DBA", "%s: %s" % (found["outcome"], found["reason"])))
    return rows


# Cache: the branches of cache_decisions.classify_unavailable, with a connection state each.
CACHE_UNAVAILABLE = (
    ("max_clients", "max_clients", "Redis refuses every new connection"),
    ("auth", "auth_failed", "Redis refused the credentials"),
    ("tls", "tls_failed", "Redis answers but the TLS handshake does not verify"),
    ("auth_not_required", "auth_not_required", "a password is sent to a Redis that has none"),
    ("loading", "loading", "Redis is loading its dataset"),
    ("acl", "not_permitted", "the runbook's Redis user lacks a permission"),
    ("manager_unreachable", "refused", "Redis does not answer and the service manager cannot be reached"),
    ("down", "refused", "Redis does not answer and the service manager says it is not running"),
    ("unresponsive", "timeout", "Redis runs but does not answer in time"),
)
# The signals of a live Redis that cache_decisions.plan acts on (a setting) or hands to a human.
CACHE_SIGNALS = (
    ("noeviction_cache", "a cache under maxmemory-policy noeviction"),
    ("evicting", "eviction rate above cache_eviction_rate_max"),
    ("fragmentation", "allocator fragmentation above cache_allocator_frag_ratio and cache_allocator_frag_bytes"),
    ("bigkeys_evicted", "big keys (cache_bigkey_bytes) are being evicted"),
    ("maxmemory_unset", "maxmemory is 0 (unlimited)"),
    ("low_hit_rate", "hit rate below cache_hit_rate_min with no evictions"),
    ("clients_saturated", "clients above cache_clients_crit of maxclients"),
)
EXAMPLE_DIAG = {"config": {"maxmemory-policy": "noeviction"}, "memory": {"maxmemory": 64 * MIB},
                "host_memory_bytes": 1024 * MIB, "rates": {"evicted_per_s": 25.0},
                "clients": {"connected": 9600, "maxclients": 10000},
                "findings": [{"check": "hit_rate", "status": "warning", "value": "62.0%"}]}


def _cache_action(problem, state):
    if rb03.recovery("recover", problem, state)["restart"]:
        return "restart Redis through the service manager under the restart budget, then the PING and backend gates"
    found = cache_verdict.verdict({"problem": problem, "state": state, "mode": "recover",
                                   "diag_msg": "NOPERM this user has no permissions to run the 'info' command",
                                   "service_msg": "unreachable", "settings": {"redis_port": 6379}})
    return "%s: %s" % (found["outcome"], found["reason"])


def _tuning_action(signal):
    diag = dict(EXAMPLE_DIAG, signals={signal: True})
    found = rb03.plan(diag)
    done = ["set %s %s (%s)" % (k, rb03.human_size(v) if k == "maxmemory" else v, found["reasons"][k])
            for k, v in sorted(found["settings"].items())]
    human = ["for a human: %s" % r for r in found["recommendations"]]
    return "; ".join(done + human + (["MEMORY PURGE"] if found["purge"] else []))


def cache_table():
    """RB-03: one row per unavailable problem (``classify_unavailable``) with the verdict's reason,
    then one row per signal of a live Redis with what ``plan`` sets or recommends (for an example
    Redis: maxmemory 64mb on a 1gb host, 25 evictions/s)."""
    rows = [_row(p, "connection state %s" % s, d, _cache_action(p, s)) for p, s, d in CACHE_UNAVAILABLE]
    for signal, words in CACHE_SIGNALS:
        tuned = rb03.plan(dict(EXAMPLE_DIAG, signals={signal: True}))["settings"]
        rows.append(_row("tuning" if tuned else "", words, "signal %s" % signal, _tuning_action(signal)))
    return rows


TABLES = {"RB-01": backend_table, "RB-02": database_table, "RB-03": cache_table}


def decision_table(runbook_id):
    """The decision table of a runbook (RB-01, RB-02, RB-03), or [] for one without a table."""
    builder = TABLES.get(str(runbook_id).upper())
    return builder() if builder else []
