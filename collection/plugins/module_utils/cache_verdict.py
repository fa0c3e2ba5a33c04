# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-03's verdict, a pure function over the plain results of each step: what happened (tuning,
or budget -> restart -> PING gate -> backend gate, then the re-measure), with the actions and
verification rows the report shows. The restart comes in as service_manager_restart_result,
the result of the shared entry point service_manager/restart_gated.yml (budget, before -> after,
exit status, the log lines written after the restart, and why it did not hold).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils.budget_policy import is_guard_refusal
from ansible_collections.pivotal.flow_ops.plugins.module_utils.cache_decisions import finding_of
from ansible_collections.pivotal.flow_ops.plugins.module_utils.outcome import (
    ESCALATE,
    HEALTHY,
    RECOVERED,
    REFUSED,
    verdict as _verdict,
)


def _unavailable(problem, facts):
    state, port = facts.get("state", "?"), facts.get("settings", {}).get("redis_port", "?")
    reasons = {
        "max_clients": "max number of clients reached: Redis refuses every new connection, this runbook's too, so it "
                       "could neither look inside nor act. Find the client leaking connections (ss -tnp sport = :%s), "
                       "stop it, then raise maxclients; a restart would drop every client and the whole cache" % port,
        "auth": "Redis refused the credentials (%s): check cache_redis_user and cache_redis_password (vault) "
                "against the ACL" % state,
        "auth_not_required": "a password was sent but Redis has none configured for the default user (it answered "
                             "'AUTH <password> called without any password configured'): clear cache_redis_password, "
                             "or set the password on the server (requirepass or an ACL user)",
        "loading": "Redis is loading its dataset into memory: wait for it to finish, then run again",
        "acl": "%s (the cache role README lists the least-privilege user's rules); no restart: Redis itself "
               "answered" % facts.get("diag_msg", ""),
        "tls": "Redis answered but TLS failed (%s): check cache_redis_ca_certs, cache_redis_client_cert_file and "
               "cache_redis_client_key_file against the server's certificate and CA; no restart: Redis itself "
               "answered" % facts.get("diag_msg", ""),
        "manager_unreachable": "Redis does not answer (%s) and its service manager cannot be reached (%s): check "
                               "the host and restart by hand" % (state, facts.get("service_msg", "")),
    }
    if problem in reasons:
        return reasons[problem]
    if state == "busy":
        return ("Redis is running but busy with a script or function (BUSY): SCRIPT KILL or FUNCTION KILL it, or wait "
                "for it; a restart would empty the cache")
    if state == "timeout":
        return ("Redis is running but does not answer in time (timeout): look for a long script or a blocking command "
                "(SLOWLOG, LATENCY DOCTOR) first; a restart would empty the cache")
    return "Redis is running but does not answer (%s: %s); a restart would empty the cache" % (
        state, facts.get("diag_msg", ""))


def _below_thresholds(diag, settings):
    """Signals seen but under the threshold a change waits for: said, never hidden by "healthy"."""
    rates = diag.get("rates") or {}
    notes = []
    if rates.get("evicted"):
        notes.append("%s keys evicted in %s s (%s/s; maxmemory is raised above %s/s)" % (
            rates["evicted"], rates.get("window_s"), rates.get("evicted_per_s"), settings.get("eviction_rate_max")))
    hit = finding_of(diag, "hit_rate")
    if hit.get("status") == "skipped" and rates.get("misses"):
        notes.append("%s misses and %s hits in %s s: the hit rate is judged from %s lookups" % (
            rates["misses"], rates.get("hits", 0), rates.get("window_s"), settings.get("hit_rate_min_lookups")))
    return notes


def _healthy_reason(facts):
    warned = []
    for f in facts.get("findings") or []:
        if f.get("status") in ("warning", "critical") and f.get("check") not in warned:
            warned.append(f["check"])
    notes = _below_thresholds(facts.get("diag") or {}, facts.get("settings") or {})
    if not warned and not notes:
        return "Redis answers and every check is within its threshold"
    text = "Redis answers and needs no change"
    if notes:
        text += "; seen below the action thresholds: " + "; ".join(notes)
    if warned:
        text += " (warnings: %s)" % ", ".join(warned)
    return text


def _restart(facts):
    """service_manager_restart_result, only when this run restarts a down Redis: a result left
    on the host by another role's restart never counts."""
    wanted = facts.get("mode", "recover") == "recover" and facts.get("problem") == "down"
    return dict(facts.get("restart") or {}) if wanted else {}


