"""RB-03 Cache Issues, end to end: the real CLI, the real playbook and the sandbox's real Redis 7.
Each test asserts what an on-call engineer would check: do writes succeed, what are the policy and
maxmemory now, is the change in redis.conf, what does the report say, did check mode touch
anything."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from pflow_ops.sandbox.net import free_ports
from tests.integration.conftest import ROOT, Run, Stack
from tests.plugins import load_plugin

# redis_tune imports its module_utils as ansible_collections.pivotal.flow_ops...
sys.path.insert(0, str(ROOT / "collections"))

pytestmark = pytest.mark.integration

TUNABLES = ("maxmemory", "maxmemory-policy", "activedefrag", "lazyfree-lazy-eviction", "maxclients")


def _redis(stack: Stack, **kwargs: Any) -> redis.Redis:
    ep = stack.endpoints["redis"]
    return redis.Redis(host=ep["host"], port=ep["port"], socket_timeout=5, **kwargs)


def _config(stack: Stack) -> dict[str, str]:
    live = _redis(stack).config_get("*")
    return {k: str(live[k]) for k in TUNABLES}


def _conf_file(stack: Stack) -> str:
    return Path(stack.endpoints["redis"]["config_file"]).read_text()


def _run(stack: Stack, command: str, *extra: str) -> Run:
    args = [command, "rb-03"] if command != "maintain" else [command, "cache"]
    return stack.cli(*args, "--env", "local", "--output", "json", *extra)


def _by_check(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in data["findings"]}


def _writes_succeed(stack: Stack) -> bool:
    try:
        return bool(_redis(stack).set("test:rb03:write", "1", px=5000))
    except redis.exceptions.ResponseError:
        return False


def test_healthy_cache_is_left_alone(sandbox: Stack) -> None:
    before = _config(sandbox)
    run = _run(sandbox, "recover")
    data = run.json
    assert (run.rc, data["outcome"], data["changed"]) == (0, "healthy", 0), data["reason"]
    checks = _by_check(data)
    for name in ("connectivity", "memory_usage", "eviction_policy", "eviction_rate", "clients"):
        assert checks[name]["status"] == "ok", checks[name]
    assert {"value", "threshold", "detail"} <= set(checks["memory_usage"])
    assert checks["latency_doctor"]["status"] == "skipped"
    assert "latency-monitor-threshold" in checks["latency_doctor"]["detail"]
    assert checks["memory_doctor"]["detail"].startswith('"')
    assert data["actions"] == [] and _config(sandbox) == before


def test_oom_under_noeviction_check_then_recover_then_idempotent(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "redis-oom").rc == 0
    assert not _writes_succeed(sandbox)

    diag = _run(sandbox, "diagnose")
    data = diag.json
    assert (diag.rc, data["outcome"], data["changed"]) == (4, "escalate", 0)
    assert _by_check(data)["eviction_policy"]["status"] == "critical"
    assert "writes fail with OOM" in _by_check(data)["eviction_policy"]["detail"]
    assert "maxmemory-policy" in data["reason"]

    before = _config(sandbox)
    check = _run(sandbox, "recover", "--check")
    data = check.json
    assert (check.rc, data["outcome"], data["check"]) == (4, "escalate", True)
    assert data["actions"] == [
        {
            "action": "config_set",
            "target": "maxmemory-policy",
            "before": "noeviction",
            "after": "allkeys-lru",
            "result": "would set (check mode)",
        }
    ]
    assert _config(sandbox) == before, "check mode must not change anything"
    assert "maxmemory-policy noeviction" in _conf_file(sandbox)

    run = _run(sandbox, "recover")
    data = run.json
    assert (run.rc, data["outcome"]) == (0, "recovered"), data["reason"]
    assert data["changed"] >= 1
    assert _config(sandbox)["maxmemory-policy"] == "allkeys-lru"
    assert _writes_succeed(sandbox)
    assert "maxmemory-policy allkeys-lru" in _conf_file(sandbox)
    verification = {v["check"]: v["status"] for v in data["verification"]}
    assert verification["write_probe"] == verification["persisted"] == "ok"
    assert verification["setting:maxmemory-policy"] == "ok"

    again = _run(sandbox, "recover").json
    assert again["outcome"] == "healthy" and again["changed"] == 0, again["reason"]


def test_evictions_raise_maxmemory_within_the_ceiling(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "redis-evictions").rc == 0
    diag = _run(sandbox, "diagnose").json
    evictions = _by_check(diag)["eviction_rate"]
    assert evictions["status"] == "critical" and evictions["value"].endswith("/s")
    assert "maxmemory" in diag["reason"]

    run = _run(sandbox, "recover")
    data = run.json
    assert (run.rc, data["outcome"]) == (0, "recovered"), data["reason"]
    raised = [a for a in data["actions"] if a["target"] == "maxmemory"]
    assert raised == [
        {
            "action": "config_set",
            "target": "maxmemory",
            "before": "16mb",
            "after": "20mb",
            "result": "set",
        }
    ]
    assert _config(sandbox)["maxmemory"] == str(20 * 1024**2)
    assert "maxmemory 20mb" in _conf_file(sandbox)
    after = {v["check"]: v for v in data["verification"]}["eviction_rate_after"]
    assert after["status"] == "ok"

    again = _run(sandbox, "recover").json
    assert again["changed"] == 0 and again["outcome"] == "healthy", again["reason"]


def test_evictions_at_the_ceiling_are_recommended_not_applied(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "redis-evictions").rc == 0
    run = _run(sandbox, "recover", "-e", "cache_maxmemory_ceiling=16777216")
    data = run.json
    assert (run.rc, data["outcome"], data["changed"]) == (4, "escalate", 0)
    assert "ceiling" in data["reason"] and data["actions"] == []
    assert _config(sandbox)["maxmemory"] == str(16 * 1024**2)


def test_cache_misses_are_explained_not_tuned(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "cache-misses").rc == 0
    before = _config(sandbox)
    run = _run(sandbox, "recover")
    data = run.json
    assert (run.rc, data["outcome"], data["changed"]) == (4, "escalate", 0)
    assert _by_check(data)["hit_rate"]["status"] == "warning"
    assert "never cached" in data["reason"]
    assert data["actions"] == [] and _config(sandbox) == before


def test_max_clients_is_named_and_escalated(sandbox: Stack) -> None:
    assert sandbox.cli("sandbox", "break", "redis-clients").rc == 0
    run = _run(sandbox, "recover")
    data = run.json
    assert (run.rc, data["outcome"], data["changed"]) == (4, "escalate", 0)
    assert "max number of clients reached" in data["reason"]
    connectivity = _by_check(data)["connectivity"]
    assert connectivity["status"] == "critical" and connectivity["value"] == "max_clients"
    assert data["actions"] == [], "no restart: it would drop every client and the cache"


def test_redis_down_is_restarted_and_verified_then_refused_when_the_budget_is_spent(
    sandbox: Stack,
) -> None:
    # 2 of the inventory's 3 restarts used: one left (the policy is never set by -e)
    sandbox.spend_budget("local/localhost/redis", 2)
    budget: tuple[str, ...] = ()
    assert sandbox.cli("sandbox", "break", "redis-down").rc == 0
    run = _run(sandbox, "recover", *budget)
    data = run.json
    assert (run.rc, data["outcome"]) == (0, "recovered"), data["reason"]
    assert [a["action"] for a in data["actions"]] == ["restart_budget", "restart"]
    assert {v["check"]: v["status"] for v in data["verification"]} == {
        "ping_gate": "ok",
        "backend_health_gate": "ok",
    }
    assert _redis(sandbox).ping() and sandbox.health() == 200

    assert sandbox.cli("sandbox", "break", "redis-down").rc == 0
    refused = _run(sandbox, "recover", *budget)
    assert (refused.rc, refused.json["outcome"]) == (3, "refused")
    assert "restart budget spent" in refused.json["reason"]
    with pytest.raises(redis.exceptions.ConnectionError):
        _redis(sandbox).ping()


def test_password_protected_redis(sandbox: Stack) -> None:
    password = secrets.token_urlsafe(16)
    client = _redis(sandbox)
    client.config_set("requirepass", password)
    try:
        denied = _run(sandbox, "recover").json
        assert denied["outcome"] == "escalate"
        assert _by_check(denied)["connectivity"]["value"] == "noauth"
        run = _run(sandbox, "recover", "-e", f"cache_redis_password={password}")
        data = run.json
        assert (run.rc, data["outcome"]) == (0, "healthy"), data["reason"]
        for path in data["report"].values():
            assert password not in Path(path).read_text(), "secrets never reach the report"
    finally:
        _redis(sandbox, password=password).config_set("requirepass", "")


def test_restricted_acl_user_diagnoses_and_a_user_without_config_is_told(sandbox: Stack) -> None:
    password = secrets.token_urlsafe(16)
    client = _redis(sandbox)
    read_only = [
        "+ping", "+info", "+config|get", "+memory|doctor", "+memory|usage", "+latency|doctor",
        "+slowlog|get", "+client|list", "+client|id", "+scan", "+type", "+pttl",
    ]  # fmt: skip
    client.acl_setuser(
        "pflow-test-monitor", enabled=True, passwords=[f"+{password}"], keys=["~*"],
        commands=read_only,
    )  # fmt: skip
    client.acl_setuser(
        "pflow-test-noconfig", enabled=True, passwords=[f"+{password}"], keys=["~*"],
        commands=[c for c in read_only if not c.startswith("+config")],
    )  # fmt: skip
    creds = ("-e", f"cache_redis_password={password}")
    try:
        data = _run(sandbox, "recover", "-e", "cache_redis_user=pflow-test-monitor", *creds).json
        assert data["outcome"] == "healthy", data["reason"]
        assert _by_check(data)["config_access"]["status"] == "ok"

        data = _run(sandbox, "diagnose", "-e", "cache_redis_user=pflow-test-noconfig", *creds).json
        access = _by_check(data)["config_access"]
        assert access["status"] == "warning" and "may not run CONFIG" in access["detail"]
        assert _by_check(data)["eviction_policy"]["value"] == "allkeys-lru", "read from INFO"
    finally:
        client.acl_deluser("pflow-test-monitor", "pflow-test-noconfig")


def test_maintenance_reports_drift_and_reapplies_it_only_when_asked(sandbox: Stack) -> None:
    clean = _run(sandbox, "maintain").json
    assert clean["outcome"] == "healthy" and clean["changed"] == 0, clean["reason"]

    _redis(sandbox).config_set("maxmemory-policy", "volatile-lru")
    drift = _run(sandbox, "maintain")
    data = drift.json
    assert (data["outcome"], data["changed"]) == ("escalate", 0)
    finding = _by_check(data)["config_drift:maxmemory-policy"]
    assert (finding["value"], finding["threshold"]) == ("volatile-lru", "allkeys-lru")
    assert _config(sandbox)["maxmemory-policy"] == "volatile-lru"

    fixed = _run(sandbox, "maintain", "-e", "cache_maintenance_apply_intended=true").json
    assert fixed["outcome"] == "recovered", fixed["reason"]
    assert _config(sandbox)["maxmemory-policy"] == "allkeys-lru"
    assert "maxmemory-policy allkeys-lru" in _conf_file(sandbox)
    again = _run(sandbox, "maintain").json
    assert again["outcome"] == "healthy" and again["changed"] == 0


@pytest.fixture
def bare_redis() -> Iterator[int]:
    """A real Redis 7 started without a config file: CONFIG REWRITE is impossible there."""
    (port,) = free_ports(1)
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_change_that_cannot_be_persisted_is_said_plainly(sandbox: Stack, bare_redis: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=bare_redis, socket_timeout=5)
    client.config_set("maxmemory", "8mb")
    client.config_set("maxmemory-policy", "noeviction")
    target = ("-e", f"cache_redis_port={bare_redis}", "-e", "cache_backend_health_url=")
    run = _run(sandbox, "recover", *target)
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert "NOT persisted" in data["reason"] and "without a config file" in data["reason"]
    assert _by_check(data)["config_file"]["status"] == "warning"
    persisted = {v["check"]: v for v in data["verification"]}["persisted"]
    assert (persisted["status"], persisted["value"]) == ("warning", "no")
    assert str(client.config_get("maxmemory-policy")["maxmemory-policy"]) == "allkeys-lru"


def test_idle_clients_are_killed_only_when_asked_and_never_our_own(bare_redis: int) -> None:
    tune = load_plugin("redis_tune")
    idle = [redis.Redis(host="127.0.0.1", port=bare_redis) for _ in range(3)]
    for conn in idle:
        conn.ping()
    subscriber = redis.Redis(host="127.0.0.1", port=bare_redis).pubsub()
    subscriber.subscribe("pflow-test")
    time.sleep(2.2)
    params = {
        "host": "127.0.0.1", "port": bare_redis, "user": None, "password": None, "timeout": 3.0,
        "tls": False, "validate_certs": True, "settings": {}, "maxmemory_ceiling": 0,
        "persist": True, "purge": False, "kill_idle_clients_after": 1, "write_probe": False,
    }  # fmt: skip
    # Four idle normal clients: ours and the fixture's start-up probe. Not the subscriber.
    check = tune.run_module(params, check=True)
    assert [a["result"] for a in check["actions"]] == ["would kill (check mode)"] * 4
    done = tune.run_module(params, check=False)
    assert [a["result"] for a in done["actions"]] == ["killed"] * 4 and done["changed"]
    listing = str(redis.Redis(host="127.0.0.1", port=bare_redis).client_list())
    assert "subscribe" in listing, "pub/sub subscribers are never killed"
    subscriber.close()


TUNED = {"maxmemory-policy": "allkeys-lru"}


def _tune_by_playbook(tmp_path: Path, port: int, *flags: str) -> dict[str, Any]:
    """redis_tune as a playbook task (its connection through the redis group's module_defaults);
    the task's result as the json callback reports it."""
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {
                "group/pivotal.flow_ops.redis": {"host": "127.0.0.1", "port": port}
            },
            "tasks": [{"name": "Tune", "pivotal.flow_ops.redis_tune": {"settings": TUNED}}],
        }
    ]
    (tmp_path / "tune.yml").write_text(yaml.safe_dump(play))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"
    )
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "hosts.yml", "tune.yml"]
    proc = subprocess.run(
        [*argv, *flags], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result


def test_redis_tune_shows_its_settings_change_with_diff(bare_redis: int, tmp_path: Path) -> None:
    client = redis.Redis(host="127.0.0.1", port=bare_redis, socket_timeout=5)
    client.config_set("maxmemory-policy", "noeviction")
    diff = {
        "before_header": f"redis 127.0.0.1:{bare_redis} (before)",
        "after_header": f"redis 127.0.0.1:{bare_redis} (after)",
        "before": "maxmemory-policy noeviction\n",
        "after": "maxmemory-policy allkeys-lru\n",
    }
    check = _tune_by_playbook(tmp_path, bare_redis, "--check", "--diff")
    assert check["changed"] is True and check["diff"] == diff
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    real = _tune_by_playbook(tmp_path, bare_redis, "--diff")
    assert real["changed"] is True and real["diff"] == diff
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
    again = _tune_by_playbook(tmp_path, bare_redis, "--diff")
    assert again["changed"] is False and "diff" not in again
