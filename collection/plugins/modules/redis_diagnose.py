#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_diagnose
short_description: Diagnose a Redis cache the way MEMORY DOCTOR, LATENCY DOCTOR, --bigkeys and an SRE would
version_added: 0.2.0
description:
  - Opens ONE connection (AUTH with ACL user and password, or password only) and reads C(INFO)
    twice over a sampling window, so eviction, hit and rejection rates are rates over the window,
    not totals since boot.
  - Reads C(CONFIG GET) (a restricted ACL user without C(CONFIG) gets a finding saying so and the
    module works from C(INFO)), quotes C(MEMORY DOCTOR), runs C(LATENCY DOCTOR) when the latency
    monitor is on, summarises C(SLOWLOG GET) (command name and arity only, never argument values),
    C(CLIENT LIST) (oldest idle clients) and samples big keys with C(SCAN) and C(MEMORY USAGE)
    under a time budget, inside the sampling window. It never sends C(KEYS), C(FLUSHALL),
    C(FLUSHDB) or C(DEBUG).
  - Optionally reads the backend's C(pivotal_cache_hit_rate) from Prometheus.
  - Read-only. It does not fail when Redis is unavailable; it returns C(available=false) with the
    reason classified (refused, timeout, auth_failed, noauth, auth_not_required, loading,
    max_clients, busy, error).
seealso:
  - module: pivotal.flow_ops.redis_tune
    description: Applies the settings this module proposes.
  - module: pivotal.flow_ops.redis_ping
    description: Whether Redis answers, and why not.
  - module: community.general.redis_info
    description: The raw C(INFO) of a Redis server.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pivotal.flow_ops.action_groups.redis_group
  - pivotal.flow_ops.redis
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  sample_seconds:
    description: Sampling window between the two C(INFO) reads; rates are deltas over it.
    type: float
    default: 3
  bigkeys_budget_seconds:
    description: Time budget of the C(SCAN) + C(MEMORY USAGE) big-key sampling; 0 disables it.
    type: float
    default: 1.0
  bigkeys_top:
    description: Largest keys returned.
    type: int
    default: 5
  slowlog_top:
    description: Slow log entries returned (the slowest of the recent ones).
    type: int
    default: 5
  clients_top:
    description: Longest-idle clients returned.
    type: int
    default: 5
  thresholds:
    description:
      - Overrides of the default thresholds (keys memory_usage_warn, memory_usage_crit,
        eviction_rate_max, hit_rate_min, hit_rate_min_lookups, allocator_frag_ratio,
        allocator_frag_bytes, rss_overhead_ratio, rss_overhead_bytes, peak_ratio,
        client_buffer_bytes, clients_warn, clients_crit, bigkey_bytes, idle_client_seconds,
        slowlog_window_seconds).
    type: dict
    default: {}
  prometheus_url:
    description: Prometheus base URL; empty skips the backend hit-rate query.
    type: str
    default: ""
  prometheus_query:
    description: PromQL query returning the backend's cache hit rate (0..1).
    type: str
    default: pivotal_cache_hit_rate{cache_type="redis"}
  prometheus_timeout:
    description: Seconds for the Prometheus query.
    type: float
    default: 2
  eviction_policy:
    description: Policy the plan sets on a cache found under C(noeviction) (or C(volatile-*) without TTLs).
    type: str
    default: allkeys-lru
  maxmemory_ceiling:
    description: Largest C(maxmemory) in bytes the plan may set; 0 derives it from I(maxmemory_ceiling_pct).
    type: int
    default: 0
  maxmemory_ceiling_pct:
    description: Share of the host memory (or cgroup limit) C(maxmemory) may reach when I(maxmemory_ceiling) is 0.
    type: int
    default: 50
  maxmemory_step_pct:
    description: Percentage by which the plan raises C(maxmemory) when evictions exceed the threshold.
    type: int
    default: 25
  kill_idle_clients:
    description: The plan kills idle normal clients when clients are saturated; false only recommends it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Investigate the Redis cache
  pivotal.flow_ops.redis_diagnose:
    host: cache-01.prod.internal
    user: pflow_monitor
    password: "{{ vault_redis_monitor_password }}"
    sample_seconds: 3
    thresholds:
      eviction_rate_max: 50
  register: diag
