#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_service
short_description: Rolling-restart the containers of one Docker Compose service
version_added: 0.2.0
description:
  - Finds a service's containers through the Docker API by the labels Compose puts on them
    (C(com.docker.compose.project), C(com.docker.compose.service)), so it works for projects created
    by Compose v1 or v2 and needs no Compose CLI on the target.
  - Restarts the replicas one at a time (rolling) and, after each one, waits until it is
    C(healthy) (containers with a healthcheck) or has stayed running for O(stable_seconds)
    (containers without one). It stops at the first replica that does not come back, leaving the
    others untouched. In check mode it only reports what it would restart.
  - It also returns what M(pivotal.flow_ops.compose_service_info) reports, read before the restart.
    An engine that is down, refuses the connection or whose socket we may not open is reported
    (RV(reachable=false), one line in RV(msg)), not failed.
  - Talks to the engine through the Docker SDK for Python, with community.docker's connection
    options (O(docker_host), TLS, O(timeout), ...); it does not need the community.docker collection.
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
    support: none
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
  state:
    description:
      - C(restarted) restarts every replica, one at a time, with a health gate after each.
      - Required, so that a task written for the C(info) state this module had before 0.6.0 fails
        instead of restarting; use M(pivotal.flow_ops.compose_service_info) to read.
    type: str
    choices: [restarted]
    required: true
  log_lines:
    description: Lines of each replica's log (stdout and stderr) to return (read before any action). C(0) disables.
    type: int
    default: 50
  stop_timeout:
    description:
      - Seconds each container gets to stop on SIGTERM before the engine kills it.
      - The API call of each restart may take O(timeout) plus this long.
    type: int
    default: 10
  health_timeout:
    description: Seconds to wait for each restarted replica to become healthy (or stable).
    type: float
    default: 60
  stable_seconds:
    description: For containers without a healthcheck, how long a replica must stay running to pass.
    type: float
    default: 3
  gate_url:
    description:
      - When set, after the rolling restart held, probe this URL as M(pivotal.flow_ops.http_health)
        does until it answers 200 (the health gate), then for O(soak_seconds) (the soak), in the same
        module execution. RV(http_gate) is that module's result. Empty for no HTTP gate.
      - Either way a real run ends by reading the service's containers again (RV(status_after)).
    type: str
    default: ""
  gate_timeout:
    description: Seconds the health gate waits for a healthy answer.
    type: float
    default: 30
  gate_interval:
    description: Seconds between the starts of two probes, in the gate and the soak.
    type: float
    default: 0.5
  gate_probe_timeout:
    description: Seconds per probe.
    type: float
    default: 2
  soak_seconds:
    description: Seconds to keep probing after the gate passed; any failed probe makes RV(http_gate) unhealthy.
    type: float
    default: 0
seealso:
  - module: pivotal.flow_ops.compose_service_info
    description: Read the same service's replicas (state, health, log tail) without changing them.
  - module: community.docker.docker_container
    description: Manage one container, including C(restarted), without a health gate.
"""

EXAMPLES = r"""
- name: Restart the backend replicas one at a time
  pivotal.flow_ops.compose_service:
    project: pivotal-flow
    service: backend
    docker_host: unix:///var/run/docker.sock
    state: restarted
    log_lines: 0
  register: backend_restart

- name: Restart a remote engine's postgres container over TLS
  pivotal.flow_ops.compose_service:
    project: pivotal-flow
    service: postgres
    state: restarted
    docker_host: tcp://docker.example.internal:2376
    validate_certs: true
    ca_path: /etc/pflow-ops/docker/ca.pem
    client_cert: /etc/pflow-ops/docker/cert.pem
    client_key: /etc/pflow-ops/docker/key.pem
    stop_timeout: 30
    health_timeout: 120
  register: postgres_restart
"""

RETURN = r"""
reachable:
  description:
    - Whether the engine answered and the service has containers to act on. C(false) for an engine
      that is down or refuses us, a project or a service with no container; RV(msg) says which.
  type: bool
  returned: always
  sample: true
found:
  description: Whether the service has at least one container in the project.
  type: bool
  returned: always
  sample: true
running:
  description: Whether every replica was running before the restart.
  type: bool
  returned: always
  sample: false
state:
  description:
    - Before the restart, C(running), or the state of the first replica that is not running
      (C(exited (exit code N)), C(oom_killed), C(restarting), C(paused), C(created), C(dead)),
      C(not_found), or C(unreachable).
  type: str
  returned: always
  sample: exited (exit code 137)
