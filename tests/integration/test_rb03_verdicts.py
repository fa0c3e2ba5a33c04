"""RB-03 misjudgments found by trying the runbook as a new user would (issue 12), each against the
sandbox's real Redis 7 through the real CLI and playbook: a restricted ACL user, a password sent
to a Redis without one, MEMORY DOCTOR's small-dataset rule, an old slow-log entry, check mode's
before/after, and a signal seen below its threshold."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from tests.integration.conftest import Run, Stack

pytestmark = pytest.mark.integration

# What the README's least-privilege monitor user gets, minus what each test takes away.
MONITOR = [
    "+ping", "+info", "+config|get", "+memory|doctor", "+memory|usage", "+latency|doctor",
    "+slowlog|get", "+client|list", "+client|id", "+scan", "+type", "+pttl",
]  # fmt: skip


def _redis(stack: Stack, **kwargs: Any) -> redis.Redis:
    ep = stack.endpoints["redis"]
    return redis.Redis(host=ep["host"], port=ep["port"], socket_timeout=5, **kwargs)


def _run(stack: Stack, command: str, *extra: str) -> Run:
    return stack.cli(command, "rb-03", "--env", "local", "--output", "json", *extra)


def _by_check(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in data["findings"]}


@contextmanager
def acl_user(stack: Stack, commands: list[str]) -> Iterator[tuple[str, ...]]:
    """A throwaway ACL user; yields the CLI's -e options that log in as it."""
    name, password = f"pflow-test-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    client = _redis(stack)
    client.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], keys=["~*"], commands=commands
    )
    try:
        yield ("-e", f"cache_redis_user={name}", "-e", f"cache_redis_password={password}")
    finally:
        client.acl_deluser(name)


def test_a_user_without_memory_usage_or_pttl_is_told_the_rules_to_grant(sandbox: Stack) -> None:
    client = _redis(sandbox)
    client.set("test:rb03:big", b"x" * 200_000, px=600_000)
    allowed = [c for c in MONITOR if c not in ("+memory|usage", "+pttl")]
    with acl_user(sandbox, allowed) as creds:
        run = _run(sandbox, "diagnose", *creds)
    data = run.json
    assert data["outcome"] == "healthy", data["reason"]
    found = _by_check(data)
    assert found["big_keys"]["status"] == "warning"
    assert "grant +memory|usage" in found["big_keys"]["detail"]
    assert "0 keys sampled" not in found["big_keys"]["detail"]
    assert found["acl:memory_usage"]["threshold"] == "+memory|usage"

    # MEMORY USAGE allowed, PTTL not: the sample stands, the TTL is unknown, nothing crashes.
    with acl_user(sandbox, [c for c in MONITOR if c != "+pttl"]) as creds:
        data = _run(sandbox, "diagnose", *creds).json
    assert data["outcome"] == "healthy", data["reason"]
    found = _by_check(data)
    assert found["acl:pttl"]["detail"].endswith("grant +pttl")
    assert "keys sampled by SCAN" in found["big_keys"]["detail"]


def test_noperm_on_config_rewrite_and_set_is_not_writes_still_fail(sandbox: Stack) -> None:
    client = _redis(sandbox)
    client.config_set("maxmemory-policy", "noeviction")
    tuner = [*MONITOR, "+config|set", "+del"]  # no +config|rewrite, no +set
    with acl_user(sandbox, tuner) as creds:
        run = _run(sandbox, "recover", *creds)
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert str(client.config_get("maxmemory-policy")["maxmemory-policy"]) == "allkeys-lru"
    reason = data["reason"]
    assert "NOT persisted" in reason and "grant +config|rewrite" in reason
    assert "writes still fail" not in reason
    assert reason.index("NOT persisted") < reason.index("write probe not run")
    probe = {v["check"]: v for v in data["verification"]}["write_probe"]
    assert (probe["status"], probe["value"]) == ("skipped", "not permitted")
    assert "grant +set" in probe["detail"]


def test_memory_peak_on_a_small_dataset_is_not_judged(sandbox: Stack) -> None:
    client = _redis(sandbox)
    # Raise the peak well above what is used now, on an instance far below 5 MB.
    keys = [f"test:rb03:peak:{i}" for i in range(40)]
    for key in keys:
        client.set(key, b"x" * 100_000)
    client.delete(*keys)
    info = client.info("memory")
    assert info["used_memory"] < 5 * 1024**2
    assert info["used_memory_peak"] / info["used_memory"] > 1.5
    data = _run(sandbox, "diagnose").json
    found = _by_check(data)
    assert found["memory_peak"]["status"] == "ok", found["memory_peak"]
    assert "MEMORY DOCTOR makes no judgement" in found["memory_peak"]["detail"]
    assert "MEMORY DOCTOR makes no judgement" in found["fragmentation"]["detail"]
    assert "memory_peak" not in data["reason"]


