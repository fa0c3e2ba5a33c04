# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-03's decisions, as pure functions over the modules' structured results.

- ``plan``: what may be done about a live Redis (redis_diagnose returns it as ``candidates``):
  the settings to set, each with its reason, MEMORY PURGE, idle clients to kill, and what only a
  human can do (recommendations).
- ``assess``: what is wrong (the ``problem``) from the diagnosis, the service manager's status
  (only read when Redis does not answer) and whether tuning is enabled.
- ``verdict``: what happened, from the recovery's results (tuning, or budget -> restart -> PING
  gate -> backend gate) and the re-measure; with the actions and verification rows the report
  shows.

No Ansible import, no I/O: the roles reach them through the ``pivotal.flow_ops`` cache filters,
and the unit tests feed them recorded results.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils.outcome import (
    ESCALATE,
    HEALTHY,
    RECOVERED,
    REFUSED,
    verdict as _verdict,
)

MIB = 1024 * 1024
# Criticals the plan acts on (or that a classification already names): the rest go to a human.
ACTED_ON = ("eviction_policy", "oom_errors", "memory_usage", "eviction_rate", "connectivity")
PLAN_DEFAULTS = {
    "eviction_policy": "allkeys-lru",
    "maxmemory_ceiling": 0,
    "maxmemory_ceiling_pct": 50,
    "maxmemory_step_pct": 25,
    "kill_idle_clients": False,
    "hit_rate_min": 0.8,
}


