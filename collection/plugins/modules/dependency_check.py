#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dependency_check
short_description: Check a service's PostgreSQL and Redis dependencies at once, and tell apart why one is down
version_added: 0.1.0
description:
  - Checks every configured dependency concurrently, one thread each, so the task takes as long
    as the slowest check, not their sum, and costs one module run instead of one per dependency.
  - PostgreSQL must accept a query. The module connects (with C(application_name=pflow-ops)),
    runs C(SELECT 1) and C(SHOW server_version), and closes the connection. It needs psycopg2 on
    the target; without it the result has C(state=driver_missing).
  - Redis must answer C(PING). The module speaks RESP over a plain socket (standard library only)
    and authenticates when asked to, as M(pivotal.flow_ops.redis_ping) does.
  - Each check has a hard timeout over all its steps, fractions of a second included. Unlike
    libpq's C(connect_timeout) it does not round up to 2 s or restart for each address tried.
    Only a DNS lookup that hangs can run past the timeout. The module then stops waiting 0.5 s
    later and reports C(timeout).
  - A diagnostic. It never changes anything and does not fail when a dependency is unavailable.
    It returns C(available=false) and the reason, classified. The task fails only on bad
    parameters.
seealso:
  - module: pivotal.flow_ops.pg_diagnose
    description: PostgreSQL's full diagnosis.
  - module: pivotal.flow_ops.redis_ping
    description: The same Redis check as its own task.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only, so it checks for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - psycopg2 on the target, for the PostgreSQL check
notes:
  - PostgreSQL reports connection failures as text only (no SQLSTATE reaches the client), so
    they are told apart by the server's English messages. With a translated C(lc_messages), a
    failure comes back as C(state=error), with the server's own words in C(msg).
  - Connecting with the same role and database as the service tells the most. For example,
    C(not_allowed) and C(too_many_clients) may hit the service's role and not a superuser.
