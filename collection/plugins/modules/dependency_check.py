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
  - At least one of O(postgres), O(redis) and O(resources) is required.
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
  - pivotal.flow_ops.dependencies
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

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.dependency_checks import (
    GRACE_S,
    ModuleFailure,
    argument_spec,
    check_postgresql,
    check_redis,
    plan_for,
    run_checks,
    summarize,
    validate,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.host_checks import (
    HostCheckError,
    check_host,
    host_checks_argument_spec,
)

# The checks live in module_utils/dependency_checks.py (backend_diagnose runs the same ones);
# named here too, for callers that load this module to run a check on its own.
__all__ = ["GRACE_S", "ModuleFailure", "check_postgresql", "check_redis", "run_checks", "run_module"]


def run_module(params: dict) -> dict:
    started = time.monotonic()
    validate(params)
    plan = plan_for(params)
    resources = None
    if params.get("resources") is not None:
        try:  # local reads (statvfs, /proc): milliseconds, before the network checks start
            resources = check_host(params["resources"])
        except HostCheckError as exc:
            raise ModuleFailure(f"resources: {exc}") from exc
        resources.pop("changed", None)
    result = summarize(run_checks(plan), 0.0)
    result["elapsed_s"] = round(time.monotonic() - started, 3)
    if resources is not None:
        result["resources"] = resources
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(argument_spec(), resources=dict(type="dict", options=host_checks_argument_spec())),
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