def human_size(num):
    value = int(num)
    for unit, size in (("gb", 1024 ** 3), ("mb", MIB)):
        if value >= size and value % size == 0:
            return "%d%s" % (value // size, unit)
    for unit, size in (("gb", 1024 ** 3), ("mb", MIB), ("kb", 1024)):
        if value >= size:
            return "%.1f%s" % (value / size, unit)
    return "%db" % value


def _finding(diag, check):
    for item in diag.get("findings") or []:
        if item.get("check") == check:
            return item
    return {}


def ceiling(options, host_memory):
    """The largest maxmemory the runbook may set: the fixed ceiling, else a share of the host."""
    fixed = int(options.get("maxmemory_ceiling") or 0)
    return fixed if fixed > 0 else int(host_memory or 0) * int(options["maxmemory_ceiling_pct"]) // 100


def raise_to(maxmemory, step_pct, top):
    """maxmemory raised by a step, rounded up to whole MiB, never above the ceiling (rounded down)."""
    stepped = -(-int(maxmemory) * (100 + int(step_pct)) // (100 * MIB)) * MIB
    return min(stepped, int(top) // MIB * MIB)


def plan(diag, options=None):
    """What may be done about a live Redis: {settings, reasons, purge, kill_idle_clients,
    recommendations, maxmemory_ceiling}. ``diag`` is redis_diagnose's result; an unavailable
    Redis has no plan (its problem is classified by ``assess``)."""
    opts = dict(PLAN_DEFAULTS, **(options or {}))
    sig = diag.get("signals") or {}
    cfg = diag.get("config") or {}
    maxmem = int((diag.get("memory") or {}).get("maxmemory") or 0)
    top = ceiling(opts, diag.get("host_memory_bytes"))
    target = raise_to(maxmem, opts["maxmemory_step_pct"], top)
    policy = opts["eviction_policy"]
    settings, reasons, recs = {}, {}, []

    def want(name, value, why):
        settings[name] = str(value)
        reasons[name] = why

    if (sig.get("noeviction_cache") or sig.get("volatile_without_ttl")) and cfg.get("maxmemory-policy") != policy:
        want("maxmemory-policy", policy, "%s on a cache: writes fail with OOM at maxmemory (evicting policy wanted)"
             % cfg.get("maxmemory-policy", "noeviction"))
    if sig.get("evicting"):
        if target > maxmem:
            want("maxmemory", target, "evictions at %s/s: maxmemory +%s%% (ceiling %s)"
                 % ((diag.get("rates") or {}).get("evicted_per_s"), opts["maxmemory_step_pct"], human_size(top)))
        else:
            recs.append("evictions at %s/s with maxmemory already at the ceiling %s: a capacity change is needed"
                        % ((diag.get("rates") or {}).get("evicted_per_s"), human_size(top)))
    if sig.get("fragmentation"):
        if not sig.get("jemalloc", True):
            recs.append("real fragmentation but the allocator is not jemalloc: activedefrag is unavailable; "
                        "restart in a window")
        elif cfg.get("activedefrag", "no") != "yes":
            want("activedefrag", "yes", "real allocator fragmentation (MEMORY DOCTOR criteria)")
    if sig.get("bigkeys_evicted"):
        for name in ("lazyfree-lazy-eviction", "lazyfree-lazy-expire"):
            if cfg.get(name, "no") != "yes":
                want(name, "yes", "big keys are being evicted: free them in the background")
    if sig.get("maxmemory_unset"):
        recs.append("maxmemory is 0 (unlimited): set it below the ceiling %s with an evicting policy (%s) "
                    "in the deployment config" % (human_size(top), policy))
    if sig.get("low_hit_rate") and not sig.get("evicting"):
        recs.append("hit rate %s is below %.1f%% with no evictions to blame: the misses are keys that were never "
                    "cached or expired early; check the backend cache keys and TTLs"
                    % (_finding(diag, "hit_rate").get("value", "?"), float(opts["hit_rate_min"]) * 100))
    kill_idle = bool(sig.get("clients_saturated")) and bool(opts["kill_idle_clients"])
    if sig.get("clients_saturated") and not opts["kill_idle_clients"]:
        clients = diag.get("clients") or {}
        recs.append("clients near maxclients (%s of %s): find the client leaking connections (CLIENT LIST), or set "
                    "cache_kill_idle_clients to drop idle ones" % (clients.get("connected"), clients.get("maxclients")))
    recs += [f["detail"] for f in diag.get("findings") or []
             if f.get("status") == "critical" and f.get("check") not in ACTED_ON]
    return {
        "settings": settings,
        "reasons": reasons,
        "purge": bool(sig.get("peak_purge")),
        "kill_idle_clients": kill_idle,
        "recommendations": recs,
        "maxmemory_ceiling": top,
    }


def classify_unavailable(state, service):
    """Why Redis does not answer, from its connection state and (for the rest) its service manager."""
    named = {"max_clients": "max_clients", "auth_failed": "auth", "noauth": "auth",
             "auth_not_required": "auth_not_required", "loading": "loading"}
    if state in named:
        return named[state]
    if not (service or {}).get("reachable"):
        return "manager_unreachable"
    if not service.get("running"):
        return "down"
    return "unresponsive"


def assess(diag, service=None, tuning_enabled=True):
    """What is wrong and what the recovery phase may do: {problem, settings, purge,
    kill_idle_clients, recommendations, maxmemory_ceiling, plan, findings}.

    problem: '' (nothing to do), 'tuning', or why Redis is unavailable (classify_unavailable).
    """
    service = service or {}
    empty = {"settings": {}, "reasons": {}, "purge": False, "kill_idle_clients": False,
             "recommendations": [], "maxmemory_ceiling": 0}
    if not diag.get("available"):
        finding = {"check": "service_status", "status": "ok" if service.get("running") else "critical",
                   "value": service.get("state", "unknown"), "threshold": "running",
                   "detail": service.get("detail", "")}
        problem = classify_unavailable(diag.get("state"), service)
        return dict(empty, problem=problem, plan=["restart Redis (%s)" % diag.get("state")] if problem == "down" else [],
                    findings=[finding])
    cand = dict(empty, **(diag.get("candidates") or plan(diag)))
    sig = diag.get("signals") or {}
    blocked = []
    if not diag.get("config_access", False):
        blocked.append("this user may not run CONFIG: tuning needs a Redis user with CONFIG SET/REWRITE "
                       "(grant +config|get +config|set +config|rewrite)")
    if sig.get("replica"):
        blocked.append("this is a replica: apply the tuning on the master")
    if not tuning_enabled:
        blocked.append("tuning is disabled (cache_tuning_enabled false): would set %s"
                       % ", ".join(sorted(cand["settings"])))
    work = bool(cand["settings"]) or cand["purge"] or cand["kill_idle_clients"]
    tunable = not blocked
    recs = list(cand["recommendations"]) + (blocked if cand["settings"] else [])
    steps = ["set %s" % name for name in sorted(cand["settings"])] + (["run MEMORY PURGE"] if cand["purge"] else []) \
        + (["kill idle clients"] if cand["kill_idle_clients"] else [])
    return {
        "problem": "tuning" if work and tunable else "",
        "settings": cand["settings"] if tunable else {},
        "reasons": cand["reasons"],
        "purge": cand["purge"] and tunable,
        "kill_idle_clients": cand["kill_idle_clients"] and tunable,
        "recommendations": recs,
        "maxmemory_ceiling": int(cand["maxmemory_ceiling"]),
        "plan": steps if tunable else [],
        "findings": [],
    }


# --- verdict ---------------------------------------------------------------------------------

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
    hit = _finding(diag, "hit_rate")
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


def _restart_rows(facts):
    restart, s = facts.get("restart") or {}, facts.get("settings") or {}
    budget = restart.get("budget") or {}
    actions, checks = [], []
    if "allowed" in budget:
        override = " (override: %s)" % s.get("override_reason", "") if budget.get("overridden") else ""
        actions.append({"action": "restart_budget", "target": budget.get("key", s.get("budget_key", "")),
                        "result": "%s%s" % (budget.get("summary", ""), override)})
    if _true(restart.get("restarted")):
        pid = restart.get("pid_after")
        pid = "" if str(pid) in ("None", "none", "0") else pid
        after = "running" if _true(facts.get("check_mode")) else "running, %s" % (
            ("pid %s" % pid if restart.get("manager") == "supervisord" else "container %s" % pid) if pid
            else "no process id reported")
        actions.append({"action": "restart", "target": restart.get("target", ""),
                        "before": restart.get("state_before") or "unknown", "after": after,
                        "result": "would restart (check mode)" if _true(facts.get("check_mode"))
                        else restart.get("detail") or "restarted"})
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


def verdict(facts):
    """RB-03's outcome: {outcome, reason, next_runbook, actions, verification, findings}.

    ``facts`` holds plain values: mode, check_mode, problem, state, diag_msg, service_msg, diag,
    assessment, findings (so far), tuning (redis_tune's result, recover or maintain), tuned, after
    (the re-measure), drift (redis_tune check-mode actions), restart {budget, restarted,
    pid_after, manager, state_before, detail, target}, ping_gate, backend_gate and settings
    (thresholds, timeouts, names the reason quotes).
    """
    facts = dict(facts)
    maint, tune = facts.get("maint_apply") or {}, facts.get("tune") or {}
    if "tuning" not in facts:
        facts["tuning"] = maint if maint.get("changed") else tune
        facts["tuned"] = bool(maint.get("changed") or tune.get("changed"))
    mode, check, problem = facts.get("mode", "recover"), _true(facts.get("check_mode")), facts.get("problem", "")
    s = facts.get("settings") or {}
    recs = "; ".join(((facts.get("assessment") or {}).get("recommendations")) or [])
    also = "; also needs a human: %s" % recs if recs else ""
    drift = facts.get("drift") or []
    tuned = _true(facts.get("tuned"))
    actions, checks = _restart_rows(facts)
    findings = [{"check": "config_drift:%s" % d["target"], "status": "warning", "value": d.get("before"),
                 "threshold": d.get("after"),
                 "detail": "%s is %s, intended %s%s" % (d["target"], d.get("before"), d.get("after"),
                                                       " (re-applied)" if tuned else "")} for d in drift]

    def out(outcome, reason, next_runbook="", extra_actions=(), extra_checks=()):
        result = _verdict(outcome, reason, next_runbook)
        result.update(actions=actions + list((facts.get("tuning") or {}).get("actions") or []) + list(extra_actions),
                      verification=checks + list(extra_checks), findings=findings)
        return result

    if problem not in ("", "tuning", "down"):
        return out(ESCALATE, _unavailable(problem, facts))
    if drift and not tuned:
        how = " (check mode: nothing re-applied)" if check else " (set cache_maintenance_apply_intended to re-apply it)"
        return out(ESCALATE, "config drift from the intended config: %s%s%s"
                   % (", ".join(d["target"] for d in drift), how, also))
    if problem == "" and recs:
        return out(ESCALATE, "needs a human: %s" % recs)
    if problem == "" and not tuned:
        return out(HEALTHY, _healthy_reason(facts))
    if mode == "diagnose" or (mode == "maintain" and not tuned):
        what = "diagnose only" if mode == "diagnose" else "maintenance found an incident"
        return out(ESCALATE, "%s: recovery would %s%s" % (what, _plan_text(facts), also),
                   "RB-03" if mode == "maintain" else "")
    budget = (facts.get("restart") or {}).get("budget") or {}
    if "allowed" in budget and not budget["allowed"]:
        if int(budget.get("max_restarts") or 0) == 0:
            why = "automatic restarts are disabled (restart budget 0)"
        else:
            why = "restart budget spent: %s of %s restarts used in the last %s min (next slot in %s s)" % (
                budget.get("used"), budget.get("max_restarts"), int(s.get("budget_window", 0)) // 60,
                int(budget.get("resets_in_s") or 0))
        return out(REFUSED, why + "; a human may override it with --override-budget")
    if check:
        if problem == "down":
            would = "restart Redis"
        else:
            would = ", ".join("%s %s -> %s" % (a.get("target"), a.get("before", "?"), a.get("after", "?"))
                              if a.get("action") == "config_set" else a.get("action", "?")
                              for a in (facts.get("tuning") or {}).get("actions") or []) or _plan_text(facts)
        return out(ESCALATE, "check mode: recovery would %s; nothing was changed" % would)
    if problem == "down":
        ping_ok = bool((facts.get("ping_gate") or {}).get("available"))
        gate = facts.get("backend_gate") or {}
        backend_ok = gate.get("healthy", not s.get("backend_health_url"))
        if _true((facts.get("restart") or {}).get("restarted")) and ping_ok and backend_ok:
            return out(RECOVERED, "Redis restarted, answers PING" + (
                " and the backend /health passed" if s.get("backend_health_url") else ""))
        return out(ESCALATE, "the Redis restart did not restore service: " + (
            "Redis does not answer PING" if not ping_ok
            else "the backend /health did not pass within %s s" % s.get("health_gate_timeout")),
            "RB-01" if ping_ok else "")
    applied, rows, failures, notes = _tuning(facts)
    names = ", ".join(applied)
    checks.extend(rows)
    note = " (%s)" % "; ".join(notes) if notes else ""
    if failures:
        return out(ESCALATE, "tuning applied (%s) but %s%s%s" % (names, "; ".join(failures), note, also))
    if recs:
        return out(ESCALATE, "tuning applied and verified (%s)%s; still needs a human: %s" % (names, note, recs))
    done = "intended config re-applied" if mode == "maintain" else "tuning applied"
    return out(RECOVERED, "%s (%s), verified and persisted to %s%s" % (
        done, names, (facts.get("tuning") or {}).get("config_file") or "?", note))
