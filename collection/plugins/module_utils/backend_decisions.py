# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-01 Backend Service Down: what is wrong (assess), what may be done (plan) and what
happened (verdict), as pure functions of the modules' structured results.

The backend role calls each through one ``pivotal.flow_ops`` filter (filter/backend.py); Jinja
only formats. Every branch has a row in collection/tests/unit/plugins/module_utils/
test_backend_decisions.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import node_classify
from ansible_collections.pivotal.flow_ops.plugins.module_utils.budget_policy import is_guard_refusal
from ansible_collections.pivotal.flow_ops.plugins.module_utils.outcome import (
    ERROR,
    ESCALATE,
    HEALTHY,
    RECOVERED,
    REFUSED,
    verdict,
)

# Problems, most fundamental first. Only the backend's own process is restarted.
MANAGER_UNREACHABLE = "manager_unreachable"
PORT_SQUATTER = "port_squatter"
DOWN = "down"
HUNG = "hung"
UNHEALTHY = "unhealthy"
ERRORS = "errors"
SLOW = "slow"
RESTARTABLE = (DOWN, HUNG, UNHEALTHY, ERRORS)
# http_health states in which something accepted the TCP connection on the port.
ANSWERED = ("healthy", "unhealthy", "hung")
DEPENDENCY_RUNBOOKS = (("postgresql", "RB-02"), ("redis", "RB-03"))


def _num(value, default=0.0):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _pct(value):
    return "%s%%" % round(_num(value) * 100, 1)


def dependencies_unvalidated(dependencies, settings):
    """The dependencies this host could not check (PostgreSQL's ``driver_missing``: no psycopg2
    where the check runs). Not "down", but not validated either: a restart decided without
    them is a guess, so they block it unless the inventory opts out
    (``backend_allow_unvalidated_dependencies``)."""
    settings = settings or {}
    if not settings.get("check_dependencies", True):
        return []
    deps = (dependencies or {}).get("dependencies") or {}
    pg = deps.get("postgresql") or {}
    if pg.get("state") != "driver_missing":
        return []
    return [{"dependency": "postgresql", "state": "driver_missing", "detail": pg.get("msg", "")}]


def dependencies_down(dependencies):
    """The dependencies that are down, each with the runbook that owns it. ``driver_missing``
    means "could not check from this host", not "down": RB-02 is never blamed for it."""
    deps = (dependencies or {}).get("dependencies") or {}
    down = []
    for name, runbook in DEPENDENCY_RUNBOOKS:
        dep = deps.get(name) or {}
        if not dep:
            continue
        ok = dep.get("state", "ok") in ("ok", "driver_missing") if name == "postgresql" else dep.get("available", True)
        if not ok:
            down.append({"dependency": name, "runbook": runbook, "state": dep.get("state", "down"),
                         "detail": dep.get("msg", "")})
    return down


def _health_detail(health, settings):
    text = "GET %s: %s" % (settings.get("health_url", ""), health.get("state", "not checked"))
    if health.get("status"):
        text += ", HTTP %s" % health["status"]
        if isinstance(health.get("latency_ms"), (int, float)):
            text += ", %s ms" % round(health["latency_ms"], 1)
    return text + " (timeout %s s)" % settings.get("health_timeout", "?")


def squatter_words(status, health, settings):
    """'port 3000 answers (HTTP 200) while supervisord says backend is not running (...): it is
    held by pid 4242 (python3 -m http.server 3000)'."""
    listener = health.get("listener") or {}
    port = listener.get("port") or settings.get("health_port") or "?"
    answer = ("HTTP %s" % health["status"]) if health.get("status") else health.get("state", "a connection")
    holder = listener.get("detail") or "its process was not identified (enable port_owner, or run with become)"
    if listener.get("pid"):
        holder = "it is held by pid %s (%s)" % (listener["pid"], listener.get("cmdline") or "command unknown")
    return "port %s answers (%s) while %s says %s is not running (%s): %s" % (
        port, answer, status.get("manager", "the service manager"), status.get("name", "the service"),
        status.get("detail", "").split(": ", 1)[-1], holder)


