"""redis_diagnose's judgement (module_utils/redis_checks) on recorded INFO fields: each finding
carries status, value and threshold, and the signals name the criteria from diagnostics.md."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.plugins import PLUGINS, load_plugin

# The modules import module_utils as ansible_collections.pivotal.flow_ops...: the checkout's
# collections/ directory (a symlink tree) makes that package importable without installing.
sys.path.insert(0, str(PLUGINS.parents[1] / "collections"))

checks = load_plugin("redis_checks", "module_utils")
resp = load_plugin("redis_resp", "module_utils")
T = dict(checks.DEFAULT_THRESHOLDS)
MB = 1024**2
QUIET = {"window_s": 3.0, "evicted": 0, "evicted_per_s": 0.0, "hits": 0, "misses": 0,
         "rejected": 0, "oom_errors": 0}  # fmt: skip
NO_KEYS = {"keys": 0, "expires": 0}


def _info(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "used_memory": 40 * MB, "maxmemory": 64 * MB, "maxmemory_policy": "allkeys-lru",
        "used_memory_rss": 48 * MB, "mem_fragmentation_ratio": 1.2, "allocator_frag_ratio": 1.02,
        "allocator_frag_bytes": 1 * MB, "used_memory_peak": 42 * MB, "connected_clients": 10,
        "maxclients": 10000, "mem_clients_normal": 200_000, "mem_allocator": "jemalloc-5.3.0",
    }  # fmt: skip
    return {**base, **fields}


def _by_check(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in findings}


def test_every_memory_finding_has_value_threshold_and_detail() -> None:
    for f in checks.memory_findings(_info(), T):
        assert set(f) == {"check", "status", "value", "threshold", "detail"}
        assert f["status"] == "ok", f


def test_real_fragmentation_needs_both_ratio_and_bytes() -> None:
    small = _by_check(
        checks.memory_findings(_info(allocator_frag_ratio=1.5, allocator_frag_bytes=MB), T)
    )
    real = _by_check(
        checks.memory_findings(_info(allocator_frag_ratio=1.5, allocator_frag_bytes=20 * MB), T)
    )
    assert small["fragmentation"]["status"] == "ok"
    assert real["fragmentation"]["status"] == "warning"


def test_full_cache_under_lru_is_a_warning_but_under_noeviction_critical() -> None:
    lru = _by_check(checks.memory_findings(_info(used_memory=64 * MB), T))["memory_usage"]
    noev = _by_check(
        checks.memory_findings(_info(used_memory=64 * MB, maxmemory_policy="noeviction"), T)
    )
    assert lru["status"] == "warning" and "evicting policy" in lru["detail"]
    assert noev["memory_usage"]["status"] == "critical"


def test_noeviction_at_maxmemory_is_oom() -> None:
    info = _info(used_memory=64 * MB, maxmemory_policy="noeviction")
    finding = checks.policy_finding(info, NO_KEYS, 0, T)
    assert finding["status"] == "critical" and "OOM" in finding["detail"]
    signals = checks.signals(info, QUIET, T, {}, NO_KEYS)
    assert signals["oom"] and signals["noeviction_cache"] and not signals["evicting"]


def test_volatile_policy_with_keys_without_ttl_is_flagged() -> None:
    info = _info(used_memory=63 * MB, maxmemory_policy="volatile-lru")
    finding = checks.policy_finding(info, {"keys": 100, "expires": 10}, 0, T)
    assert finding["status"] == "warning" and "90 of 100 keys carry no TTL" in finding["detail"]
    assert checks.signals(info, QUIET, T, {}, {"keys": 100, "expires": 10})["volatile_without_ttl"]


def test_rates_come_from_the_window_and_low_traffic_skips_the_hit_rate() -> None:
    busy = {**QUIET, "evicted": 300, "evicted_per_s": 100.0, "hits": 10, "misses": 90}
    found = _by_check(checks.rate_findings(busy, T, "allkeys-lru"))
    assert (
        found["eviction_rate"]["status"] == "critical"
        and found["eviction_rate"]["value"] == "100.0/s"
    )
    assert found["hit_rate"]["status"] == "warning" and found["hit_rate"]["value"] == "10.0%"
    quiet = _by_check(checks.rate_findings(QUIET, T, "allkeys-lru"))
    assert quiet["hit_rate"]["status"] == "skipped"


def test_big_keys_being_evicted_ask_for_lazyfree() -> None:
    bigkeys = {
        "top": [{"key": "k", "bytes": 5 * MB, "type": "hash"}],
        "sampled": 10,
        "elapsed_ms": 3.0,
    }
    busy = {**QUIET, "evicted": 30, "evicted_per_s": 10.0}
    assert checks.signals(_info(), busy, T, bigkeys, NO_KEYS)["bigkeys_evicted"]
    assert not checks.signals(_info(), QUIET, T, bigkeys, NO_KEYS)["bigkeys_evicted"]
    finding = checks.bigkeys_finding({**bigkeys, "complete": False}, T)
    assert finding["status"] == "warning" and "partial sample" in finding["detail"]


def test_peak_purge_needs_the_peak_and_real_rss_overhead() -> None:
    info = _info(used_memory=20 * MB, used_memory_peak=60 * MB, used_memory_rss=50 * MB,
                 mem_fragmentation_ratio=2.5)  # fmt: skip
    assert checks.signals(info, QUIET, T, {}, NO_KEYS)["peak_purge"]
    tiny = _info(used_memory=1 * MB, used_memory_peak=60 * MB, used_memory_rss=13 * MB,
                 mem_fragmentation_ratio=13.0)  # fmt: skip
    assert not checks.signals(tiny, QUIET, T, {}, NO_KEYS)["peak_purge"], "MEMORY DOCTOR: too small"


def test_clients_and_rejections() -> None:
    info = _info(connected_clients=9600, rejected_connections=3, blocked_clients=2)
    found = _by_check(
        checks.client_findings(info, {**QUIET, "rejected": 2}, T, {"oldest_idle": []})
    )
    assert found["clients"]["status"] == "critical"
    assert found["rejected_connections"]["status"] == "critical"
    assert found["blocked_clients"]["status"] == "warning"


def test_persistence_failures_are_critical() -> None:
    info = _info(rdb_last_bgsave_status="err", aof_enabled=1, aof_last_write_status="err")
    found = _by_check(checks.persistence_findings(info))
    assert found["persistence_rdb"]["status"] == "critical"
    assert found["persistence_aof"]["status"] == "critical"


def test_memory_doctor_verdicts() -> None:
    assert checks.doctor_status("Hi Sam, I can't find any memory issue in your instance.") == "ok"
    assert checks.doctor_status("Sam, I detected a few issues in this Redis instance") == "warning"


@pytest.mark.parametrize(
    ("used", "peak", "status", "said"),
    [
        (1 * MB, 60 * MB, "ok", "MEMORY DOCTOR makes no judgement"),
        (20 * MB, 60 * MB, "warning", "MEMORY PURGE can release it"),
        (20 * MB, 22 * MB, "ok", "below the MEMORY DOCTOR criteria"),
    ],
)
def test_memory_peak_has_the_small_dataset_guard(
    used: int, peak: int, status: str, said: str
) -> None:
    found = _by_check(checks.memory_findings(_info(used_memory=used, used_memory_peak=peak), T))
    assert found["memory_peak"]["status"] == status and said in found["memory_peak"]["detail"]


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        (
            {"used_memory": 1 * MB, "allocator_frag_ratio": 3.0, "allocator_frag_bytes": 50 * MB},
            "is not judged: 1mb used is below 5mb",
        ),
        (
            {"allocator_frag_ratio": 1.5, "allocator_frag_bytes": 2 * MB},
            "(2mb fragmented under the threshold)",
        ),
        (
            {"allocator_frag_ratio": 1.05, "allocator_frag_bytes": 2 * MB},
            "(ratio 1.05, 2mb fragmented under",
        ),
    ],
)
def test_fragmentation_says_why_it_did_not_alarm(fields: dict[str, Any], said: str) -> None:
    found = _by_check(checks.memory_findings(_info(**fields), T))
    assert found["fragmentation"]["status"] == "ok" and said in found["fragmentation"]["detail"]


SLOW = {"command": "EVAL", "arity": 3, "duration_us": 250_000}


@pytest.mark.parametrize(
    ("ages", "status", "value", "said"),
    [
        ([], "ok", 0, "no slow commands logged"),
        (
            [5000],
            "ok",
            0,
            "no slow command in the last 900 s (1 older entries, the newest 5000 s old)",
        ),
        ([10, 5000], "warning", 1, "1 slow commands in the last 900 s: EVAL (3 args) 250000 us"),
    ],
)
def test_slowlog_judges_a_window_by_entry_timestamps(
    ages: list[int], status: str, value: int, said: str
) -> None:
    now = 1_700_000_000.0
    entries = [{**SLOW, "timestamp": int(now) - age} for age in ages]
    found = checks.slowlog_finding(entries, now, T, "10000")
    assert (found["status"], found["value"]) == (status, value) and said in found["detail"]
    assert found["threshold"] == "10000 us, last 900 s"


def test_a_denied_command_is_a_finding_naming_the_acl_rule() -> None:
    denied = [
        {"command": "MEMORY USAGE", "rule": "+memory|usage", "effect": "big keys were not measured"}
    ]
    (found,) = checks.acl_findings(denied)
    assert (found["check"], found["status"], found["threshold"]) == (
        "acl:memory_usage",
        "warning",
        "+memory|usage",
    )
    assert (
        found["detail"]
        == "this user may not run MEMORY USAGE: big keys were not measured; grant +memory|usage"
    )
    bigkeys = {
        "error": "NOPERM",
        "denied": "+memory|usage",
        "denied_command": "MEMORY USAGE",
        "sampled": 0,
        "top": [],
        "complete": False,
        "elapsed_ms": 0,
    }
    finding = checks.bigkeys_finding(bigkeys, T)
    assert finding["status"] == "warning" and "grant +memory|usage" in finding["detail"]
    assert "0 keys sampled" not in finding["detail"]


@pytest.mark.parametrize(
    ("reply", "rule"),
    [
        ("NOPERM this user has no permissions to run the 'memory|usage' command", "+memory|usage"),
        ("NOPERM this user has no permissions to run the 'pttl' command", "+pttl"),
        ("NOPERM this user has no permissions to access one of the keys used as arguments", ""),
        ("OOM command not allowed when used memory > 'maxmemory'.", ""),
    ],
)
def test_acl_rule_from_a_noperm_reply(reply: str, rule: str) -> None:
    assert resp.acl_rule(resp.RedisReplyError(reply)) == rule


def test_auth_to_a_redis_without_a_password_is_told_apart() -> None:
    text = "ERR AUTH <password> called without any password configured for the default user."
    assert resp.classify(resp.RedisReplyError(text)) == "auth_not_required"
