# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-02 Database Issues: every decision of the runbook, as pure functions.

- ``classify``: what is wrong, from pg_diagnose's result and (when PostgreSQL does not answer)
  the service manager's status;
- ``plan``: what recover may do (restart, or the exact targets pg_remediate acts on);
- ``fixes_made``: whether pg_remediate changed something for real;
- ``verdict``: what happened (outcome, reason, next runbook, actions, verification rows).

No Ansible import: the role reaches them through the ``pivotal.flow_ops.database_*`` filters,
and the unit tests call them directly. The outcome words come from ``outcome.py`` only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils.budget_policy import is_guard_refusal
from ansible_collections.pivotal.flow_ops.plugins.module_utils.outcome import (
    ESCALATE,
    HEALTHY,
    RECOVERED,
    REFUSED,
    verdict as _verdict,
)

# The checks whose problems the runbook fixes itself; everything else is escalated.
FIXABLE_CHECKS = (
    "connections",
    "idle_in_transaction",
    "long_running_queries",
    "blocking_locks",
    "invalid_indexes",
    "stale_statistics",
    "settings",
)
# Connectivity states of a PostgreSQL that runs but refuses the monitoring role.
ACCESS_STATES = ("auth_failed", "not_allowed", "database_missing", "too_many_clients", "driver_missing")
# The targets pg_remediate takes, by candidate key; maintenance touches objects only.
SESSION_TARGETS = (
    ("cancel_queries", "runaway_queries"),
    ("terminate_idle_in_transaction", "idle_in_transaction"),
    ("terminate_idle", "idle_sessions"),
)
OBJECT_TARGETS = (("analyze_tables", "stale_tables"), ("reindex_indexes", "invalid_indexes"))
ALL_OK = "PostgreSQL answers and every check is within its threshold"

# The problems classify() names ('' when PostgreSQL answers).
DOWN = "down"
MANAGER_UNREACHABLE = "manager_unreachable"
ACCESS = "access"
UNRESPONSIVE = "unresponsive"
# The server answered but the TLS handshake failed (pg_check's tls_failed): whatever the service
# manager says, PostgreSQL runs, and only the certificates or ssl_mode can fix it.
TLS = "tls"
TLS_FAILED = "tls_failed"


def _bad(findings, statuses=("warning", "critical")):
    return [f for f in findings or [] if f.get("status") in statuses]


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


# --------------------------------------------------------------------------- classification


def classify(dx, status=None):
    """What is wrong. ``dx`` is pg_diagnose's result; ``status`` the service manager's
    (service_manager_status), asked only when PostgreSQL did not answer (None otherwise).

    problem: '' (answers) | tls | down | manager_unreachable | access | unresponsive."""
    dx = dx or {}
    available = bool(dx.get("available"))
    known = not available and isinstance(status, dict) and bool(status)
    state = (dx.get("connectivity") or {}).get("state", "")
    if available:
        problem = ""
    elif state == TLS_FAILED:
        problem = TLS
    elif not known or not status.get("reachable"):
        problem = MANAGER_UNREACHABLE
    elif not status.get("running"):
        problem = DOWN
    elif state in ACCESS_STATES:
        problem = ACCESS
    else:
        problem = UNRESPONSIVE
    findings = list(dx.get("findings") or [])
    if known:
        findings.append(
            {
                "check": "service_status",
                "status": "ok" if status.get("running") else "critical",
                "value": status.get("state") or "unknown",
                "threshold": "running",
                "detail": status.get("detail") or status.get("msg") or "service manager not asked",
            }
        )
    escalations = list(dx.get("escalations") or [])
    return {
        "problem": problem,
        "state": state,
        "findings": findings,
        "escalations": [e for e in escalations if not e.get("advisory")],
        "advisories": [e for e in escalations if e.get("advisory")],
        "pending": list(dx.get("pending") or []),
        "logs": list(status.get("logs") or []) if known else [],
        "pid_before": status.get("pid") if known else None,
        "service_msg": (status or {}).get("msg") or "" if not available else "",
    }


# --------------------------------------------------------------------------- plan