def assess(status, health, probe=None, resources=None, dependencies=None, settings=None):
    """Classify RB-01: {problem, findings, dependencies_down, pid_before, squatter}.

    status: service_manager_status; health: http_health on /health (with port_owner);
    probe: http_health samples of the probe URL (or a skipped result); resources: host_resources;
    dependencies: dependency_check (or skipped); settings: health_url, health_timeout,
    error_rate_max, latency_p95_max_ms, check_dependencies.
    """
    status, health, settings = status or {}, health or {}, settings or {}
    samples = (probe or {}).get("samples")
    sampled = isinstance(samples, dict) and bool(samples.get("count"))
    error_rate = _num(samples.get("error_rate")) if sampled else 0.0
    p95 = _num(samples.get("p95_ms")) if sampled else 0.0
    error_max, p95_max = _num(settings.get("error_rate_max"), 0.05), _num(settings.get("latency_p95_max_ms"), 1000)
    running = bool(status.get("running"))
    down_deps = dependencies_down(dependencies)
    squatting = status.get("reachable") and not running and health.get("state") in ANSWERED

    if not status.get("reachable"):
        problem = MANAGER_UNREACHABLE
    elif squatting:
        problem = PORT_SQUATTER
    elif not running:
        problem = DOWN
    elif health.get("state") in ("hung", "timeout"):
        problem = HUNG
    elif not health.get("healthy"):
        problem = UNHEALTHY
    elif error_rate > error_max:
        problem = ERRORS
    elif p95 > p95_max:
        problem = SLOW
    else:
        problem = ""

    deps = ((dependencies or {}).get("dependencies") or {}) if settings.get("check_dependencies", True) else {}
    pg, rd = deps.get("postgresql") or {}, deps.get("redis") or {}
    service_detail = status.get("detail", "")
    if squatting:
        service_detail += "; " + squatter_words(status, health, settings)
    findings = [
        {"check": "service_status", "status": "ok" if running else "critical", "detail": service_detail},
        {"check": "health_endpoint", "status": "ok" if health.get("healthy") and running else "critical",
         "detail": _health_detail(health, settings) + (" (not the backend: see service_status)" if squatting else "")},
        {"check": "error_rate",
         "status": "skipped" if not sampled else "critical" if error_rate > error_max else "ok",
         "detail": "not sampled (no probe URL or health check failing)" if not sampled else
         "%s of %s requests failed, max %s" % (_pct(error_rate), samples.get("count"), _pct(error_max))},
        {"check": "latency_p95",
         "status": "skipped" if not sampled else "warning" if p95 > p95_max else "ok",
         "detail": "not sampled" if not sampled else "p95 %s ms, max %s ms" % (round(p95, 1), settings.get("latency_p95_max_ms"))},
        {"check": "dependency_postgresql",
         "status": "skipped" if not settings.get("check_dependencies", True) or not pg
         else ("warning" if settings.get("allow_unvalidated_dependencies") else "critical")
         if pg.get("state") == "driver_missing"
         else "critical" if any(d["dependency"] == "postgresql" for d in down_deps) else "ok",
         "detail": pg.get("msg", "not checked")},
        {"check": "dependency_redis",
         "status": "skipped" if not settings.get("check_dependencies", True) or not rd
         else "critical" if any(d["dependency"] == "redis" for d in down_deps) else "ok",
         "detail": rd.get("msg", "not checked")},
    ]
    return {
        "problem": problem,
        "findings": findings + list((resources or {}).get("findings") or []),
        "dependencies_down": down_deps,
        "dependencies_unvalidated": [] if settings.get("allow_unvalidated_dependencies")
        else dependencies_unvalidated(dependencies, settings),
        "pid_before": status.get("pid"),
        "squatter": squatter_words(status, health, settings) if squatting else "",
    }


