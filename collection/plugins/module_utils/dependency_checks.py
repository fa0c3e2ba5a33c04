# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A service's PostgreSQL and Redis dependencies checked at once, each in its own thread with a
hard timeout, and the run of several checks concurrently that bounds each one.

Shared by dependency_check (the dependencies alone) and backend_diagnose (RB-01's whole
investigation in one module execution), so the two cannot drift. The checks themselves are
pg_check (SELECT 1) and redis_resp (PING).
"""

from __future__ import annotations

import threading
import time

from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_check, redis_resp
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_connection import postgres_common_argument_spec
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_client import CONNECTION_OPTIONS as REDIS_CONNECTION_OPTIONS

# How long past its own timeout a check may run before it is abandoned. Only a hung DNS lookup
# (getaddrinfo cannot be interrupted) gets there: the checks bound every other step themselves.
GRACE_S = 0.5
ORDER = ("postgresql", "redis")


class ModuleFailure(Exception):
    pass


def check_postgresql(params: dict) -> dict:
    return pg_check.check(params, timeout=params["connect_timeout"])


def check_redis(params: dict) -> dict:
    result = redis_resp.check(params, budget=params["timeout"])
    return {
        "available": result["available"],
        "state": result["state"],
        "msg": result["msg"],
        "latency_ms": result.get("latency_ms"),
        "server_version": result.get("server", {}).get("redis_version"),
    }


def failed(msg: str, state: str = "error") -> dict:
    return {"available": False, "state": state, "msg": msg, "latency_ms": None, "server_version": None}


def _timed_out(name: str, timeout: float) -> dict:
    return failed(f"{name}: timeout (no result within {timeout:g} s; name lookup hung?)", "timeout")


def _crashed(name: str, msg: str) -> dict:
    return failed(msg)


def _collect(results: dict, name: str, check, params: dict, origin: float, on_error) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    try:
        result = check(params)
    except Exception as exc:  # a bug in one check must not hide the others' results
        result = on_error(name, f"{name}: unexpected {type(exc).__name__}: {exc}")
    result["elapsed_s"] = round(time.monotonic() - started, 3)
    results[name] = (result, round(started - origin, 3))


def run_concurrently(plan: dict, on_timeout=None, on_error=None) -> dict:  # type: ignore[no-untyped-def]
    """Run {name: (check, params, timeout)} at once, one daemon thread each; every result is
    back, or abandoned in time (``on_timeout(name, timeout)`` stands in for it; a check that
    raised, ``on_error(name, msg)``). Returns {name: (result, started_s)}, ``started_s`` the
    check's start from this call's start."""
    on_timeout = on_timeout or _timed_out
    on_error = on_error or _crashed
    origin = time.monotonic()
    results: dict = {}
    threads = []
    for name, (check, params, timeout) in plan.items():
        # Daemon threads: an abandoned check must not keep the module process alive.
        thread = threading.Thread(target=_collect, args=(results, name, check, params, origin, on_error),
                                  name=f"check-{name}", daemon=True)
        thread.start()
        threads.append((name, thread, timeout))
    out = {}
    for name, thread, timeout in threads:
        thread.join(max(origin + timeout + GRACE_S - time.monotonic(), 0))
        if name in results:
            out[name] = results[name]
        else:
            late = dict(on_timeout(name, timeout), elapsed_s=round(time.monotonic() - origin, 3))
            out[name] = (late, 0.0)
    return out


def run_checks(plan: dict) -> dict:
    """Run {name: (check, params, timeout)} concurrently; each result is back or abandoned in time."""
    return {name: result for name, (result, _started) in run_concurrently(plan).items()}


def validate(params: dict) -> None:
    for name, key, host, port in (
        ("postgres", "connect_timeout", "login_host", "login_port"),
        ("redis", "timeout", "host", "port"),
    ):
        section = params.get(name)
        if section is None:
            continue
        if section[key] <= 0:
            raise ModuleFailure(f"{name}.{key} must be > 0")
        if not 0 < section[port] < 65536:
            raise ModuleFailure(f"{name}.{port} must be between 1 and 65535")
        if not section[host]:
            raise ModuleFailure(f"{name}.{host} must not be empty")


def plan_for(params: dict) -> dict:
    """The dependency checks a module's ``postgres`` and ``redis`` options ask for."""
    plan = {}
    if params.get("postgres") is not None:
        pg = params["postgres"]
        plan["postgresql"] = (check_postgresql, pg, pg["connect_timeout"])
    if params.get("redis") is not None:
        plan["redis"] = (check_redis, params["redis"], params["redis"]["timeout"])
    return plan


def summarize(dependencies: dict, elapsed_s: float) -> dict:
    """dependency_check's result from the checks' results: available, down, msg, dependencies."""
    down = [name for name in ORDER if name in dependencies and not dependencies[name]["available"]]
    if down:
        msg = "down: " + ", ".join(f"{name} ({dependencies[name]['state']})" for name in down)
    else:
        msg = f"available: {', '.join(name for name in ORDER if name in dependencies)}"
    return {
        "changed": False,
        "available": not down,
        "down": down,
        "msg": msg,
        "dependencies": dependencies,
        "elapsed_s": elapsed_s,
    }


def argument_spec() -> dict:
    """The ``postgres`` and ``redis`` options, the same in every module that checks them:
    community.postgresql's connection options (pg_connection) and the Redis modules' own."""
    return dict(
        postgres=dict(
            type="dict",
            options=dict(postgres_common_argument_spec(), connect_timeout=dict(type="float", default=3.0)),
        ),
        redis=dict(type="dict", options=dict(REDIS_CONNECTION_OPTIONS)),
    )