def _true(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def plan(mode, problem, dx, override=False, override_reason=""):
    """What recover may do: restart a down PostgreSQL (recover mode only), or act on the exact
    targets the diagnosis chose (sessions and settings never in maintain mode; only settings
    a reload applies). ``restart_reason`` is what the restart budget records (with the
    override's reason when the budget is overridden)."""
    dx = dx or {}
    state = (dx.get("connectivity") or {}).get("state", "")
    restart_reason = "RB-02 DatabaseConnectionFailure (%s)" % state
    if _true(override):
        restart_reason += ", override: %s" % override_reason
    candidates = dx.get("candidates") or {} if dx.get("available") else {}
    objects_only = mode == "maintain"
    targets = {}
    for key, source in SESSION_TARGETS:
        targets[key] = [] if objects_only else list(candidates.get(source) or [])
    for key, source in OBJECT_TARGETS:
        targets[key] = list(candidates.get(source) or [])
    settings = [s for s in candidates.get("settings") or [] if s.get("apply") == "reload"]
    targets["settings"] = [] if objects_only else settings
    return {
        "restart_wanted": mode == "recover" and problem == DOWN,
        "restart_reason": restart_reason,
        "remediate": bool(dx.get("available")),
        "targets": targets,
    }


def _done(fix):
    return [a for a in (fix or {}).get("actions") or [] if not str(a.get("result", "")).startswith("skipped")]


def fixes_made(fix, dry):
    """pg_remediate changed something for real: not a dry run, and at least one action not skipped."""
    return bool((fix or {}).get("changed")) and not dry and bool(_done(fix))


# --------------------------------------------------------------------------- verdict


def _by_app(fix):
    counts = (fix or {}).get("sessions_by_application") or {}
    if not counts:
        return ""
    apps = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return "; sessions by application: " + ", ".join("%s %s" % (app, n) for app, n in apps)


def _advice(advisories):
    return ("; for review: " + ", ".join(a["check"] for a in advisories)) if advisories else ""


def _warnings(findings):
    """The warnings that stand, as words: never "every check is within its threshold" while they do."""
    return ", ".join("%s (%s)" % (f["check"], f.get("value")) for f in _bad(findings, ("warning",)))


def _all_ok(findings):
    standing = _warnings(findings)
    return "PostgreSQL answers; nothing for the runbook to do; warnings stand: " + standing if standing else ALL_OK


def _did(done):
    kinds = []
    for act in done:
        if act["action"] not in kinds:
            kinds.append(act["action"])
    if len(done) <= 3:
        what = "; ".join("%s %s" % (a["action"], a.get("target", "")) for a in done)
    else:
        what = ", ".join(kinds)
    return "%s (%s)" % (_plural(len(done), "action"), what)


def _restart(f):
    """service_manager_restart_result (the shared restart entry point), only when this run
    wanted a restart: a result left by another role's restart on the same host never counts."""
    return dict(f.get("restart") or {}) if _true(f.get("restart_wanted")) else {}


def _logs_after(r):
    logs = r.get("logs_after") or []
    return ("; its log after the restart: " + " | ".join(logs[-5:])) if logs else ""


def _restart_actions(f, r):
    out = []
    budget = r.get("budget") or {}
    check = _true(f.get("check_mode"))
    if "allowed" in budget:
        override = (
            " (override: %s)" % f.get("override_reason", "") if budget.get("overridden") else ""
        )
        used, top = int(budget.get("used") or 0), budget.get("max_restarts", "?")
        # ``used`` counts the restart just taken (in check mode, the one that would be taken).
        before = used - 1 if budget.get("allowed") and used else used
        out.append(
            {
                "action": "restart_budget",
                "target": budget.get("key", ""),
                "result": str(r.get("budget_words") or budget.get("summary", "")) + override,
                "before": "%s of %s restarts used" % (before, top),
                "after": "%s of %s restarts used" % (used, top),
            }
        )
    target = "%s:%s" % (f.get("host", ""), f.get("service_name", ""))
    if check and r.get("would_restart"):
        out.append(
            {
                "action": "restart",
                "target": target,
                "result": r.get("detail") or "would restart (check mode)",
                "before": r.get("before", ""),
                "after": "%s, then must answer SELECT 1 within %s s"
                % (r.get("after") or "running", f.get("ready_timeout")),
            }
        )
    elif r.get("restarted"):
        ready = (f.get("ready") or {}).get("available")
        if r.get("problem"):
            after, result = r.get("after_final") or r.get("after", ""), "%s; %s" % (
                r.get("detail", "restarted"),
                r["problem"],
            )
        else:
            after = r.get("after", "") + (
                ", answers SELECT 1" if ready else ", no answer to SELECT 1"
            )
            result = r.get("detail", "restarted")
        out.append(
            {
                "action": "restart",
                "target": target,
                "result": result,
                "before": r.get("before", ""),
                "after": after,
            }
        )
    return out


def _down(f, r):
    """The verdict of a PostgreSQL that is down: (outcome, reason, next_runbook)."""
    state = f.get("state", "")
    budget = r.get("budget") or {}
    ready = f.get("ready") or {}
    if f.get("mode") == "maintain":
        return ESCALATE, "PostgreSQL is down: run RB-02 to restart it before maintenance", "RB-02"
    if f.get("mode") == "diagnose":
        return ESCALATE, "diagnose only: recovery would restart PostgreSQL (%s)" % state, ""
    if "allowed" in budget and not budget["allowed"]:
        if is_guard_refusal(budget.get("refusal", "")):
            return REFUSED, "PostgreSQL is down; %s" % budget["refusal"], ""
        if int(budget.get("max_restarts") or 0) == 0:
            why = "automatic restarts are disabled (restart budget 0)"
        else:
            why = "restart budget spent (%s of %s in the window)" % (
                budget.get("used", "?"),
                budget.get("max_restarts", "?"),
            )
        return REFUSED, "PostgreSQL is down; %s: a human decides (--override-budget)" % why, ""
    if _true(f.get("check_mode")):
        return (
            ESCALATE,
            "check mode: recovery would restart PostgreSQL (%s): %s; nothing was changed"
            % (state, r.get("detail") or "would restart"),
            "",
        )
    if not r.get("restarted"):
        return (
            ESCALATE,
            "PostgreSQL is down (%s) and the service manager did not restart it: %s"
            % (state, r.get("problem") or r.get("detail") or "no restart result"),
            "",
        )
    if r.get("problem"):
        return ESCALATE, "PostgreSQL was restarted but the restart did not hold: " + r["problem"], ""
    if ready.get("available"):
        return (
            RECOVERED,
            "PostgreSQL was down (%s), restarted through %s (%s -> %s) and answers SELECT 1 again"
            % (state, f.get("manager"), r.get("before"), r.get("after")),
            "",
        )
    return (
        ESCALATE,
        "PostgreSQL was restarted (%s) but does not answer SELECT 1 within %s s: %s%s"
        % (
            r.get("after"),
            f.get("ready_timeout"),
            (ready.get("connectivity") or {}).get("msg") or "no answer",
            _logs_after(r),
        ),
        "",
    )


def _not_answering(f):
    problem, state = f.get("problem"), f.get("state", "")
    if problem == MANAGER_UNREACHABLE:
        return (
            "PostgreSQL does not answer (%s) and the service manager cannot be reached (%s): check the host by hand"
            % (state, f.get("service_msg", ""))
        )
    if problem == TLS:
        return (
            "PostgreSQL answered but TLS failed (%s): check database_ssl_mode, database_ca_cert, database_ssl_cert "
            "and database_ssl_key against the server's certificate and CA; no restart: the server runs"
            % (f.get("connectivity_msg") or state)
        )
    if problem == ACCESS and state == "too_many_clients":
        return (
            "no connection slot left for the monitoring role (too_many_clients): connect as a superuser "
            "(reserved slots) and end idle sessions, or give the monitoring role its own slots"
        )
    if problem == ACCESS:
        return "PostgreSQL runs but refuses the monitoring role (%s): fix the credentials or pg_hba.conf" % state
    return "PostgreSQL runs but does not answer (%s); a restart could lose in-flight work: a DBA decides" % state


def _dry(f, done, human, pending):
    mode = f.get("mode")
    if done:
        reason = "%s: %s would take %s%s; nothing was changed" % (
            "diagnose only" if mode == "diagnose" else "check mode",
            "maintenance" if mode == "maintain" else "recovery",
            _did(done),
            _by_app(f.get("fix")),
        )
        if human:
            reason += "; also needs a human: " + human
        return ESCALATE, reason + _advice(f.get("advisories"))
    if human:
        return ESCALATE, "needs a human: " + human + _advice(f.get("advisories"))
    if pending:
        return ESCALATE, _pending_reason(pending) + _advice(f.get("advisories"))
    return HEALTHY, _all_ok(f.get("findings")) + _advice(f.get("advisories"))


def _pending_reason(pending):
    return "sessions are blocked now, not yet over the runbook's limits: " + "; ".join(pending)


def _after_fix(f, done, before_bad):
    """A real run that changed something: the re-check decides."""
    fix = f.get("fix") or {}
    after = f.get("after") or {}
    after_by = {x["check"]: x for x in after.get("findings") or []}
    after_human = [e for e in after.get("escalations") or [] if not e.get("advisory")]
    human_checks = set(e["check"] for e in after_human)
    still = [c for c in before_bad if (after_by.get(c) or {}).get("status") == "critical"]
    # Still critical because of what only a human may end (a superuser's query): that part is
    # named, not called "did not hold".
    unexplained = [c for c in still if c not in human_checks]
    held = [c for c in before_bad if c not in still]
    failed = int(fix.get("failed_actions") or 0)
    human = "; ".join(e["reason"] for e in after_human)
    if unexplained or failed:
        reason = "fixes did not hold: "
        if unexplained:
            reason += ", ".join(unexplained) + " still critical after the re-check"
        if failed:
            reason += (" and " if unexplained else "") + "%s failed" % _plural(failed, "action")
        if human:
            reason += "; also needs a human: " + human
        return ESCALATE, reason
    fixed = held + ["%s (in part)" % c for c in still]
    fixed_text = ", ".join(fixed) if fixed else "nothing the re-check shows"
    if human:
        return ESCALATE, "fixed %s with %s; a human is needed for %s: %s" % (
            fixed_text,
            _did(done),
            ", ".join(sorted(human_checks)),
            human,
        )
    standing = _warnings(after.get("findings"))
    return RECOVERED, "%s fixed %s; the re-check %s%s%s" % (
        _did(done),
        fixed_text,
        ("shows no critical finding, warnings stand: " + standing) if standing else "is clean",
        _by_app(fix),
        _advice(f.get("advisories")),
    )


def _verification(f, before_bad):
    after = f.get("after") or {}
    rows = [x for x in after.get("findings") or [] if x.get("check") in before_bad]
    ready = f.get("ready") or {}
    if "connectivity" in ready:
        rows.append(
            {
                "check": "select_1",
                "status": "ok" if ready.get("available") else "critical",
                "value": ready["connectivity"].get("state", ""),
                "threshold": "%s s" % f.get("ready_timeout"),
                "detail": ready["connectivity"].get("msg", ""),
            }
        )
    return rows


def verdict(f):
    """What happened. ``f`` holds plain facts:

    mode, check_mode, host, service_name, manager, ready_timeout, override_reason; the
    classification (problem, state, findings, escalations, advisories, pending, service,
    service_msg) and connectivity_msg (pg_diagnose's one line on the connection); the restart path (restart_wanted, restart: service_manager_restart_result of
    the shared entry point service_manager/restart_gated.yml, ready: the SELECT 1 wait);
    and the fix path (fix: pg_remediate's result, fixed: fixes_made(), after: the re-diagnosis).

    Returns outcome, reason, next_runbook, actions (restart actions then pg_remediate's) and
    verification (the re-checked findings, and SELECT 1 after a restart)."""
    f = dict(f or {})
    mode = f.get("mode")
    dry = _true(f.get("check_mode")) or mode == "diagnose"
    restart = _restart(f)
    fix = f.get("fix") or {}
    done = _done(fix)
    human = "; ".join(e["reason"] for e in f.get("escalations") or [])
    pending = list(f.get("pending") or [])
    before_bad = [
        x["check"] for x in _bad(f.get("findings")) if x.get("check") in FIXABLE_CHECKS
    ]
    next_runbook = ""
    problem = f.get("problem") or ""
    if problem == DOWN:
        outcome, reason, next_runbook = _down(f, restart)
    elif problem:
        outcome, reason = ESCALATE, _not_answering(f)
    elif dry:
        outcome, reason = _dry(f, done, human, pending)
    elif f.get("fixed"):
        outcome, reason = _after_fix(f, done, before_bad)
    elif int(fix.get("failed_actions") or 0) > 0:
        outcome, reason = ESCALATE, "actions failed: " + "; ".join(
            str(a.get("result")) for a in fix.get("actions") or []
        )
    elif human:
        outcome, reason = ESCALATE, "needs a human: " + human + _advice(f.get("advisories"))
    elif pending:
        outcome, reason = ESCALATE, _pending_reason(pending) + _advice(f.get("advisories"))
    elif mode == "maintain":
        outcome, reason = HEALTHY, "maintenance found nothing to do" + _advice(f.get("advisories"))
    else:
        outcome, reason = HEALTHY, _all_ok(f.get("findings")) + _advice(f.get("advisories"))
    result = _verdict(outcome, reason, next_runbook)
    result["actions"] = _restart_actions(f, restart) + list(fix.get("actions") or [])
    result["verification"] = _verification(f, before_bad)
    return result