def with_node(assessment, status, signals, settings=None):
    """The assessment with its Node.js diagnosis (node_classify): ``node`` {node_class, evidence,
    next_step, restart_ok} and a node_diagnosis finding."""
    out = dict(assessment or {})
    node = node_classify.classify(out.get("problem", ""), status, signals, settings)
    out["node"] = node
    out["findings"] = list(out.get("findings") or []) + [node_classify.finding(node)]
    return out


def _node_words(assessment):
    node = (assessment or {}).get("node") or {}
    if not node.get("node_class"):
        return ""
    return " Node.js diagnosis: %s: %s. Next: %s" % (node["node_class"], node.get("evidence"), node.get("next_step"))


def plan(assessment, mode):
    """May the runbook restart the backend? {restart, why}."""
    problem = (assessment or {}).get("problem", "")
    node = (assessment or {}).get("node") or {}
    if mode != "recover":
        return {"restart": False, "why": "diagnose only"}
    if (assessment or {}).get("dependencies_down"):
        return {"restart": False, "why": "a dependency is down: a restart cannot fix it"}
    if problem in RESTARTABLE and node.get("restart_ok") is False:
        return {"restart": False, "why": "a restart would not help (%s)" % node.get("node_class")}
    if problem not in RESTARTABLE:
        return {"restart": False, "why": "nothing to restart" if not problem else "a restart would not help (%s)" % problem}
    if (assessment or {}).get("dependencies_unvalidated"):
        return {"restart": False, "why": "a dependency could not be validated from this host"}
    return {"restart": True, "why": "the backend's own process is at fault (%s)" % problem}


_NODE_ESCALATIONS = {
    node_classify.HEAP_LEAK: "the backend keeps reaching its heap limit after restarts: a memory leak",
    node_classify.PORT_IN_USE: "the backend cannot listen: its address is in use",
    node_classify.DEPENDENCY_SLOW: "the backend is slow because a dependency is",
}


def _down_names(down):
    return " and ".join("%s (%s)" % (d["dependency"], d["state"]) for d in down)