def _logs_after(restart):
    logs = restart.get("logs_after") or []
    return ("; its log after the restart: " + " | ".join(logs[-5:])) if logs else ""


def _restart_rows(facts):
    restart, s = _restart(facts), facts.get("settings") or {}
    budget = restart.get("budget") or {}
    check = _true(facts.get("check_mode"))
    actions, checks = [], []
    if "allowed" in budget:
        override = " (override: %s)" % s.get("override_reason", "") if budget.get("overridden") else ""
        used, top = int(budget.get("used") or 0), budget.get("max_restarts", "?")
        # ``used`` counts the restart just taken (in check mode, the one that would be taken).
        before = used - 1 if budget["allowed"] and used else used
        actions.append({"action": "restart_budget", "target": budget.get("key", s.get("budget_key", "")),
                        "before": "%s of %s restarts used" % (before, top), "after": "%s of %s restarts used" % (used, top),
                        "result": "%s%s%s" % (restart.get("budget_words") or budget.get("summary", ""), override,
                                              " (check mode: nothing recorded)" if check else "")})
    if check and restart.get("would_restart"):
        actions.append({"action": "restart", "target": s.get("restart_target", ""),
                        "before": restart.get("before") or "unknown", "after": "running",
                        "result": "would restart (check mode)"})
    elif restart.get("restarted"):
        problem = restart.get("problem")
        actions.append({"action": "restart", "target": s.get("restart_target", ""),
                        "before": restart.get("before") or "unknown",
                        "after": (restart.get("after_final") or restart.get("after", "")) if problem
                        else restart.get("after", ""),
                        "result": "%s; %s" % (restart.get("detail", "restarted"), problem) if problem
                        else restart.get("detail", "restarted")})
    ping, backend = facts.get("ping_gate") or {}, facts.get("backend_gate") or {}
    if "state" in ping:
        checks.append({"check": "ping_gate", "status": "ok" if ping.get("available") else "critical",
                       "value": ping["state"], "threshold": "PONG within %s s" % s.get("ping_gate_timeout"),
                       "detail": ping.get("msg", "")})
    if "healthy" in backend:
        checks.append({"check": "backend_health_gate", "status": "ok" if backend["healthy"] else "critical",
                       "value": backend.get("state", "-"),
                       "threshold": "HTTP 200 within %s s" % s.get("health_gate_timeout"),
                       "detail": "GET %s: %s" % (s.get("backend_health_url"), backend.get("state", ""))})
    return actions, checks


def readback(actions, wanted, after_config):
    """Each applied setting read back after the change: ok when the live value is the wanted one."""
    rows = []
    for a in actions:
        if a.get("action") != "config_set" or a.get("result") != "set":
            continue
        live = str((after_config or {}).get(a["target"], "?"))
        ok = live == str((wanted or {}).get(a["target"], ""))
        shown = a.get("after") if ok else live
        rows.append({"check": "setting:%s" % a["target"], "status": "ok" if ok else "critical", "value": shown,
                     "threshold": a.get("after"),
                     "detail": "CONFIG GET %s after the change: %s (was %s)" % (a["target"], shown, a.get("before"))})
    return rows


def _probe(result):
    """The write probe: True (SET worked), False (refused: writes fail), None (not run, or this
    user may not SET, which says nothing about whether writes fail)."""
    probe = result.get("write_probe")
    if not probe:
        return None, None
    ok = probe.get("ok")
    row = {"check": "write_probe", "status": {True: "ok", False: "critical"}.get(ok, "skipped"),
           "value": {True: "ok", False: "failed"}.get(ok, "not permitted"), "threshold": "SET succeeds",
           "detail": probe.get("detail", "")}
    return ok, row


