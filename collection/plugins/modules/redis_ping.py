#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_ping
short_description: Check that Redis answers PING, and tell apart why it does not
version_added: 0.1.0
description:
  - Opens one connection with a hard timeout, authenticates when asked to (password, or ACL user
    and password), sends C(PING) and, when that works, C(INFO server).
  - Speaks RESP over a plain socket (standard library only), so a dead or hung Redis costs at most
    I(timeout) seconds, with no client-library retries.
  - A diagnostic. It never changes anything and does not fail when Redis is unavailable; it returns
    C(available=false) with the reason classified.
seealso:
  - module: pivotal.flow_ops.redis_diagnose
    description: The diagnosis, once Redis answers.
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
"""

EXAMPLES = r"""
- name: Validate that Redis answers PING
  pivotal.flow_ops.redis_ping:
    host: cache-01.prod.internal
    port: 6379
    password: "{{ vault_redis_password }}"
    timeout: 2
  register: redis_ping
"""

RETURN = r"""
available:
  description: Redis answered PING with PONG.
  returned: always
  type: bool
  sample: true
state:
  description: >-
    C(ok), C(refused), C(timeout), C(auth_failed) (WRONGPASS or invalid password), C(noauth)
    (a password is required), C(auth_not_required) (a password was sent to a Redis that has
    none for the default user), C(loading) (the dataset is still being loaded), C(max_clients),
    C(busy) (a script is running), or C(error).
  returned: always
  type: str
  sample: ok
msg:
  description: One line saying what happened.
  returned: always
  type: str
  sample: "Redis 7.0.15 at cache-01.prod.internal:6379 answered PING in 0.4 ms"
latency_ms:
  description: Round trip of the PING in milliseconds.
  returned: when available
  type: float
  sample: 0.412
server:
  description: Selected fields of C(INFO server) (redis_version, redis_mode, uptime_in_seconds).
  returned: when available
  type: dict
  sample: {redis_version: 7.0.15, redis_mode: standalone, uptime_in_seconds: 86400}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_client import CONNECTION_OPTIONS
from ansible_collections.pivotal.flow_ops.plugins.module_utils.redis_resp import check


def run_module(params: dict) -> dict:
    return check(params)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(CONNECTION_OPTIONS),
        supports_check_mode=True,
    )
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be > 0")
    module.exit_json(changed=False, **run_module(module.params))


if __name__ == "__main__":
    main()
