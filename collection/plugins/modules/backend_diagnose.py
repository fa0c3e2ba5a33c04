#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backend_diagnose
short_description: Investigate a backend service (RB-01) in one module execution, every check at once
version_added: 0.6.0
description:
  - Runs RB-01's whole investigation concurrently, one thread per check, each with its own
    timeout. The checks are the service manager's view of the backend (supervisord over XML-RPC,
    or the Compose service's containers through the Docker API), the host's resources (free disk,
    available memory, load per CPU), the PostgreSQL and Redis dependencies, the health endpoint
    (naming the process that holds its port) and then, when it is healthy, a sample of the API.
  - With O(node), the Node.js signals as M(pivotal.flow_ops.node_signals) reads them, the metrics
    at once, then the process and the log tail as soon as the service manager has named them.
  - Each result has the shape of the module that runs the same check on its own
    (M(pivotal.flow_ops.supervisor_program_info) or M(pivotal.flow_ops.compose_service_info) in
    the service manager's neutral form, M(pivotal.flow_ops.host_resources),
    M(pivotal.flow_ops.dependency_check), M(pivotal.flow_ops.http_health)), so the decision
    filters read it unchanged. Those modules stay for direct use.
  - One execution instead of five, because each module execution costs Ansible far more than these checks.
  - A diagnostic. It never changes anything. An unavailable service, manager or dependency is a
    result. The task fails on bad parameters, credentials the service manager refuses, a program
    it does not know, or a missing Docker SDK (with O(manager=compose)).
seealso:
  - module: pivotal.flow_ops.dependency_check
    description: The dependency and resource checks alone.
  - module: pivotal.flow_ops.http_health
    description: The health probe alone, with a gate and a soak.
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
  - the Docker SDK for Python on the target, with O(manager=compose)