"""

RETURN = r"""
available:
  description: Redis accepted the connection, AUTH and PING.
  returned: always
  type: bool
state:
  description: >-
    C(ok), C(refused), C(timeout), C(auth_failed), C(noauth), C(auth_not_required), C(loading),
    C(max_clients), C(busy), C(not_permitted) (this ACL user may not run INFO) or C(error).
  returned: always
  type: str
msg:
  description: One line saying what happened.
  returned: always
  type: str
findings:
  description: List of {check, status, value, threshold, detail}; status ok, warning, critical or skipped.
  returned: always
  type: list
  elements: dict
signals:
  description: Booleans the cache role turns into wanted settings (oom, evicting, fragmentation, ...).
  returned: when available
  type: dict
memory:
  description: used, maxmemory, rss, peak, policy, allocator, fragmentation figures.
  returned: when available
  type: dict
config:
  description: Settings read with CONFIG GET (or from INFO when CONFIG is not permitted).
  returned: when available
  type: dict
config_access:
  description: CONFIG GET was permitted.
  returned: when available
  type: bool
config_file:
  description: Path of the config file the server started with; empty when none (CONFIG REWRITE impossible).
  returned: when available
  type: str
rates:
  description: Window length and deltas (evicted, hits, misses, rejected, oom_errors) with per-second rates.
  returned: when available
  type: dict
bigkeys:
  description: sampled, complete, elapsed_ms and top (key, type, bytes, ttl) of the SCAN sampling.
  returned: when available
  type: dict
clients:
  description: connected, maxclients, idle_over_limit and oldest_idle (id, addr, name, age, idle, flags, cmd).
  returned: when available
  type: dict
persistence:
  description: rdb/aof status fields from INFO persistence.
  returned: when available
  type: dict
slowlog:
  description: >-
    Slowest logged entries (id, timestamp, age_s, duration_us, command, arity, client_name); no
    argument values. The C(slowlog) finding counts only those within C(slowlog_window_seconds).
  returned: when available
  type: list
  elements: dict
acl_denied:
  description: Commands this ACL user may not run (command, rule to grant, effect); each is also a finding.
  returned: when available
  type: list
  elements: dict
candidates:
  description: >-
    The fix plan: settings (name to value for C(redis_tune)), reasons (name to why), purge
    (C(MEMORY PURGE)), kill_idle_clients, recommendations (what a human must do) and
    maxmemory_ceiling (bytes). Decided by module_utils/cache_decisions.plan.
  returned: when available
  type: dict
