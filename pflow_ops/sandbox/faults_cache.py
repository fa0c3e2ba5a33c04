"""Sandbox faults of the cache runbook (RB-03), and their undo.

Config faults are written to redis.conf with CONFIG REWRITE, as a persisted misconfiguration
would be in production, so a recovery must persist its fix to undo them. Faults that need
traffic keep a detached helper (:mod:`pflow_ops.sandbox.cache_load`) running through
:mod:`pflow_ops.sandbox.loaders`; ``heal`` stops it, restores the sandbox's intended Redis config
(:func:`pflow_ops.sandbox.render.redis_conf`) and rewrites the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import redis

from pflow_ops.sandbox import loaders
from pflow_ops.sandbox.control import Context
from pflow_ops.sandbox.errors import SandboxError
from pflow_ops.sandbox.layout import HOST

FAULT_MAXMEMORY = "16mb"
FAULT_MAXMEMORY_BYTES = 16 * 1024 * 1024
OOM_MARGIN = 1024 * 1024
"""redis-oom fills this far past maxmemory before capping it."""
EVICTION_KEYS = 8000
"""Working set of the eviction helper: ~18.4 MB with Redis overhead, over 16mb, under 16mb + 25%."""
CLIENTS_MAX = 32
PREFIX = "sandbox:"

FAULTS: dict[str, str] = {
    "redis-oom": (
        f"maxmemory {FAULT_MAXMEMORY} under noeviction (persisted), filled up: writes fail with OOM"
    ),
    "redis-evictions": (
        f"maxmemory {FAULT_MAXMEMORY} (persisted) and a write loop over a working set that does "
        "not fit: keys are evicted all the time"
    ),
    "cache-misses": "a helper GETs keys that are never cached: the hit rate collapses",
    "redis-clients": (
        f"maxclients {CLIENTS_MAX} and a helper holding every free connection: new clients get "
        "'max number of clients reached'"
    ),
}


def _client(ctx: Context) -> redis.Redis:
    return redis.Redis(host=HOST, port=ctx.state.ports.redis, socket_timeout=5)


def _evicted(client: redis.Redis) -> int:
    # redis-py's annotations also cover its asyncio client; this one is synchronous.
    return int(cast(dict[str, Any], client.info("stats"))["evicted_keys"])


def _loader(ctx: Context, name: str, *args: str) -> int:
    argv = loaders.python_module(
        "pflow_ops.sandbox.cache_load", *args[:1], str(ctx.state.ports.redis), *args[1:]
    )
    return loaders.spawn(ctx.layout, f"cache-{name}", argv)


def _used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def _oom(ctx: Context) -> str:
    """Filled past maxmemory by OOM_MARGIN first, then capped: writes fail however the memory
    of client buffers, expiring keys or the backend's own cache moves by a few kilobytes (filling
    just up to the first refused SET left Redis a pipeline buffer under its limit, and a later
    write could succeed)."""
    client = _client(ctx)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 0)
    target = FAULT_MAXMEMORY_BYTES + OOM_MARGIN
    i = 0
    while _used_memory(client) < target:
        pipe = client.pipeline(transaction=False)
        for _ in range(500):
            pipe.set(f"{PREFIX}oom:{i}", b"x" * 4096)
            i += 1
        pipe.execute()
        if i > 1_000_000:
            raise SandboxError("Redis memory did not grow while filling it")
    client.config_set("maxmemory", FAULT_MAXMEMORY)
    client.config_rewrite()
    try:
        client.set(f"{PREFIX}oom:probe", b"x")
    except redis.exceptions.OutOfMemoryError:
        pass
    else:
        raise SandboxError("Redis accepted a write over maxmemory; is the policy noeviction?")
    return (
        f"filled Redis with {i} keys, then set maxmemory {FAULT_MAXMEMORY} and "
        "maxmemory-policy noeviction (CONFIG REWRITE): writes now fail with OOM"
    )


def _evictions(ctx: Context) -> str:
    client = _client(ctx)
    client.config_set("maxmemory", FAULT_MAXMEMORY)
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_rewrite()
    pid = _loader(ctx, "evictions", "evictions", str(EVICTION_KEYS))
    before = _evicted(client)
    deadline = time.monotonic() + 10
    while _evicted(client) == before:
        if time.monotonic() > deadline:
            raise SandboxError("the eviction write loop did not cause evictions within 10 s")
        time.sleep(0.1)
    return (
        f"set maxmemory {FAULT_MAXMEMORY} (CONFIG REWRITE) and started a write loop over "
        f"{EVICTION_KEYS} keys of 2 KB (pid {pid}): keys are being evicted"
    )


def _misses(ctx: Context) -> str:
    pid = _loader(ctx, "misses", "misses")
    return f"started a helper GETting keys that are never cached (pid {pid})"


def _clients(ctx: Context) -> str:
    client = _client(ctx)
    client.config_set("maxclients", CLIENTS_MAX)
    client.close()
    pid = _loader(ctx, "clients", "clients")
    deadline = time.monotonic() + 10
    while True:
        try:
            _client(ctx).ping()
        except redis.exceptions.ConnectionError as exc:
            if "max number of clients" in str(exc):
                break
        if time.monotonic() > deadline:
            raise SandboxError("the client helper did not reach maxclients within 10 s")
        time.sleep(0.1)
    return f"set maxclients {CLIENTS_MAX}; a helper (pid {pid}) holds every free connection"


BREAKERS: dict[str, Callable[[Context], str]] = {
    "redis-oom": _oom,
    "redis-evictions": _evictions,
    "cache-misses": _misses,
    "redis-clients": _clients,
}


def intended_config(ctx: Context) -> dict[str, str]:
    """The settings render.redis_conf writes, plus the Redis defaults faults may change."""
    return {
        "maxmemory": ctx.state.redis_maxmemory,
        "maxmemory-policy": "allkeys-lru",
        "maxclients": "10000",
        "activedefrag": "no",
        "lazyfree-lazy-eviction": "no",
        "lazyfree-lazy-expire": "no",
    }


def _bytes(value: str) -> str:
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1000, "m": 1000**2, "g": 1000**3}
    text = value.strip().lower()
    for unit, size in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return str(int(text[: -len(unit)]) * size)
    return text.rstrip("b")


def heal(ctx: Context) -> list[str]:
    """Stop the cache helpers, restore the intended config (and the file), drop the fault keys."""
    actions = loaders.stop(ctx.layout, prefix="cache-")
    try:
        client = _client(ctx)
        live = cast(dict[str, str], client.config_get("*"))
    except redis.exceptions.RedisError as exc:
        # A password left by an interrupted test, or Redis not up: nothing else to undo here.
        return [*actions, f"could not restore the Redis config: {exc}"]
    for name, value in intended_config(ctx).items():
        wanted = _bytes(value) if name == "maxmemory" else value
        if str(live.get(name)) != wanted:
            client.config_set(name, value)
            actions.append(f"restored Redis {name} {live.get(name)} -> {value}")
    removed, batch = 0, []
    for key in client.scan_iter(match=f"{PREFIX}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed += cast(int, client.unlink(*batch))
            batch = []
    if batch:
        removed += cast(int, client.unlink(*batch))
    if removed:
        actions.append(f"removed {removed} fault keys ({PREFIX}*)")
    client.config_rewrite()
    client.close()
    return actions