options:
  postgres:
    description: PostgreSQL to check; omit to skip it. At least one of I(postgres), I(redis) and I(resources) is required.
    type: dict
    suboptions:
      login_host:
        description: Host name or address, or the directory of the Unix socket when it starts with C(/).
        type: str
        default: 127.0.0.1
        aliases: [host]
      login_port:
        description: Port.
        type: int
        default: 5432
        aliases: [port]
      login_db:
        description: Database to connect to; libpq's default (the user name) when omitted.
        type: str
        aliases: [database, db]
      login_user:
        description: Login role; libpq's default (the OS user running the module) when omitted.
        type: str
        aliases: [user]
      login_password:
        description: Password of I(login_user).
        type: str
        aliases: [password]
      ssl_mode:
        description:
          - libpq's C(sslmode). V(verify-full) checks the server's certificate against I(ca_cert)
            and that it names I(login_host). A certificate that fails the check is C(state=error).
        type: str
        default: prefer
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: CA certificate(s) (PEM) that signed the server's certificate (libpq's C(sslrootcert)).
        type: path
        aliases: [ssl_rootcert]
      ssl_cert:
        description: Client certificate (PEM) (libpq's C(sslcert)).
        type: path
      ssl_key:
        description: Private key of I(ssl_cert) (libpq's C(sslkey)).
        type: path
      connect_params:
        description: Further libpq keywords; not the ones the module sets itself (see M(pivotal.flow_ops.pg_diagnose)).
        type: dict
        default: {}
      connect_timeout:
        description:
          - Hard limit in seconds on the whole check (connect, authenticate, both queries).
          - Also sent as the session's C(statement_timeout), so the server gives up too.
        type: float
        default: 3
  redis:
    description: Redis to check; omit to skip it.
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        default: 127.0.0.1
      port:
        description: Port.
        type: int
        default: 6379
      user:
        description: ACL user (Redis 6+); with I(password) sends C(AUTH user password).
        type: str
      password:
        description: Password; without I(user) sends C(AUTH password).
        type: str
      timeout:
        description: Hard limit in seconds on the whole check (connect, AUTH, PING, INFO).
        type: float
        default: 3
      tls:
        description: Connect with TLS.
        type: bool
        default: false
      validate_certs:
        description: Verify the server certificate and its host name when I(tls=true).
        type: bool
        default: true
        aliases: [validate_tls]
      ca_certs:
        description: CA certificate(s) (PEM) that signed the server's certificate; needs I(tls=true).
        type: path
      client_cert_file:
        description: Client certificate (PEM) for servers that ask for one; needs I(tls=true).
        type: path
      client_key_file:
        description: Private key of I(client_cert_file), when that file does not hold it.
        type: path
  resources:
    description:
      - Also read the host's infrastructure health in the same call, exactly as
        M(pivotal.flow_ops.host_resources) does (free disk on I(resources.paths), available memory,
        load per CPU), so a runbook reads the host and its dependencies with one module
        execution. Omit to skip it.
    type: dict
    suboptions:
      paths:
        description: Paths whose filesystem's free space is checked.
        type: list
        elements: path
        default: []
      thresholds:
        description: Same as the thresholds of M(pivotal.flow_ops.host_resources).
        type: dict
        default: {}
        suboptions:
          disk_free_pct_min:
            description: Minimum free disk percentage (critical below half of it).
            type: float
            default: 10
          memory_available_pct_min:
            description: Minimum available memory percentage.
            type: float
            default: 10
          load_per_cpu_max:
            description: Maximum 1-minute load average per CPU.
            type: float
            default: 2
"""

EXAMPLES = r"""
- name: Validate the backend's dependencies before any restart
  pivotal.flow_ops.dependency_check:
    postgres:
      host: db-01.prod.internal
      database: flow
      user: flow_monitor
      password: "{{ vault_flow_monitor_password }}"
      connect_timeout: 2
    redis:
      host: cache-01.prod.internal
      password: "{{ vault_redis_password }}"
      timeout: 2
  register: backend_dependencies
  check_mode: false

- name: Stop before restarting a backend whose database is down
  ansible.builtin.assert:
    that: "'postgresql' not in backend_dependencies.down"
    fail_msg: "{{ backend_dependencies.dependencies.postgresql.msg }} (see RB-02)"
"""

RETURN = r"""
resources:
  description:
    - With I(resources), the host's infrastructure health in the shape M(pivotal.flow_ops.host_resources)
      returns (C(disks), C(memory), C(load), C(findings), C(status)). It does not count in C(available).
  returned: when resources is given
  type: dict
available:
  description: Every configured dependency is available.
  returned: always
  type: bool
down:
  description: Names of the dependencies that are not available, in the order postgresql, redis.
  returned: always
  type: list
  elements: str
  sample: [redis]
msg:
  description: One line summing up the checks.
  returned: always
  type: str
  sample: "down: redis (refused)"
elapsed_s:
  description: Wall time of all the checks together.
  returned: always
  type: float
dependencies:
  description:
    - One entry per configured dependency, keyed C(postgresql) and C(redis). Both have the same keys.
    - C(available) tells whether PostgreSQL answered C(SELECT 1), or Redis answered C(PING) with C(PONG).
    - C(msg) is one line saying what happened, without the password.
    - C(latency_ms) is the round trip of C(SELECT 1) or C(PING) in milliseconds, null when unavailable.
    - C(server_version) is the server's version, null when unknown.
    - C(elapsed_s) is the wall time of this check.
    - >-
      C(state) for PostgreSQL is one of C(ok), C(refused) (nothing listens), C(timeout) (no
      answer in time), C(auth_failed) (wrong password or unknown role), C(not_allowed) (no
      pg_hba.conf entry for this host, user and database), C(too_many_clients) (no connection
      slot left: max_connections, reserved slots, or a role or database connection limit),
      C(starting_up), C(shutting_down), C(database_missing), C(driver_missing) (psycopg2 absent
      on the target) or C(error).
    - >-
      C(state) for Redis is one of C(ok), C(refused), C(timeout), C(auth_failed), C(noauth) (a
      password is required), C(loading), C(max_clients), C(busy) or C(error), as returned by
      M(pivotal.flow_ops.redis_ping).
  returned: always
  type: dict
  sample:
    postgresql: {available: true, state: ok, latency_ms: 0.41, elapsed_s: 0.012,
                 server_version: "15.10 (Debian 15.10-0+deb12u1)",
                 msg: "PostgreSQL 15.10 at db-01:5432/flow answered SELECT 1 in 0.4 ms"}
    redis: {available: false, state: refused, latency_ms: null, server_version: null, elapsed_s: 0.001,
            msg: "Redis at cache-01:6379: refused ([Errno 111] Connection refused)"}
"""

import threading
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_check, redis_resp
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_connection import postgres_common_argument_spec
from ansible_collections.pivotal.flow_ops.plugins.module_utils.host_checks import (
    HostCheckError,
    check_host,
    host_checks_argument_spec,
)
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


def _collect(results: dict, name: str, check, params: dict) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    try:
        result = check(params)
    except Exception as exc:  # a bug in one check must not hide the others' results
        result = _failed(f"{name}: unexpected {type(exc).__name__}: {exc}")
    result["elapsed_s"] = round(time.monotonic() - started, 3)
    results[name] = result


def _failed(msg: str, state: str = "error") -> dict:
    return {"available": False, "state": state, "msg": msg, "latency_ms": None, "server_version": None}


def run_checks(plan: dict) -> dict:
    """Run {name: (check, params, timeout)} concurrently; each result is back or abandoned in time."""
    started = time.monotonic()
    results: dict = {}
    threads = []
    for name, (check, params, timeout) in plan.items():
        # Daemon threads: an abandoned check must not keep the module process alive.
        thread = threading.Thread(
            target=_collect, args=(results, name, check, params), name=f"check-{name}", daemon=True
        )
        thread.start()
        threads.append((name, thread, timeout))
    out = {}
    for name, thread, timeout in threads:
        thread.join(max(started + timeout + GRACE_S - time.monotonic(), 0))
        out[name] = results.get(name) or dict(
            _failed(f"{name}: timeout (no result within {timeout:g} s; name lookup hung?)", "timeout"),
            elapsed_s=round(time.monotonic() - started, 3),
        )
    return out


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


def run_module(params: dict) -> dict:
    started = time.monotonic()
    validate(params)
    plan = {}
    if params.get("postgres") is not None:
        pg = params["postgres"]
        plan["postgresql"] = (check_postgresql, pg, pg["connect_timeout"])
    if params.get("redis") is not None:
        plan["redis"] = (check_redis, params["redis"], params["redis"]["timeout"])
    resources = None
    if params.get("resources") is not None:
        try:  # local reads (statvfs, /proc): milliseconds, before the network checks start
            resources = check_host(params["resources"])
        except HostCheckError as exc:
            raise ModuleFailure(f"resources: {exc}") from exc
        resources.pop("changed", None)
    dependencies = run_checks(plan)
    down = [name for name in ORDER if name in dependencies and not dependencies[name]["available"]]
    if down:
        msg = "down: " + ", ".join(f"{name} ({dependencies[name]['state']})" for name in down)
    else:
        msg = f"available: {', '.join(name for name in ORDER if name in dependencies)}"
    result = {
        "changed": False,
        "available": not down,
        "down": down,
        "msg": msg,
        "dependencies": dependencies,
        "elapsed_s": round(time.monotonic() - started, 3),
    }
    if resources is not None:
        result["resources"] = resources
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            postgres=dict(
                type="dict",
                options=dict(postgres_common_argument_spec(), connect_timeout=dict(type="float", default=3.0)),
            ),
            redis=dict(
                type="dict",
                options=dict(REDIS_CONNECTION_OPTIONS),
            ),
            resources=dict(type="dict", options=host_checks_argument_spec()),
        ),
        required_one_of=[("postgres", "redis", "resources")],
        supports_check_mode=True,
    )
    try:
        result = run_module(module.params)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