def _tuning(facts):
    """Rows and failures of an applied tuning (recover) or re-applied intended config (maintain)."""
    result = facts.get("tuning") or {}
    after = facts.get("after") or {}
    s = facts.get("settings") or {}
    applied = []
    for a in result.get("actions") or []:
        if a.get("result") in ("set", "purged", "killed") and a.get("target") not in applied:
            applied.append(a["target"] if a.get("action") == "config_set" else a.get("action"))
    rows = readback(result.get("actions") or [], result.get("wanted"), after.get("config"))
    probe_ok, probe_row = _probe(result)
    rows += [probe_row] if probe_row else []
    rates, memory = after.get("rates") or {}, after.get("memory") or {}
    raised = "maxmemory" in applied
    evict_ok = not raised or float(rates.get("evicted_per_s") or 0) <= float(s.get("eviction_rate_max", 0))
    oom_ok = not (after.get("signals") or {}).get("oom")
    if raised and rates:
        rows.append({"check": "eviction_rate_after", "status": "ok" if evict_ok else "critical",
                     "value": "%s/s" % rates.get("evicted_per_s"), "threshold": "%s/s" % s.get("eviction_rate_max"),
                     "detail": "%s keys evicted in %s s after the change" % (rates.get("evicted"), rates.get("window_s"))})
    if memory:
        rows.append({"check": "oom_after", "status": "ok" if oom_ok else "critical",
                     "value": memory.get("maxmemory_policy"), "threshold": "an evicting policy",
                     "detail": "policy %s, %s OOM errors in the window after the change"
                               % (memory.get("maxmemory_policy"), rates.get("oom_errors", 0))})
    persisted = result.get("persisted", True)
    rows.append({"check": "persisted", "status": "ok" if persisted else "warning",
                 "value": "yes" if persisted else "no", "threshold": "CONFIG REWRITE", "detail": result.get("msg", "")})
    failures = []
    if not persisted:
        msg = str(result.get("msg", ""))
        at = msg.find("NOT persisted")
        failures.append("%s; add it to the deployment config before the next restart"
                        % (msg[at:] if at >= 0 else "NOT persisted (%s)" % msg))
    if not evict_ok:
        failures.append("evictions continue at %s/s" % rates.get("evicted_per_s", "?"))
    if not oom_ok or probe_ok is False:
        failures.append("writes still fail")
    if any(r["status"] == "critical" for r in rows if r["check"].startswith("setting:")):
        failures.append("a setting did not stick")
    notes = ["write probe not run: %s" % probe_row["detail"]] if probe_ok is None and probe_row else []
    return applied, rows, failures, notes


