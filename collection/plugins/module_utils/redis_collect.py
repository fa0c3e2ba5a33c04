# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What redis_diagnose reads over its one connection: INFO, CONFIG GET, the doctors, SLOWLOG,
CLIENT LIST, the time-boxed big-key sample, window rates and the optional Prometheus query.
Never KEYS, FLUSHALL, FLUSHDB or DEBUG (redis_client refuses them)."""

from __future__ import annotations

import heapq
import json
import time
import urllib.parse

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.pivotal.flow_ops.plugins.module_utils import redis_checks as checks
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_client import (
    RedisReplyError,
    config_pairs,
    parse_info_all,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_resp import acl_rule

INFO_SECTIONS = ("server", "clients", "memory", "stats", "persistence", "replication", "keyspace", "errorstats")
CONFIG_KEYS = (
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "maxclients",
    "activedefrag",
    "lazyfree-lazy-eviction",
    "lazyfree-lazy-expire",
    "latency-monitor-threshold",
    "slowlog-log-slower-than",
    "save",
    "appendonly",
)


def host_memory_bytes() -> int:
    total = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit.isdigit() and (total == 0 or int(limit) < total):
            total = int(limit)
    except OSError:
        pass
    return total


def read_info(conn) -> dict:  # type: ignore[no-untyped-def]
    reply = conn.try_call("INFO", *INFO_SECTIONS)
    if isinstance(reply, RedisReplyError):
        raise reply
    return parse_info_all(reply)


def read_config(conn, info: dict, denied: list) -> tuple[dict, bool]:  # type: ignore[no-untyped-def]
    reply = conn.try_call("CONFIG", "GET", *CONFIG_KEYS)
    if isinstance(reply, RedisReplyError):
        note_denied(denied, reply, "CONFIG GET", "settings were read from INFO, and tuning is impossible")
        # A restricted ACL user: INFO carries the settings that matter most.
        return {
            "maxmemory": str(info.get("maxmemory", 0)),
            "maxmemory-policy": str(info.get("maxmemory_policy", "")),
            "maxclients": str(info.get("maxclients", "")),
        }, False
    return config_pairs(reply), True


def read_slowlog(conn, top: int, denied: list) -> list:  # type: ignore[no-untyped-def]
    """Every logged entry (up to 128), slowest first; ``top`` is applied by the caller."""
    reply = conn.try_call("SLOWLOG", "GET", 128)
    if isinstance(reply, RedisReplyError):
        note_denied(denied, reply, "SLOWLOG GET", "slow commands were not read")
    if not isinstance(reply, list):
        return []
    entries = []
    for entry in reply:
        args = entry[3] if len(entry) > 3 and isinstance(entry[3], list) else []
        # Argument values can be secrets or personal data: command name and arity only.
        entries.append(
            {
                "id": entry[0],
                "timestamp": entry[1],
                "duration_us": entry[2],
                "command": str(args[0]).upper() if args else "?",
                "arity": len(args),
                "client_name": entry[5] if len(entry) > 5 else "",
            }
        )
    return sorted(entries, key=lambda e: -e["duration_us"])


def note_denied(denied: list, error: object, command: str, effect: str) -> bool:
    """Record a NOPERM refusal (the command, what it cost, the ACL rule to grant); False for
    any other reply, which the caller handles."""
    rule = acl_rule(error)
    if not rule:
        return False
    if all(d["command"] != command for d in denied):
        denied.append({"command": command, "rule": rule, "effect": effect})
    return True


def read_clients(conn, top: int, idle_limit: int, denied: list) -> dict:  # type: ignore[no-untyped-def]
    own = conn.try_call("CLIENT", "ID")
    if isinstance(own, RedisReplyError):
        note_denied(denied, own, "CLIENT ID", "this connection could not be told apart from the others")
        own = -1
    reply = conn.try_call("CLIENT", "LIST", "TYPE", "normal")
    if isinstance(reply, RedisReplyError):
        note_denied(denied, reply, "CLIENT LIST", "idle clients were not listed")
        return {"error": str(reply), "oldest_idle": [], "idle_over_limit": 0}
    clients = []
    for line in str(reply).splitlines():
        fields = dict(part.partition("=")[::2] for part in line.split(" ") if "=" in part)
        if not fields.get("id") or int(fields["id"]) == own:
            continue
        clients.append(
            {
                "id": int(fields["id"]),
                "addr": fields.get("addr", ""),
                "name": fields.get("name", ""),
                "age": int(fields.get("age", 0)),
                "idle": int(fields.get("idle", 0)),
                "flags": fields.get("flags", ""),
                "cmd": fields.get("cmd", ""),
            }
        )
    idle = [c for c in clients if c["idle"] > idle_limit]
    return {
        "normal": len(clients),
        "idle_over_limit": len(idle),
        "oldest_idle": heapq.nlargest(top, clients, key=lambda c: c["idle"]),
    }


def sample_bigkeys(conn, budget: float, top: int, denied: list) -> dict:  # type: ignore[no-untyped-def]
    """SCAN with COUNT, MEMORY USAGE pipelined per batch, until the keyspace or the budget ends.

    A command this ACL user may not run is recorded in ``denied`` (with the rule to grant) and
    the sample says "not measured": never an error object in the result, never a silent
    "0 keys sampled".
    """
    started = time.monotonic()
    cursor, sampled, lookups, heap = "0", 0, 0, []
    complete = budget <= 0
    while budget > 0 and time.monotonic() - started < budget:
        reply = conn.try_call("SCAN", cursor, "COUNT", 1000)
        if isinstance(reply, RedisReplyError):
            return _not_sampled(denied, reply, "SCAN")
        cursor, keys = str(reply[0]), reply[1]
        sizes = conn.pipeline([("MEMORY", "USAGE", key) for key in keys]) if keys else []
        lookups += len(keys)
        refused = [size for size in sizes if isinstance(size, RedisReplyError)]
        if refused and acl_rule(refused[0]):
            return _not_sampled(denied, refused[0], "MEMORY USAGE", lookups)
        for index, size in enumerate(sizes):  # zip(strict=) needs Python 3.10 on the target
            key = keys[index]
            if isinstance(size, int):
                sampled += 1
                item = (size, key)
                heapq.heappush(heap, item) if len(heap) < top else heapq.heappushpop(heap, item)
        if cursor == "0":
            complete = True
            break
    biggest = sorted(heap, reverse=True)
    details = conn.pipeline([c for _size, key in biggest for c in (("TYPE", key), ("PTTL", key))]) if biggest else []
    lookups += len(details)
    top_keys = []
    for i, (size, key) in enumerate(biggest):
        kind, ttl = details[2 * i], details[2 * i + 1]
        if isinstance(kind, RedisReplyError):
            note_denied(denied, kind, "TYPE", "the type of the big keys is unknown")
            kind = "?"
        if isinstance(ttl, RedisReplyError):
            note_denied(denied, ttl, "PTTL", "whether the big keys expire is unknown")
            ttl = None
        top_keys.append({"key": key, "bytes": size, "type": str(kind), "ttl_ms": ttl})
    return {
        "sampled": sampled,
        "lookups": lookups,
        "complete": complete,
        "top": top_keys,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }


def _not_sampled(denied: list, error: RedisReplyError, command: str, lookups: int = 0) -> dict:
    result = {"error": str(error), "sampled": 0, "lookups": lookups, "top": [], "complete": False, "elapsed_ms": 0}
    if note_denied(denied, error, command, "big keys were not measured"):
        result.update(denied=acl_rule(error), denied_command=command)
    return result


def rates(first: dict, second: dict, window: float, own_lookups: int, own_hits: int) -> dict:
    def delta(name: str) -> int:
        return max(int(second.get(name, 0)) - int(first.get(name, 0)), 0)

    oom = max(
        int(second.get("errorstat_OOM", {}).get("count", 0)) - int(first.get("errorstat_OOM", {}).get("count", 0)), 0
    )
    # Our own MEMORY USAGE / TYPE / PTTL lookups count as keyspace hits or misses: take them out.
    hits = max(delta("keyspace_hits") - own_hits, 0)
    misses = max(delta("keyspace_misses") - (own_lookups - own_hits), 0)
    evicted = delta("evicted_keys")
    return {
        "window_s": round(window, 3),
        "evicted": evicted,
        "evicted_per_s": round(evicted / window, 2),
        "hits": hits,
        "misses": misses,
        "rejected": delta("rejected_connections"),
        "oom_errors": oom,
        "expired": delta("expired_keys"),
        "ops_per_s": round(delta("total_commands_processed") / window, 1),
    }


def prometheus(params: dict) -> dict:
    if not params["prometheus_url"]:
        return checks.finding("backend_hit_rate", "skipped", "-", "-", "no Prometheus URL configured")
    query = urllib.parse.urlencode({"query": params["prometheus_query"]})
    url = params["prometheus_url"].rstrip("/") + "/api/v1/query?" + query
    minimum = (
        checks.DEFAULT_THRESHOLDS["hit_rate_min"]
        if "hit_rate_min" not in params["thresholds"]
        else params["thresholds"]["hit_rate_min"]
    )
    try:
        with open_url(url, timeout=params["prometheus_timeout"]) as resp:
            result = json.loads(resp.read().decode())["data"]["result"]
        value = float(result[0]["value"][1])
    except (OSError, UrlsConnectionError, ValueError, KeyError, IndexError) as exc:
        return checks.finding(
            "backend_hit_rate",
            "skipped",
            "-",
            f"{minimum * 100:.1f}%",
            f"Prometheus query failed or returned nothing: {exc}",
        )
    return checks.finding(
        "backend_hit_rate",
        "warning" if value < float(minimum) else "ok",
        f"{value * 100:.1f}%",
        f"{float(minimum) * 100:.1f}%",
        f"backend-reported {params['prometheus_query']}",
    )


def doctors(conn, config: dict, denied: list) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    doctor = conn.try_call("MEMORY", "DOCTOR")
    if isinstance(doctor, RedisReplyError):
        note_denied(denied, doctor, "MEMORY DOCTOR", "MEMORY DOCTOR's verdict is missing")
        memory = checks.finding("memory_doctor", "skipped", "-", "-", f"MEMORY DOCTOR not permitted: {doctor}")
    else:
        text = " ".join(str(doctor).split())
        memory = checks.finding("memory_doctor", checks.doctor_status(text), "verdict", "no issue", f'"{text[:600]}"')
    threshold = int(config.get("latency-monitor-threshold", 0) or 0)
    if threshold <= 0:
        latency = checks.finding(
            "latency_doctor",
            "skipped",
            "monitor off",
            "latency-monitor-threshold > 0",
            "the latency monitor is off: CONFIG SET latency-monitor-threshold 100 "
            "would let LATENCY DOCTOR explain latency spikes",
        )
    else:
        reply = conn.try_call("LATENCY", "DOCTOR")
        if isinstance(reply, RedisReplyError):
            note_denied(denied, reply, "LATENCY DOCTOR", "LATENCY DOCTOR's verdict is missing")
        text = " ".join(str(reply).split())
        quiet = "no latency spike" in text.lower() or "no latency event" in text.lower()
        latency = checks.finding(
            "latency_doctor", "ok" if quiet else "warning", f"threshold {threshold} ms", "no spikes", f'"{text[:600]}"'
        )
    return memory, latency