def conclude(assessment, plan_, restart=None, verify_probe=None, settings=None, mode="recover",
             check_mode=False):
    """RB-01's verdict: {outcome, reason, next_runbook, actions, verification}.

    restart: service_manager_restart_result (tasks/restart_gated.yml), or empty when no restart
    was attempted; verify_probe: http_health re-sample after an error-rate restart.
    """
    a, p, r, s = assessment or {}, plan_ or {}, restart or {}, settings or {}
    problem, down = a.get("problem", ""), a.get("dependencies_down") or []
    actions, verification = _actions(r, s, check_mode), []
    budget = r.get("budget") or {}

    node = a.get("node") or {}

    def done(outcome, reason, next_runbook=""):
        if outcome != HEALTHY:
            reason += _node_words(a)
        out = verdict(outcome, reason, next_runbook)
        out.update(actions=actions, verification=verification)
        return out

    if not problem and not down and node.get("node_class") == node_classify.HEAP_NEAR_LIMIT:
        return done(ESCALATE, "the backend serves, but its V8 heap is near its limit: a leak on its way to the "
                    "abort. Nothing was restarted and no restart budget was spent: a restart now only resets the "
                    "clock and loses the evidence.")
    if not problem and not down:
        warning = ""
        if node.get("node_class") == node_classify.EVENTLOOP_LAG:
            warning = "; warning: %s. Next: %s" % (node.get("evidence"), node.get("next_step"))
        return done(HEALTHY, "backend is running, answers /health and is within its error-rate and latency "
                    "thresholds" + warning)
    if down:
        return done(ESCALATE, "%s down: the backend was not restarted, since a restart cannot fix a dependency outage"
                    % _down_names(down), down[0]["runbook"])
    if problem == MANAGER_UNREACHABLE:
        return done(ESCALATE, "the service manager (%s) cannot act on %s: %s; nothing was restarted: fix the manager "
                    "or the deployment first" % (s.get("manager", "?"), s.get("service", "?"), s.get("manager_msg", "")))
    if problem == PORT_SQUATTER:
        return done(ESCALATE, "another process holds the backend's port: %s. Nothing was restarted and no restart "
                    "budget was spent: a restart cannot bind the port, and /health is not the backend's answer; "
                    "find out what that process is and stop it" % a.get("squatter", ""))
    if problem in RESTARTABLE and node.get("restart_ok") is False:
        return done(ESCALATE, "%s (%s): nothing was restarted and no restart budget was spent, since a restart "
                    "cannot fix it." % (_NODE_ESCALATIONS.get(node.get("node_class"), "the backend is %s" % problem),
                                        node.get("node_class")),
                    "RB-02" if node.get("node_class") == node_classify.DEPENDENCY_SLOW else "")
    if problem == SLOW:
        return done(ESCALATE, "requests are slow (p95 above %s ms) while the service is up: a restart would not help; "
                    "look for slow queries" % s.get("latency_p95_max_ms"), "RB-02")
    unvalidated = a.get("dependencies_unvalidated") or []
    if unvalidated and problem in RESTARTABLE:
        return done(ESCALATE, "cannot validate PostgreSQL from this host (%s): the backend was not restarted, since "
                    "a restart decided without its dependencies could hide a database outage; install "
                    "python3-psycopg2 where the check runs, or set backend_allow_unvalidated_dependencies: true "
                    "in the inventory to restart without that check" % unvalidated[0]["state"])
    if mode != "recover":
        return done(ESCALATE, "diagnose only: recovery would restart the backend (%s)" % problem)
    if budget and not budget.get("allowed"):
        if is_guard_refusal(budget.get("refusal", "")):
            # Unreadable budget state, a per-run policy, an override without a reason: the
            # guard's own line says what and how to get past it.
            return done(REFUSED, budget["refusal"])
        if int(budget.get("max_restarts") or 0) == 0:
            why = "automatic restarts are disabled (restart budget 0)"
        else:
            why = "restart budget spent: %s of %s restarts used in the last %s min (next slot in %s s)" % (
                budget.get("used"), budget.get("max_restarts"), int(_num(budget.get("window_seconds"))) // 60,
                int(_num(budget.get("resets_in_s"))))
        return done(REFUSED, why + "; a human may override it with --override-budget")
    if check_mode:
        return done(ESCALATE, "check mode: recovery would restart the backend (%s): %s; nothing was changed"
                    % (problem, r.get("detail") or "would restart"))
    verification.extend(_verification(r, s))
    if not r.get("restarted"):
        return done(ESCALATE, "the restart did not happen: %s" % (r.get("problem") or r.get("detail") or "unknown"))
    if r.get("problem"):
        return done(ESCALATE, "the restart did not restore service: " + r["problem"])
    samples = (verify_probe or {}).get("samples")
    if problem == ERRORS and isinstance(samples, dict) and samples.get("count"):
        rate = _num(samples.get("error_rate"))
        ok = rate <= _num(s.get("error_rate_max"), 0.05)
        verification.append({"check": "error_rate_after", "status": "ok" if ok else "critical",
                             "detail": "%s of %s requests failed" % (_pct(rate), samples.get("count"))})
        if not ok:
            return done(ESCALATE, "the restart did not restore service: error rate still %s after the restart" % _pct(rate))
    soak = r.get("soak") or {}
    return done(RECOVERED, "backend restarted (%s%s): %s -> %s, passed the health gate%s and is still the running "
                "process by %s" % (problem, ", " + node["node_class"] if node.get("node_class") else "", r.get("before"), r.get("after"),
                                   " and a %s s soak" % s.get("soak_seconds") if soak.get("probes") else "",
                                   r.get("manager", "its service manager")))