def _true(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _plan_text(facts):
    assessment = facts.get("assessment") or {}
    if facts.get("problem") == "down":
        return "restart Redis (%s)" % facts.get("state", "?")
    return ", ".join(assessment.get("plan") or []) or "nothing"


def _drift_finding(drift, reapplied):
    detail = "%s is %s, intended %s" % (drift["target"], drift.get("before"), drift.get("after"))
    return {"check": "config_drift:%s" % drift["target"], "status": "warning", "value": drift.get("before"),
            "threshold": drift.get("after"), "detail": detail + (" (re-applied)" if reapplied else "")}


def verdict(facts):
    """RB-03's outcome: {outcome, reason, next_runbook, actions, verification, findings}.

    ``facts`` holds plain values: mode, check_mode, problem, state, diag_msg, service_msg, diag,
    assessment, findings (so far), tune and maint_apply (redis_tune's results), after (the
    re-measure), drift (redis_tune check-mode actions), restart (service_manager_restart_result),
    ping_gate, backend_gate and settings (thresholds, timeouts, names the reason quotes, and
    restart_target, the restart action's target).
    """
    facts = dict(facts)
    maint, tune = facts.get("maint_apply") or {}, facts.get("tune") or {}
    if "tuning" not in facts:
        facts["tuning"] = maint if maint.get("changed") else tune
        facts["tuned"] = bool(maint.get("changed") or tune.get("changed"))
    facts["tuning"] = facts.get("tuning") or {}
    actions, checks = _restart_rows(facts)
    concluded = _before_recovery(facts) or _after_recovery(facts, checks)
    result = _verdict(*concluded)
    result.update(actions=actions + list(facts["tuning"].get("actions") or []), verification=checks,
                  findings=[_drift_finding(d, _true(facts.get("tuned"))) for d in facts.get("drift") or []])
    return result


def _recs(facts):
    return "; ".join(((facts.get("assessment") or {}).get("recommendations")) or [])


def _before_recovery(facts):
    """(outcome, reason, next_runbook) when no recovery result decides it, else None."""
    mode, problem, tuned = facts.get("mode", "recover"), facts.get("problem", ""), _true(facts.get("tuned"))
    recs, drift = _recs(facts), facts.get("drift") or []
    also = "; also needs a human: %s" % recs if recs else ""
    if problem not in ("", "tuning", "down"):
        return ESCALATE, _unavailable(problem, facts), ""
    if drift and not tuned:
        how = (" (check mode: nothing re-applied)" if _true(facts.get("check_mode"))
               else " (set cache_maintenance_apply_intended to re-apply it)")
        return ESCALATE, "config drift from the intended config: %s%s%s" % (
            ", ".join(d["target"] for d in drift), how, also), ""
    if problem == "" and recs:
        return ESCALATE, "needs a human: %s" % recs, ""
    if problem == "" and not tuned:
        return HEALTHY, _healthy_reason(facts), ""
    if mode == "diagnose" or (mode == "maintain" and not tuned):
        what = "diagnose only" if mode == "diagnose" else "maintenance found an incident"
        return ESCALATE, "%s: recovery would %s%s" % (what, _plan_text(facts), also), \
            "RB-03" if mode == "maintain" else ""
    return None


def _refused(budget, settings):
    if is_guard_refusal(budget.get("refusal", "")):
        # Unreadable budget state, a per-run policy, an override without a reason.
        return REFUSED, "Redis is down; %s" % budget["refusal"], ""
    if int(budget.get("max_restarts") or 0) == 0:
        why = "automatic restarts are disabled (restart budget 0)"
    else:
        why = "restart budget spent: %s of %s restarts used in the last %s min (next slot in %s s)" % (
            budget.get("used"), budget.get("max_restarts"), int(settings.get("budget_window", 0)) // 60,
            int(budget.get("resets_in_s") or 0))
    return REFUSED, why + "; a human may override it with --override-budget", ""


def _after_recovery(facts, checks):
    """(outcome, reason, next_runbook) from the budget, the restart and its gates, or the tuning."""
    s, problem = facts.get("settings") or {}, facts.get("problem", "")
    restart = _restart(facts)
    budget = restart.get("budget") or {}
    if "allowed" in budget and not budget["allowed"]:
        return _refused(budget, s)
    if _true(facts.get("check_mode")):
        would = "restart Redis (%s -> running)" % (restart.get("before") or facts.get("state", "?")) \
            if problem == "down" else ", ".join(
                "%s %s -> %s" % (a.get("target"), a.get("before", "?"), a.get("after", "?"))
                if a.get("action") == "config_set" else a.get("action", "?")
                for a in facts["tuning"].get("actions") or []) or _plan_text(facts)
        return ESCALATE, "check mode: recovery would %s; nothing was changed" % would, ""
    if problem == "down":
        return _after_restart(restart, facts, s)
    applied, rows, failures, notes = _tuning(facts)
    names, recs = ", ".join(applied), _recs(facts)
    checks.extend(rows)
    note = " (%s)" % "; ".join(notes) if notes else ""
    if failures:
        also = "; also needs a human: %s" % recs if recs else ""
        return ESCALATE, "tuning applied (%s) but %s%s%s" % (names, "; ".join(failures), note, also), ""
    if recs:
        return ESCALATE, "tuning applied and verified (%s)%s; still needs a human: %s" % (names, note, recs), ""
    done = "intended config re-applied" if facts.get("mode") == "maintain" else "tuning applied"
    return RECOVERED, "%s (%s), verified and persisted to %s%s" % (
        done, names, facts["tuning"].get("config_file") or "?", note), ""


def _after_restart(restart, facts, s):
    """A down Redis after the shared restart entry point, then the PING and backend gates."""
    if not restart.get("restarted"):
        return ESCALATE, "the Redis restart did not happen: %s" % (
            restart.get("problem") or restart.get("detail") or "no restart result"), ""
    if restart.get("problem"):
        return ESCALATE, "the Redis restart did not restore service: " + restart["problem"], ""
    ping_ok = bool((facts.get("ping_gate") or {}).get("available"))
    backend_ok = (facts.get("backend_gate") or {}).get("healthy", not s.get("backend_health_url"))
    if ping_ok and backend_ok:
        return RECOVERED, "Redis restarted (%s -> %s), answers PING%s" % (
            restart.get("before"), restart.get("after"),
            " and the backend /health passed" if s.get("backend_health_url") else ""), ""
    if not ping_ok:
        return ESCALATE, "the Redis restart did not restore service: Redis (%s) does not answer PING within %s s%s" % (
            restart.get("after"), s.get("ping_gate_timeout"), _logs_after(restart)), ""
    return ESCALATE, "the Redis restart did not restore service: the backend /health did not pass within %s s" % (
        s.get("health_gate_timeout")), "RB-01"