pid:
  description:
    - Identity of the first replica's run before the restart, C(<short id>@<started at>). Null when
      that replica was not running.
  type: str
  returned: always
  sample: 3f2a9c1d7b4e@2026-12-05T10:41:07
instances:
  description:
    - One entry per replica, by container number, as found before any action (the shape of
      RV(pivotal.flow_ops.compose_service_info#module:instances)).
  type: list
  elements: dict
  returned: always
  sample:
    - id: 3f2a9c1d7b4e
      name: pivotal-flow-backend-1
      number: 1
      state: exited (exit code 137)
      running: false
      exit_code: 137
      oom_killed: false
      health: unhealthy
      restart_count: 0
      started_at: "2026-12-05T10:41:07.512943761Z"
detail:
  description: One sentence on the service and each replica before the restart, for the report.
  type: str
  returned: always
  sample: "compose service 'backend' (1 replica(s)): pivotal-flow-backend-1 exited (exit code 137)"
logs:
  description: The last O(log_lines) lines of each replica, read before the restart.
  type: list
  elements: str
  returned: always
  sample: ["pivotal-flow-backend-1 | listening on 3000"]
restarted:
  description: One entry per replica restarted (or that would be in check mode), in order.
  type: list
  elements: dict
  returned: always
  sample:
    - name: pivotal-flow-backend-1
      ok: true
      detail: pivotal-flow-backend-1 healthy after 1.52 s
      started_before: "2026-12-05T10:41:07.512943761Z"
      started_after: "2026-12-05T10:52:31.004122578Z"
      waited_s: 1.52
  contains:
    name: {description: Container name., type: str}
    ok: {description: Whether it passed its gate (always true in check mode)., type: bool}
    detail: {description: One sentence on what happened., type: str}
    started_before: {description: Start time before the restart., type: str}
    started_after: {description: Start time after the restart (null in check mode)., type: str}
    waited_s: {description: Seconds spent waiting for the gate., type: float}
ok:
  description: Whether every replica came back healthy (C(false) if one did not, or none exists).
  type: bool
  returned: always
  sample: true
instances_after:
  description: The replicas after the restart, same shape as RV(instances); empty in check mode.
  type: list
  elements: dict
  returned: always
  sample: []
http_gate:
  description: The health gate and soak on O(gate_url), as M(pivotal.flow_ops.http_health) returns them.
  type: dict
  returned: when gate_url is set, the restart held and not in check mode
status_after:
  description:
    - The service read again after the restart, the gate and the soak, as
      M(pivotal.flow_ops.compose_service_info) returns it (with the last 20 log lines of each replica).
  type: dict
  returned: when not in check mode and the service has containers
msg:
  description: Why the engine or the project could not be reached, or why the restart stopped.
  type: str
  returned: always
  sample: "pivotal-flow-backend-1 stopped again: oom_killed"
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.pivotal.flow_ops.plugins.module_utils.compose import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    INFO_SPEC,
    run,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.compose_restart import restart_gated
from ansible_collections.pivotal.flow_ops.plugins.module_utils.http_probe import ProbeError, Target

ARGUMENT_SPEC: dict[str, Any] = {
    **INFO_SPEC,
    "state": {"type": "str", "choices": ["restarted"], "required": True},
    "stop_timeout": {"type": "int", "default": 10},
    "health_timeout": {"type": "float", "default": 60},
    "stable_seconds": {"type": "float", "default": 3},
    "gate_url": {"type": "str", "default": ""},
    "gate_timeout": {"type": "float", "default": 30},
    "gate_interval": {"type": "float", "default": 0.5},
    "gate_probe_timeout": {"type": "float", "default": 2},
    "soak_seconds": {"type": "float", "default": 0},
}
# Where the engine, the project or the service cannot be acted on, nothing was restarted.
NOTHING_RESTARTED = {"ok": False, "restarted": [], "instances_after": []}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    params = module.params
    if params["gate_url"]:
        try:
            Target(params["gate_url"], True)
        except ProbeError as exc:
            module.fail_json(msg=f"gate_url: {exc}")
        if params["gate_timeout"] <= 0 or params["gate_interval"] < 0.01 or params["gate_probe_timeout"] <= 0:
            module.fail_json(msg="gate_timeout and gate_probe_timeout must be > 0, gate_interval >= 0.01")
        if params["soak_seconds"] < 0:
            module.fail_json(msg="soak_seconds must be >= 0")

    def restart(client: Any, containers: list[dict[str, Any]]) -> dict[str, Any]:
        return restart_gated(client, containers, params, module.check_mode)

    result = {"changed": False, **NOTHING_RESTARTED, **run(params, restart)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
