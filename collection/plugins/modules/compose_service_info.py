#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_service_info
short_description: Report the containers of one Docker Compose service
version_added: 0.6.0
description:
  - Finds a service's containers through the Docker API by the labels Compose puts on them
    (C(com.docker.compose.project), C(com.docker.compose.service)), so it works for projects created
    by Compose v1 or v2 and needs no Compose CLI on the target.
  - Reports each replica's state (running, exited with its exit code, restarting, OOM-killed),
    health status when the container has a healthcheck, restart count, start time and the tail of
    its logs.
  - It changes nothing and does not fail when the engine cannot be reached or the project does not
    exist; it returns RV(reachable=false) and the reason in one line, so a runbook can report the
    engine as a finding and escalate.
  - Replaces C(state=info) of M(pivotal.flow_ops.compose_service), removed in 0.6.0.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - pivotal.flow_ops.docker
  - pivotal.flow_ops.action_groups.docker_group
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: N/A
  platform:
    platforms: posix
options:
  project:
    description: Compose project name (the C(com.docker.compose.project) label).
    type: str
    required: true
  service:
    description: Compose service name (the C(com.docker.compose.service) label).
    type: str
    required: true
  log_lines:
    description: Lines of each replica's log (stdout and stderr) to return. C(0) disables.
    type: int
    default: 50
seealso:
  - module: pivotal.flow_ops.compose_service
    description: Rolling restart of the same service's replicas, each gated on its health.
  - module: community.docker.docker_container_info
    description: One container's full inspect data, by name or id.
  - module: community.docker.docker_compose_v2
    description: Bring a Compose v2 project up or down, or recreate its containers.
"""

EXAMPLES = r"""
- name: Read the backend containers' state and log tail
  pivotal.flow_ops.compose_service_info:
    project: pivotal-flow
    service: backend
  register: backend_containers

- name: Read a remote engine's postgres containers over TLS
  pivotal.flow_ops.compose_service_info:
    project: pivotal-flow
    service: postgres
    docker_host: tcp://docker.example.internal:2376
    validate_certs: true
    ca_path: /etc/pflow-ops/docker/ca.pem
    client_cert: /etc/pflow-ops/docker/cert.pem
    client_key: /etc/pflow-ops/docker/key.pem
    timeout: 30
    log_lines: 0
  register: postgres_containers
"""

RETURN = r"""
reachable:
  description:
    - Whether the engine answered and the service has containers. C(false) for an engine that is
      down or refuses us, a project or a service with no container; RV(msg) says which.
  type: bool
  returned: always
  sample: true
found:
  description: Whether the service has at least one container in the project.
  type: bool
  returned: always
  sample: true
running:
  description: Whether every replica is running.
  type: bool
  returned: always
  sample: false
state:
  description:
    - C(running), or the state of the first replica that is not running
      (C(exited (exit code N)), C(oom_killed), C(restarting), C(paused), C(created), C(dead)),
      C(not_found), or C(unreachable).
  type: str
  returned: always
  sample: exited (exit code 137)
pid:
  description:
    - Identity of the first replica's current run, C(<short id>@<started at>); changes on every
      restart. Null when that replica is not running.
  type: str
  returned: always
  sample: 3f2a9c1d7b4e@2026-12-05T10:41:07
instances:
  description: One entry per replica, by container number.
  type: list
  elements: dict
  returned: always
  sample:
    - id: 3f2a9c1d7b4e
      name: pivotal-flow-backend-1
      number: 1
      state: running
      running: true
      exit_code: 0
      oom_killed: false
      health: healthy
      restart_count: 0
      started_at: "2026-12-05T10:41:07.512943761Z"
  contains:
    id: {description: Short container id., type: str}
    name: {description: Container name., type: str}
    number: {description: Compose container number., type: int}
    state: {description: "As RV(state), for this replica.", type: str}
    running: {description: Whether the container is running., type: bool}
    exit_code: {description: Exit code of the last run., type: int}
    oom_killed: {description: Whether the kernel OOM killer ended the last run., type: bool}
    health: {description: "Healthcheck status (healthy, unhealthy, starting), null without one.", type: str}
    restart_count: {description: Restarts done by the engine's restart policy., type: int}
    started_at: {description: Start time of the current or last run (RFC 3339)., type: str}
detail:
  description: One sentence on the service and each replica, for the report.
  type: str
  returned: always
  sample: "compose service 'backend' (2 replica(s)): pivotal-flow-backend-1 running, healthy; [...]-2 oom_killed"
logs:
  description: The last O(log_lines) lines of each replica, prefixed C(<container name> | ) when several.
  type: list
  elements: str
  returned: always
  sample: ["pivotal-flow-backend-1 | listening on 3000"]
msg:
  description: Why the engine or the project could not be reached; empty otherwise.
  type: str
  returned: always
  sample: Docker engine at unix:///var/run/docker.sock is not running (the socket does not exist)
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.pivotal.flow_ops.plugins.module_utils.compose import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    INFO_SPEC,
    run,
)


def main() -> None:
    module = AnsibleModule(argument_spec=INFO_SPEC, supports_check_mode=True)
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    module.exit_json(changed=False, **run(module.params))


if __name__ == "__main__":
    main()
