# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-03's decisions, as pure functions over the modules' structured results.

- ``plan``: what may be done about a live Redis (redis_diagnose returns it as ``candidates``):
  the settings to set, each with its reason, MEMORY PURGE, idle clients to kill, and what only a
  human can do (recommendations).
- ``assess``: what is wrong (the ``problem``) from the diagnosis, the service manager's status
  (only read when Redis does not answer) and whether tuning is enabled.
- ``recovery``: what the recover phase may change (restart a down Redis, or tune a live one) and
  the reason the restart budget records.
- ``verdict`` (module_utils/cache_verdict.py): what happened.

No Ansible import, no I/O: the roles reach them through the ``pivotal.flow_ops`` cache filters,
and the unit tests feed them recorded results.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

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


def finding_of(diag, check):
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
    oom = int((diag.get("rates") or {}).get("oom_errors") or 0)
    if oom and not (sig.get("oom") or sig.get("volatile_without_ttl")):
        # Refused writes are unambiguous: no threshold to wait for, and no policy change explains
        # them (the policy already evicts): nothing is left to evict below maxmemory.
        memory = diag.get("memory") or {}
        recs.append("%s writes refused with OOM in the window under %s: nothing is left to evict (used_memory %s, "
                    "maxmemory %s); raise maxmemory or find what holds the memory (client buffers, scripts)"
                    % (oom, cfg.get("maxmemory-policy", memory.get("maxmemory_policy", "?")),
                       human_size(memory.get("used_memory") or 0), human_size(maxmem)))
    if sig.get("maxmemory_unset"):
        recs.append("maxmemory is 0 (unlimited): set it below the ceiling %s with an evicting policy (%s) "
                    "in the deployment config" % (human_size(top), policy))
    if sig.get("low_hit_rate") and not sig.get("evicting"):
        recs.append("hit rate %s is below %.1f%% with no evictions to blame: the misses are keys that were never "
                    "cached or expired early; check the backend cache keys and TTLs"
                    % (finding_of(diag, "hit_rate").get("value", "?"), float(opts["hit_rate_min"]) * 100))
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
             "auth_not_required": "auth_not_required", "loading": "loading", "not_permitted": "acl", "tls_failed": "tls"}
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


def _true(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def recovery(mode, problem, state, override=False, override_reason=""):
    """What the recover phase may change: {restart, tune, restart_reason}. Only recover mode
    changes anything: a down Redis is restarted (under the restart budget, whose record says why,
    and the override's reason when it is overridden), a live one gets the safe tuning."""
    reason = "RB-03 redis %s" % state
    if _true(override):
        reason += ", override: %s" % override_reason
    return {
        "restart": mode == "recover" and problem == "down",
        "tune": mode == "recover" and problem == "tuning",
        "restart_reason": reason,
    }