options:
  service:
    description: The backend's name in its service manager (supervisord program, Compose service).
    type: str
    required: true
  manager:
    description: The service manager.
    type: str
    choices: [supervisord, compose]
    default: supervisord
  manager_timeout:
    description: Seconds the service manager check may take before it counts as unreachable.
    type: float
    default: 15
  log_lines:
    description: Lines of the service's recent log to return. V(0) disables.
    type: int
    default: 50
  supervisor:
    description:
      - How to reach supervisord, with O(manager=supervisord).
      - O(supervisor) and O(compose) may both be given (one inventory, either manager); the module
        uses the one O(manager) names and ignores the other.
    type: dict
    suboptions:
      server_url:
        description: C(unix:///path/to/supervisor.sock) or C(http://host:port).
        type: str
      username:
        description: User for supervisord's HTTP basic authentication.
        type: str
      password:
        description: Password of O(supervisor.username).
        type: str
  compose:
    description: How to reach the Docker engine, with O(manager=compose); the options of M(pivotal.flow_ops.compose_service_info).
    type: dict
    suboptions:
      project:
        description: Compose project name (the C(com.docker.compose.project) label).
        type: str
      docker_host:
        description: The engine's API, C(unix://) socket or C(tcp://host:port).
        type: str
        default: unix:///var/run/docker.sock
      api_version:
        description: Docker API version to speak, or C(auto) to ask the engine.
        type: str
        default: auto
      timeout:
        description: Seconds to wait for each answer of the engine.
        type: int
        default: 60
      tls:
        description: Connect with TLS without verifying the engine's certificate.
        type: bool
        default: false
      validate_certs:
        description: Connect with TLS and verify the engine's certificate.
        type: bool
        default: false
      ca_path:
        description: CA certificate that signed the engine's certificate.
        type: path
      client_cert:
        description: Client certificate presented to the engine.
        type: path
      client_key:
        description: Private key of O(compose.client_cert).
        type: path
  health_url:
    description:
      - The backend's health endpoint (C(http://) or C(https://)).
      - When the service manager says the backend is not running while something answers there, the
        process holding the port is named (C(health.listener)), as M(pivotal.flow_ops.http_health)
        with its C(port_owner) option does; otherwise C(health.listener) is null.
    type: str
    required: true
  health_timeout:
    description: Seconds per probe, for the health endpoint and each API sample.
    type: float
    default: 2
  probe_url:
    description: API URL sampled for the error rate and latency when the health endpoint is healthy; empty to skip.
    type: str
    default: ""
  probe_samples:
    description: Requests sent back to back to O(probe_url).
    type: int
    default: 20
  node:
    description: Read the backend's Node.js signals too, as M(pivotal.flow_ops.node_signals) does; omit to skip.
    type: dict
    suboptions:
      metrics_url:
        description: The backend's prom-client metrics URL; empty skips the metrics.
        type: str
        default: ""
      timeout:
        description: Seconds to wait for the metrics endpoint.
        type: float
        default: 1.0
      cpu_sample_seconds:
        description: Seconds between the two C(/proc) samples of the process, taken only when the metrics did not answer.
        type: float
        default: 0.5
"""

EXAMPLES = r"""
- name: Investigate the backend
  pivotal.flow_ops.backend_diagnose:
    service: backend
    supervisor:
      server_url: unix:///run/supervisor.sock
    health_url: http://127.0.0.1:3000/health
    probe_url: http://127.0.0.1:3000/api/items
    resources:
      paths: [/srv/backend]
    postgres:
      host: db-01.prod.internal
      database: flow
      user: flow_monitor
      password: "{{ vault_flow_monitor_password }}"
    redis:
      host: cache-01.prod.internal
  register: backend_diagnosis
  check_mode: false
"""

RETURN = r"""
status:
  description:
    - The service as its manager sees it, in the manager-neutral shape of the service_manager role's
      C(service_manager_status) (manager, name, reachable, found, running, state, pid, detail, msg,
      logs, instances).
  returned: always
  type: dict
resources:
  description: The host's infrastructure health as M(pivotal.flow_ops.host_resources) returns it; null without O(resources).
  returned: always
  type: dict
dependencies:
  description: The dependencies as M(pivotal.flow_ops.dependency_check) returns them (available, down, msg, dependencies, elapsed_s).
  returned: always
  type: dict
health:
  description: The health endpoint as M(pivotal.flow_ops.http_health) returns it (C(listener) as O(health_url) says).
  returned: always
  type: dict
probe:
  description: The API sample as M(pivotal.flow_ops.http_health) returns it, or C(skipped=true) when not sampled.
  returned: always
  type: dict
node:
  description: The Node.js signals as M(pivotal.flow_ops.node_signals) returns them (metrics, metrics_error, process, logs); null without O(node).
  returned: always
  type: dict
timeline:
  description:
    - One row per check, in the runbook's order. C(check) names it, C(step) is the runbook step
      it stands for, C(start_s) is its start in seconds from the module's start, C(duration_s)
      its duration, C(status) what it saw (ok, warning, critical, timeout, skipped, unknown) and
      C(detail) one line.
  returned: always
  type: list
  elements: dict
  sample:
    - {check: service_status, step: Verify the backend service status through its service manager, start_s: 0.001,
       duration_s: 0.012, status: critical, detail: "supervisord program 'backend': not running (EXITED, killed by SIGKILL)"}
elapsed_s:
  description: Wall time of the whole investigation.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.backend_diagnosis import ModuleFailure, diagnose
from ansible_collections.pivotal.flow_ops.plugins.module_utils.compose_spec import CONNECTION_SPEC
from ansible_collections.pivotal.flow_ops.plugins.module_utils.dependency_checks import argument_spec
from ansible_collections.pivotal.flow_ops.plugins.module_utils.host_checks import host_checks_argument_spec

# The engine options without community.docker's aliases and environment fallbacks: inside a dict
# they would only be surprises; the role passes every value it means.
COMPOSE_SPEC = dict(
    project=dict(type="str"),
    **{k: {kk: vv for kk, vv in v.items() if kk not in ("aliases", "fallback")} for k, v in CONNECTION_SPEC.items()}
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            argument_spec(),
            service=dict(type="str", required=True),
            manager=dict(type="str", choices=["supervisord", "compose"], default="supervisord"),
            manager_timeout=dict(type="float", default=15.0),
            log_lines=dict(type="int", default=50),
            supervisor=dict(type="dict", options=dict(server_url=dict(type="str"), username=dict(type="str"),
                                                      password=dict(type="str", no_log=True))),
            compose=dict(type="dict", options=COMPOSE_SPEC),
            health_url=dict(type="str", required=True),
            health_timeout=dict(type="float", default=2.0),
            probe_url=dict(type="str", default=""),
            probe_samples=dict(type="int", default=20),
            resources=dict(type="dict", options=host_checks_argument_spec()),
            node=dict(type="dict", options=dict(metrics_url=dict(type="str", default=""),
                                                timeout=dict(type="float", default=1.0),
                                                cpu_sample_seconds=dict(type="float", default=0.5))),
        ),
        supports_check_mode=True,
    )
    try:
        result, warnings = diagnose(module.params)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), changed=False)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
