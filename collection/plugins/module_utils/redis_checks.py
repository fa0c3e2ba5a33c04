# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Turn what redis_diagnose collected into findings and signals. Pure functions (no I/O), so
the unit tests feed them recorded INFO fields directly.

Thresholds follow MEMORY DOCTOR and the Redis docs (see docs/diagnostics.md, "Redis (RB-03)").
A finding is {check, status, value, threshold, detail}; status is ok, warning, critical or skipped.
"""

from __future__ import annotations

from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_client import human_size

DEFAULT_THRESHOLDS = {
    "memory_usage_warn": 0.90,
    "memory_usage_crit": 0.98,
    "eviction_rate_max": 10.0,
    "hit_rate_min": 0.80,
    "hit_rate_min_lookups": 50,
    "allocator_frag_ratio": 1.1,
    "allocator_frag_bytes": 10 * 1024**2,
    "rss_overhead_ratio": 1.4,
    "rss_overhead_bytes": 10 * 1024**2,
    "peak_ratio": 1.5,
    "client_buffer_bytes": 200 * 1024,
    "clients_warn": 0.90,
    "clients_crit": 0.95,
    "bigkey_bytes": 1024**2,
    "idle_client_seconds": 3600,
    "slowlog_window_seconds": 900,
}

# MEMORY DOCTOR says nothing below 5 MB used: ratios over so little memory are noise.
SMALL_DATASET = 5 * 1024**2
EMPTY_DOCTOR = ("can't find any memory issue", "is empty or is using very little memory")


def finding(check: str, status: str, value: object, threshold: object, detail: str) -> dict:
    return {"check": check, "status": status, "value": value, "threshold": threshold, "detail": detail}


def _no_alarm(what: str, used: int, criteria: list) -> str:
    """Why a memory ratio did not alarm: MEMORY DOCTOR's small-dataset rule, or the criteria
    (held, label) that were not met."""
    if used < SMALL_DATASET:
        return (
            f"{what} is not judged: {human_size(used)} used is below {human_size(SMALL_DATASET)}, where "
            "MEMORY DOCTOR makes no judgement (ratios over so little memory are noise)"
        )
    unmet = [label for held, label in criteria if not held]
    return f"{what} is below the MEMORY DOCTOR criteria ({', '.join(unmet)} under the threshold)"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def memory_findings(info: dict, t: dict) -> list:
    used, maxmem = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    out = []
    if maxmem > 0:
        ratio = used / maxmem
        status = (
            "critical" if ratio >= t["memory_usage_crit"] else "warning" if ratio >= t["memory_usage_warn"] else "ok"
        )
        evicting_policy = str(info.get("maxmemory_policy", "noeviction")) != "noeviction"
        if evicting_policy and status == "critical":
            status = "warning"  # a full cache under an evicting policy is its steady state
        out.append(
            finding(
                "memory_usage",
                status,
                _pct(ratio),
                _pct(t["memory_usage_warn"]),
                f"used_memory {human_size(used)} of maxmemory {human_size(maxmem)}"
                + (
                    "; normal for a full cache under an evicting policy, the eviction rate says if it hurts"
                    if evicting_policy and status != "ok"
                    else ""
                ),
            )
        )
    else:
        out.append(
            finding(
                "memory_usage",
                "warning",
                human_size(used),
                "maxmemory > 0",
                "maxmemory is 0 (no limit): a cache can grow until the host runs out of memory",
            )
        )
    frag_ratio = float(info.get("allocator_frag_ratio", 1.0))
    frag_bytes = int(info.get("allocator_frag_bytes", 0))
    small = used < SMALL_DATASET
    real = not small and frag_ratio > t["allocator_frag_ratio"] and frag_bytes > t["allocator_frag_bytes"]
    out.append(
        finding(
            "fragmentation",
            "warning" if real else "ok",
            f"{frag_ratio:.2f} ({human_size(max(frag_bytes, 0))})",
            f"> {t['allocator_frag_ratio']} and > {human_size(t['allocator_frag_bytes'])}",
            "allocator fragmentation is real: active defragmentation would reclaim it"
            if real
            else _no_alarm("allocator fragmentation", used, [
                (frag_ratio > t["allocator_frag_ratio"], f"ratio {frag_ratio:.2f}"),
                (frag_bytes > t["allocator_frag_bytes"], f"{human_size(max(frag_bytes, 0))} fragmented"),
            ]),
        )
    )
    rss, rss_ratio = int(info.get("used_memory_rss", 0)), float(info.get("mem_fragmentation_ratio", 1.0))
    overhead = rss - used
    heavy = not small and rss_ratio > t["rss_overhead_ratio"] and overhead > t["rss_overhead_bytes"]
    out.append(
        finding(
            "rss_overhead",
            "warning" if heavy else "ok",
            f"{rss_ratio:.2f} ({human_size(max(overhead, 0))})",
            f"> {t['rss_overhead_ratio']} and > {human_size(t['rss_overhead_bytes'])}",
            f"RSS {human_size(rss)} for {human_size(used)} used"
            + (
                ": the process holds much more memory than its data"
                if heavy
                else " (a high ratio over a few MB of data is not an issue)"
            ),
        )
    )
    swapping = rss > 0 and used > rss and used > 10 * 1024**2
    out.append(
        finding(
            "swap",
            "critical" if swapping else "ok",
            human_size(rss),
            f">= used_memory {human_size(used)}",
            "used_memory exceeds RSS: part of the dataset is swapped out, latency will suffer"
            if swapping
            else "the dataset is resident in RAM",
        )
    )
    # MEMORY DOCTOR's peak criterion: peak over what is used now (both zmalloc figures), judged
    # only above MEMORY DOCTOR's small-dataset floor, like fragmentation.
    peak, allocated = int(info.get("used_memory_peak", 0)), used
    peak_ratio = _peak_ratio(info)
    held = not small and peak_ratio > t["peak_ratio"]
    out.append(
        finding(
            "memory_peak",
            "warning" if held else "ok",
            f"{peak_ratio:.2f}",
            f"> {t['peak_ratio']}",
            f"peak {human_size(peak)} vs {human_size(allocated)} allocated now"
            + (
                ": memory may be held since a past peak (MEMORY PURGE can release it)"
                if held
                else "; " + _no_alarm("the peak", used, [(peak_ratio > t["peak_ratio"], f"ratio {peak_ratio:.2f}")])
            ),
        )
    )
    clients = max(int(info.get("connected_clients", 0)), 1)
    buffers = int(info.get("mem_clients_normal", 0))
    avg = buffers / clients
    out.append(
        finding(
            "client_buffers",
            "warning" if avg > t["client_buffer_bytes"] else "ok",
            human_size(int(avg)),
            human_size(t["client_buffer_bytes"]),
            f"{human_size(buffers)} of client buffers over {clients} clients",
        )
    )
    return out


def policy_finding(info: dict, keyspace: dict, oom_errors: int, t: dict) -> dict:
    policy = str(info.get("maxmemory_policy", "noeviction"))
    maxmem, used = int(info.get("maxmemory", 0)), int(info.get("used_memory", 0))
    keys, expires = keyspace["keys"], keyspace["expires"]
    if policy == "noeviction" and maxmem > 0:
        full = used >= maxmem * t["memory_usage_crit"] or oom_errors > 0
        return finding(
            "eviction_policy",
            "critical" if full else "warning",
            policy,
            "allkeys-lru (cache)",
            (
                "maxmemory reached under noeviction: writes fail with OOM errors"
                if full
                else "noeviction on a cache: writes will fail with OOM once maxmemory is reached"
            )
            + (f" ({oom_errors} OOM errors)" if oom_errors else ""),
        )
    if policy.startswith("volatile-") and keys > 0 and expires < keys:
        no_ttl = keys - expires
        status = "warning" if maxmem and used >= maxmem * 0.9 else "ok"
        return finding(
            "eviction_policy",
            status,
            policy,
            "keys with a TTL",
            f"{no_ttl} of {keys} keys carry no TTL and can never be evicted under {policy} "
            "(behaves like noeviction for them)",
        )
    return finding("eviction_policy", "ok", policy, "an evicting policy", f"{policy} evicts as a cache should")


def keyspace_totals(info: dict) -> dict:
    keys = expires = 0
    for name, db in info.items():
        if name.startswith("db") and isinstance(db, dict):
            keys += int(db.get("keys", 0))
            expires += int(db.get("expires", 0))
    return {"keys": keys, "expires": expires}


def rate_findings(rates: dict, t: dict, policy: str) -> list:
    out = [
        finding(
            "eviction_rate",
            "critical" if rates["evicted_per_s"] > t["eviction_rate_max"] else "ok",
            f"{rates['evicted_per_s']:.1f}/s",
            f"{t['eviction_rate_max']}/s",
            f"{rates['evicted']} keys evicted in {rates['window_s']:.1f} s under {policy}",
        )
    ]
    lookups = rates["hits"] + rates["misses"]
    if lookups < t["hit_rate_min_lookups"]:
        out.append(
            finding(
                "hit_rate",
                "skipped",
                f"{lookups} lookups",
                f">= {t['hit_rate_min_lookups']} lookups",
                f"too little traffic in {rates['window_s']:.1f} s to measure the hit rate",
            )
        )
    else:
        rate = rates["hits"] / lookups
        out.append(
            finding(
                "hit_rate",
                "warning" if rate < t["hit_rate_min"] else "ok",
                _pct(rate),
                _pct(t["hit_rate_min"]),
                f"{rates['hits']} hits, {rates['misses']} misses in {rates['window_s']:.1f} s",
            )
        )
    if rates["oom_errors"]:
        out.append(
            finding(
                "oom_errors",
                "critical",
                rates["oom_errors"],
                0,
                f"{rates['oom_errors']} commands refused with OOM in the window: writes are failing",
            )
        )
    return out


def client_findings(info: dict, rates: dict, t: dict, clients: dict) -> list:
    connected, maxclients = int(info.get("connected_clients", 0)), int(info.get("maxclients", 10000) or 10000)
    ratio = connected / maxclients
    status = "critical" if ratio >= t["clients_crit"] else "warning" if ratio >= t["clients_warn"] else "ok"
    oldest = clients.get("oldest_idle") or []
    detail = f"{connected} of maxclients {maxclients} connected"
    if oldest:
        detail += f"; longest idle: id {oldest[0]['id']} {oldest[0]['addr']} idle {oldest[0]['idle']} s"
    out = [finding("clients", status, connected, f"{_pct(t['clients_warn'])} of {maxclients}", detail)]
    rejected = rates["rejected"]
    total_rejected = int(info.get("rejected_connections", 0))
    out.append(
        finding(
            "rejected_connections",
            "critical" if rejected else "warning" if total_rejected else "ok",
            rejected,
            0,
            f"{rejected} connections rejected in the window, {total_rejected} since start",
        )
    )
    blocked = int(info.get("blocked_clients", 0))
    out.append(
        finding(
            "blocked_clients",
            "warning" if blocked else "ok",
            blocked,
            0,
            f"{blocked} clients blocked in BLPOP/XREAD/WAIT-style commands",
        )
    )
    idle = clients.get("idle_over_limit", 0)
    out.append(
        finding(
            "idle_clients",
            "warning" if idle and status != "ok" else "ok",
            idle,
            f"idle > {t['idle_client_seconds']} s",
            f"{idle} normal clients idle longer than the limit",
        )
    )
    return out


def persistence_findings(info: dict) -> list:
    out = []
    rdb_on = int(info.get("rdb_saves", 0)) > 0 or info.get("rdb_last_bgsave_time_sec", -1) != -1
    status = str(info.get("rdb_last_bgsave_status", "ok"))
    out.append(
        finding(
            "persistence_rdb",
            "ok" if status == "ok" else "critical",
            status,
            "ok",
            "last background save "
            + ("succeeded" if status == "ok" else "FAILED (check disk space and fork)")
            + ("" if rdb_on else " (no snapshot taken since start)"),
        )
    )
    if int(info.get("aof_enabled", 0)):
        write, rewrite = str(info.get("aof_last_write_status", "ok")), str(info.get("aof_last_bgrewrite_status", "ok"))
        bad = write != "ok" or rewrite != "ok"
        out.append(
            finding(
                "persistence_aof",
                "critical" if bad else "ok",
                f"write {write}, rewrite {rewrite}",
                "ok",
                "AOF writes are failing" if bad else "AOF writes and rewrites succeed",
            )
        )
    else:
        out.append(finding("persistence_aof", "ok", "disabled", "ok", "AOF is off (expected for a cache)"))
    fork_us = int(info.get("latest_fork_usec", 0))
    failing = status != "ok" and int(info.get("rdb_last_bgsave_time_sec", 0)) == -1
    out.append(
        finding(
            "fork",
            "critical" if failing else "warning" if fork_us > 1_000_000 else "ok",
            f"{fork_us / 1000:.1f} ms",
            "1000 ms",
            "the last background save failed without running: fork is failing (memory overcommit?)"
            if failing
            else f"latest fork took {fork_us / 1000:.1f} ms",
        )
    )
    return out


def replication_finding(info: dict) -> dict:
    role = str(info.get("role", "master"))
    if role == "slave":
        link = str(info.get("master_link_status", "down"))
        return finding(
            "replication",
            "ok" if link == "up" else "critical",
            f"replica, link {link}",
            "link up",
            f"replica of {info.get('master_host')}:{info.get('master_port')}; tuning must go to the master",
        )
    return finding("replication", "ok", "master", "-", f"master with {info.get('connected_slaves', 0)} replicas")


def doctor_status(text: str) -> str:
    return "ok" if any(marker in text for marker in EMPTY_DOCTOR) else "warning"


def bigkeys_finding(bigkeys: dict, t: dict) -> dict:
    top = bigkeys.get("top") or []
    biggest = top[0]["bytes"] if top else 0
    if bigkeys.get("denied"):
        return finding(
            "big_keys",
            "warning",
            "not measured",
            human_size(t["bigkey_bytes"]),
            f"this user may not run {bigkeys['denied_command']}: big keys were not measured "
            f"(grant {bigkeys['denied']})",
        )
    if bigkeys.get("error"):
        return finding("big_keys", "skipped", "-", human_size(t["bigkey_bytes"]), f"not sampled: {bigkeys['error']}")
    scope = f"{bigkeys['sampled']} keys sampled by SCAN in {bigkeys['elapsed_ms']:.0f} ms" + (
        "" if bigkeys.get("complete") else " (time budget reached, partial sample)"
    )
    names = ", ".join(f"{k['key'][:60]} ({human_size(k['bytes'])}, {k['type']})" for k in top[:3])
    return finding(
        "big_keys",
        "warning" if biggest >= t["bigkey_bytes"] else "ok",
        human_size(biggest),
        human_size(t["bigkey_bytes"]),
        scope + (f"; largest: {names}" if names else ""),
    )


def slowlog_finding(entries: list, now: float, t: dict, slower_than: object) -> dict:
    """Slow commands logged within the window (entry timestamps against the server's clock):
    an old entry is history, not a warning that stays forever."""
    window = int(t["slowlog_window_seconds"])
    recent = [e for e in entries if now - int(e.get("timestamp", 0)) <= window]
    threshold = f"{slower_than} us, last {window} s"
    if recent:
        worst = sorted(recent, key=lambda e: -e["duration_us"])[:3]
        return finding(
            "slowlog",
            "warning",
            len(recent),
            threshold,
            f"{len(recent)} slow commands in the last {window} s: "
            + "; ".join(f"{e['command']} ({e['arity']} args) {e['duration_us']} us" for e in worst),
        )
    if entries:
        newest = max(int(e.get("timestamp", 0)) for e in entries)
        return finding(
            "slowlog",
            "ok",
            0,
            threshold,
            f"no slow command in the last {window} s ({len(entries)} older entries, the newest "
            f"{int(now - newest)} s old)",
        )
    return finding("slowlog", "ok", 0, threshold, "no slow commands logged")


def acl_findings(denied: list) -> list:
    """One finding per command this ACL user may not run: what it cost and the rule to grant."""
    return [
        finding(
            "acl:" + d["command"].lower().replace(" ", "_"),
            "warning",
            "NOPERM",
            d["rule"] or d["command"],
            f"this user may not run {d['command']}: {d['effect']}; grant {d['rule'] or d['command']}",
        )
        for d in denied
    ]


def signals(info: dict, rates: dict, t: dict, bigkeys: dict, keyspace: dict) -> dict:
    """Booleans the role turns into wanted settings; each names the criterion that holds."""
    used, maxmem = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    policy = str(info.get("maxmemory_policy", "noeviction"))
    top = bigkeys.get("top") or []
    evicting = rates["evicted_per_s"] > t["eviction_rate_max"]
    connected, maxclients = int(info.get("connected_clients", 0)), int(info.get("maxclients", 10000) or 10000)
    return {
        "noeviction_cache": policy == "noeviction" and maxmem > 0,
        "oom": policy == "noeviction"
        and maxmem > 0
        and (used >= maxmem * t["memory_usage_crit"] or rates["oom_errors"] > 0),
        "volatile_without_ttl": policy.startswith("volatile-")
        and keyspace["keys"] > keyspace["expires"]
        and maxmem > 0
        and used >= maxmem * t["memory_usage_warn"],
        "evicting": evicting,
        "memory_pressure": maxmem > 0 and used >= maxmem * t["memory_usage_warn"],
        "maxmemory_unset": maxmem == 0,
        "fragmentation": used >= SMALL_DATASET
        and float(info.get("allocator_frag_ratio", 1.0)) > t["allocator_frag_ratio"]
        and int(info.get("allocator_frag_bytes", 0)) > t["allocator_frag_bytes"],
        "peak_purge": used >= SMALL_DATASET
        and _peak_ratio(info) > t["peak_ratio"]
        and float(info.get("mem_fragmentation_ratio", 1.0)) > t["rss_overhead_ratio"]
        and int(info.get("used_memory_rss", 0)) - used > t["rss_overhead_bytes"],
        "bigkeys_evicted": rates["evicted"] > 0 and bool(top) and top[0]["bytes"] >= t["bigkey_bytes"],
        "clients_saturated": connected >= maxclients * t["clients_crit"],
        "low_hit_rate": (rates["hits"] + rates["misses"]) >= t["hit_rate_min_lookups"]
        and rates["hits"] / (rates["hits"] + rates["misses"]) < t["hit_rate_min"],
        "jemalloc": str(info.get("mem_allocator", "")).startswith("jemalloc"),
        "replica": str(info.get("role", "master")) == "slave",
    }


def _peak_ratio(info: dict) -> float:
    allocated = int(info.get("used_memory", 0) or 0)
    return int(info.get("used_memory_peak", 0)) / allocated if allocated else 1.0