def test_an_old_slow_log_entry_does_not_warn_forever(sandbox: Stack) -> None:
    client = _redis(sandbox)
    before = client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    client.slowlog_reset()
    client.config_set("slowlog-log-slower-than", 0)
    try:
        client.ping()
    finally:
        client.config_set("slowlog-log-slower-than", before)
    fresh = _by_check(_run(sandbox, "diagnose").json)["slowlog"]
    assert fresh["status"] == "warning", fresh
    time.sleep(2.5)
    old = _by_check(_run(sandbox, "diagnose", "-e", "cache_slowlog_window_seconds=2").json)[
        "slowlog"
    ]
    client.slowlog_reset()
    assert (old["status"], old["threshold"]) == ("ok", f"{before} us, last 2 s"), old
    assert "no slow command in the last 2 s" in old["detail"]


def test_a_password_sent_to_a_redis_without_one_is_told_as_such(sandbox: Stack) -> None:
    run = _run(sandbox, "recover", "-e", "cache_redis_password=not-needed")
    data = run.json
    assert (run.rc, data["outcome"], data["changed"]) == (4, "escalate", 0), data["reason"]
    assert "Redis has none configured" in data["reason"]
    assert "BUSY" not in data["reason"] and "long script" not in data["reason"]
    assert _by_check(data)["connectivity"]["value"] == "auth_not_required"
    assert data["actions"] == []


def test_check_mode_shows_before_and_after_and_changes_nothing(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "redis-down").rc == 0
    run = _run(sandbox, "recover", "--check")
    data = run.json
    assert (data["outcome"], data["check"]) == ("escalate", True), data["reason"]
    assert "check mode: recovery would restart Redis" in data["reason"]
    restart = [a for a in data["actions"] if a["action"] == "restart"]
    assert len(restart) == 1, data["actions"]
    assert restart[0]["before"] not in ("", "unknown") and restart[0]["after"] == "running"
    assert restart[0]["result"] == "would restart (check mode)"
    (budget,) = [a for a in data["actions"] if a["action"] == "restart_budget"]
    assert (budget["before"], budget["after"]) == ("0 of 3 restarts used", "1 of 3 restarts used")
    assert sandbox.budget_entries() == [], "check mode records no restart"
    assert data["changed"] >= 1, "changed in check mode means 'would change'"
    with pytest.raises(redis.exceptions.ConnectionError):
        _redis(sandbox).ping()


@contextmanager
def slow_evictions(stack: Stack) -> Iterator[None]:
    """A cache just big enough to evict, written to a few times a second: evictions well
    below cache_eviction_rate_max (10/s), the way a fault starts."""
    client = _redis(stack)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 1024**2)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            client.set(f"test:rb03:slow:{i}", b"x" * 100_000)
            i += 1
            stop.wait(0.25)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while int(client.info("stats")["evicted_keys"]) == 0:
            assert time.monotonic() < deadline, "no eviction within 15 s"
            time.sleep(0.2)
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def test_evictions_below_the_threshold_are_said_with_the_threshold(sandbox: Stack) -> None:
    with slow_evictions(sandbox):
        data = _run(sandbox, "diagnose").json
    assert data["outcome"] == "healthy", data["reason"]
    reason = data["reason"]
    assert "keys evicted in" in reason and "maxmemory is raised above 10.0/s" in reason, reason
    assert "every check is within its threshold" not in reason


@contextmanager
def writer(stack: Stack) -> Iterator[list[str]]:
    """Small writes a few times a second; yields the errors they got."""
    client, stop = _redis(stack), threading.Event()
    errors: list[str] = []

    def write() -> None:
        i = 0
        while not stop.is_set():
            try:
                client.set(f"test:rb03:write:{i}", b"x" * 100)
            except redis.exceptions.ResponseError as exc:
                errors.append(str(exc))
            i += 1
            stop.wait(0.2)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(timeout=5)


def test_writes_refused_under_an_evicting_policy_are_never_healthy(sandbox: Stack) -> None:
    client = _redis(sandbox)
    before = client.config_get("maxmemory")["maxmemory"]
    # Below what Redis itself uses: allkeys-lru evicts every key and still refuses writes.
    client.config_set("maxmemory", "512kb")
    try:
        with writer(sandbox) as errors:
            run = _run(sandbox, "diagnose")
    finally:
        client.config_set("maxmemory", before)
    assert errors and "used memory > 'maxmemory'" in errors[0], "the fault is real: writes fail"
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert "writes refused with OOM in the window under allkeys-lru" in data["reason"]
    assert "nothing is left to evict" in data["reason"]


def test_a_user_without_info_is_told_the_rule_not_sent_to_a_restart(sandbox: Stack) -> None:
    with acl_user(sandbox, ["+ping"]) as creds:
        run = _run(sandbox, "recover", *creds)
    data = run.json
    assert (run.rc, data["outcome"], data["changed"]) == (4, "escalate", 0), data["reason"]
    assert "may not run INFO" in data["reason"] and "grant +info" in data["reason"]
    assert "long script" not in data["reason"] and data["actions"] == []
    assert _by_check(data)["connectivity"]["value"] == "not_permitted"