STOPPED_EARLY = "the run stopped before an outcome was reached"


def run_result(record, assessment=None, plan_=None, restart=None, verify_probe=None, settings=None,
               mode="recover", check_mode=False, stopped=None):
    """The published result (pflow_run_result): ``record`` (runbook, host, service, mode, logs,
    investigation, ...) with the verdict, the findings, the actions and the verification rows.

    ``stopped`` is the rescue's {outcome, reason} when a step failed: it wins, with the findings
    the run had. Without an assessment or a plan (a failed preflight) the run is an error. The
    restart result counts only when the plan restarted (a previous run's stays out)."""
    out = dict(record or {})
    a, p = assessment or {}, plan_ or {}
    if stopped and stopped.get("outcome"):
        result = verdict(stopped["outcome"], stopped.get("reason") or STOPPED_EARLY)
        result.update(actions=[], verification=[])
    elif not a or not p:
        result = verdict(ERROR, STOPPED_EARLY)
        result.update(actions=[], verification=[])
    else:
        result = conclude(a, p, restart if p.get("restart") else {}, verify_probe, settings, mode, check_mode)
    out.update(outcome=result["outcome"], reason=result["reason"], next_runbook=result["next_runbook"],
               findings=list(a.get("findings") or []), actions=result["actions"],
               verification=result["verification"])
    return out


def _actions(r, s, check_mode):
    actions = []
    budget = r.get("budget") or {}
    if budget:
        result = r.get("budget_words") or budget.get("summary", "")
        if budget.get("overridden"):
            result += " (override: %s)" % s.get("override_reason", "")
        row = {"action": "restart_budget", "target": budget.get("key", ""), "result": result}
        if check_mode:
            row.update(before="%s of %s used" % (max(int(budget.get("used", 0)) - 1, 0), budget.get("max_restarts")),
                       after="%s of %s used" % (budget.get("used"), budget.get("max_restarts")))
        actions.append(row)
    if r.get("restarted") or r.get("would_restart"):
        actions.append({"action": "restart", "target": s.get("target", ""),
                        "result": r.get("detail", ""), "before": r.get("before", ""), "after": r.get("after", "")})
    return actions


def _verification(r, s):
    rows = []
    gate = r.get("gate") or {}
    if gate.get("ran"):
        if gate.get("passed"):
            detail = "healthy after %s s, %s probes" % (round(_num(gate.get("waited_s")), 2), gate.get("attempts", 1))
        elif gate.get("gone"):
            detail = "stopped early: %s" % gate["gone"]
        else:
            detail = "not healthy within %s s (%s): %s; the setting is %s" % (
                s.get("gate_timeout"), gate.get("state"), gate.get("reason") or "no answer", s.get("gate_timeout_setting"))
        rows.append({"check": "health_gate", "status": "ok" if gate.get("passed") else "critical", "detail": detail})
    soak = r.get("soak") or {}
    if soak.get("probes"):
        gone = ("; " + soak["gone"]) if soak.get("gone") else ""
        rows.append({"check": "soak", "status": "ok" if not soak.get("failures") and not soak.get("gone") else "critical",
                     "detail": "%s probes over %s s, %s failed%s" % (
                         soak.get("probes"), s.get("soak_seconds"), soak.get("failures"), gone)})
    if r.get("restarted"):
        rows.append({"check": "process_confirmed", "status": "ok" if r.get("confirmed") else "critical",
                     "detail": ("%s still shows the restarted process: %s" % (r.get("manager"), r.get("after")))
                     if r.get("confirmed") else
                     "%s does not show the restarted process (%s) running: now %s" % (
                         r.get("manager"), r.get("pid_after") or "none", r.get("after_final") or r.get("state_after") or "unknown")})
    return rows