host_memory_bytes:
  description: Memory of the host (or its cgroup limit when lower), for the maxmemory ceiling.
  returned: always
  type: int
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_decisions
from ansible_collections.pivotal.flow_ops.plugins.module_utils import redis_checks as checks
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_client import (
    CONNECTION_OPTIONS,
    RedisReplyError,
    connect,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_collect import (
    doctors,
    host_memory_bytes,
    prometheus,
    rates,
    read_clients,
    read_config,
    read_info,
    read_slowlog,
    sample_bigkeys,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_resp import acl_rule


PLAN_OPTIONS = ("eviction_policy", "maxmemory_ceiling", "maxmemory_ceiling_pct", "maxmemory_step_pct", "kill_idle_clients")


def collect(conn, params: dict, t: dict) -> dict:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    denied: list = []
    first = read_info(conn)
    config, config_access = read_config(conn, first, denied)
    memory_doc, latency_doc = doctors(conn, config, denied)
    data = {
        "config": config,
        "config_access": config_access,
        "slowlog": read_slowlog(conn, params["slowlog_top"], denied),
        "clients": read_clients(conn, params["clients_top"], int(t["idle_client_seconds"]), denied),
        # The big-key scan runs inside the sampling window: it costs no extra time.
        "bigkeys": sample_bigkeys(conn, params["bigkeys_budget_seconds"], params["bigkeys_top"], denied),
        "doctors": [memory_doc, latency_doc],
        "denied": denied,
    }
    left = params["sample_seconds"] - (time.monotonic() - started)
    if left > 0:
        time.sleep(left)
    second = read_info(conn)
    bigkeys = data["bigkeys"]
    own_hits = bigkeys.get("sampled", 0) + 2 * len(bigkeys.get("top", []))
    data["rates"] = rates(first, second, time.monotonic() - started, bigkeys.get("lookups", 0), own_hits)
    data["info"] = {**first, **second}
    return data


def assemble(data: dict, params: dict, t: dict) -> dict:
    info, config = data["info"], data["config"]
    keyspace = checks.keyspace_totals(info)
    rates_ = data["rates"]
    config_file = str(info.get("config_file", "") or "")
    findings = [
        checks.finding(
            "connectivity",
            "ok",
            "ok",
            "PING",
            f"Redis {info.get('redis_version', '?')} answered "
            f"(uptime {info.get('uptime_in_seconds', 0)} s, {keyspace['keys']} keys, "
            f"{keyspace['expires']} with a TTL)",
        )
    ]
    findings.append(
        checks.finding(
            "config_access",
            "ok" if data["config_access"] else "warning",
            "CONFIG GET" if data["config_access"] else "denied",
            "CONFIG GET",
            "settings read with CONFIG GET"
            if data["config_access"]
            else "this user may not run CONFIG: settings read from INFO; tuning needs a user with CONFIG "
            "(grant +config|get +config|set +config|rewrite)",
        )
    )
    findings.append(
        checks.finding(
            "config_file",
            "ok" if config_file else "warning",
            config_file or "none",
            "a config file",
            "CONFIG REWRITE can persist changes"
            if config_file
            else "the server started without a config file: runtime changes cannot be persisted",
        )
    )
    findings += checks.memory_findings(info, t)
    findings.append(checks.policy_finding(info, keyspace, rates_["oom_errors"], t))
    findings += checks.rate_findings(rates_, t, str(info.get("maxmemory_policy", "")))
    findings.append(prometheus(params))
    findings += checks.client_findings(info, rates_, t, data["clients"])
    findings += data["doctors"]
    slow = data["slowlog"]
    now = int(info.get("server_time_usec", 0) or 0) / 1e6 or time.time()
    findings.append(checks.slowlog_finding(slow, now, t, config.get("slowlog-log-slower-than", "10000")))
    findings.append(checks.bigkeys_finding(data["bigkeys"], t))
    findings += checks.persistence_findings(info)
    findings.append(checks.replication_finding(info))
    # CONFIG GET has its own finding (config_access); every other refusal gets one here.
    findings += checks.acl_findings([d for d in data["denied"] if d["command"] != "CONFIG GET"])
    memory = {
        k: info.get(k)
        for k in (
            "used_memory",
            "maxmemory",
            "maxmemory_policy",
            "used_memory_rss",
            "used_memory_peak",
            "mem_fragmentation_ratio",
            "allocator_frag_ratio",
            "allocator_frag_bytes",
            "mem_allocator",
            "mem_clients_normal",
        )
    }
    persistence = {
        k: info.get(k)
        for k in (
            "rdb_last_bgsave_status",
            "aof_enabled",
            "aof_last_write_status",
            "aof_last_bgrewrite_status",
            "latest_fork_usec",
            "loading",
        )
    }
    clients = {
        **data["clients"],
        "connected": info.get("connected_clients"),
        "maxclients": info.get("maxclients"),
        "blocked": info.get("blocked_clients"),
        "rejected_total": info.get("rejected_connections"),
    }
    return {
        "findings": findings,
        "memory": memory,
        "config": config,
        "config_access": data["config_access"],
        "config_file": config_file,
        "rates": rates_,
        "bigkeys": data["bigkeys"],
        "clients": clients,
        "persistence": persistence,
        "slowlog": [{**e, "age_s": int(now - int(e["timestamp"]))} for e in slow[: params["slowlog_top"]]],
        "acl_denied": data["denied"],
        "keyspace": keyspace,
        "role": info.get("role", "master"),
        "signals": checks.signals(info, rates_, t, data["bigkeys"], keyspace),
    }


def run_module(params: dict) -> dict:
    overrides = {k: float(v) for k, v in (params.get("thresholds") or {}).items()}
    t = {**checks.DEFAULT_THRESHOLDS, **{k: int(v) if v.is_integer() else v for k, v in overrides.items()}}
    result = {"host_memory_bytes": host_memory_bytes()}
    conn, connectivity = connect(params)
    if conn is None:
        reason = {
            "max_clients": "max number of clients reached: Redis refuses every new connection, this one included",
            "refused": "connection refused: Redis is not listening",
        }
        detail = reason.get(connectivity["state"], connectivity["msg"])
        finding = checks.finding("connectivity", "critical", connectivity["state"], "PING", detail)
        return {**result, **connectivity, "findings": [finding]}
    try:
        data = collect(conn, params, t)
    except (OSError, RedisReplyError) as exc:
        rule = acl_rule(exc)
        if rule:
            # Redis answered PING; this ACL user may not run INFO, without which nothing is judged.
            detail = f"this user may not run {rule[1:].replace('|', ' ').upper()}: nothing could be diagnosed; grant {rule}"
            return {
                **result,
                "available": False,
                "state": "not_permitted",
                "msg": f"Redis at {conn.where} answered PING, but {detail}",
                "findings": [checks.finding("connectivity", "critical", "not_permitted", rule, detail)],
            }
        return {
            **result,
            "available": False,
            "state": "error",
            "msg": f"Redis at {conn.where}: {exc}",
            "findings": [checks.finding("connectivity", "critical", "error", "PING", f"lost during diagnosis: {exc}")],
        }
    finally:
        conn.close()
    diagnosis = {**result, **connectivity, **assemble(data, params, t)}
    options = {name: params.get(name, cache_decisions.PLAN_DEFAULTS[name]) for name in PLAN_OPTIONS}
    diagnosis["candidates"] = cache_decisions.plan(diagnosis, {**options, "hit_rate_min": t["hit_rate_min"]})
    return diagnosis


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_OPTIONS,
            sample_seconds=dict(type="float", default=3.0),
            bigkeys_budget_seconds=dict(type="float", default=1.0, no_log=False),
            bigkeys_top=dict(type="int", default=5, no_log=False),
            slowlog_top=dict(type="int", default=5),
            clients_top=dict(type="int", default=5),
            thresholds=dict(type="dict", default={}),
            prometheus_url=dict(type="str", default=""),
            prometheus_query=dict(type="str", default='pivotal_cache_hit_rate{cache_type="redis"}'),
            prometheus_timeout=dict(type="float", default=2.0),
            eviction_policy=dict(type="str", default="allkeys-lru"),
            maxmemory_ceiling=dict(type="int", default=0),
            maxmemory_ceiling_pct=dict(type="int", default=50),
            maxmemory_step_pct=dict(type="int", default=25),
            kill_idle_clients=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be > 0")
    unknown = set(module.params["thresholds"]) - set(checks.DEFAULT_THRESHOLDS)
    if unknown:
        module.fail_json(msg=f"unknown thresholds: {', '.join(sorted(unknown))}")
    module.exit_json(changed=False, **run_module(module.params))


if __name__ == "__main__":
    main()
