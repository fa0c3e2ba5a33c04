#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_signals
short_description: Read a Node.js service's own failure signals
version_added: 0.6.0
description:
  - Reads what a Node.js engineer looks at first when a service misbehaves, and returns it as
    data for RB-01's classification (C(pivotal.flow_ops.backend_node_diagnosis)).
  - The prom-client values of its metrics endpoint (event loop lag, heap used, the heap limit,
    resident memory, active handles, the Node.js version) when the endpoint answers.
  - Its process, sampled from C(/proc) on the target over I(cpu_sample_seconds), gives the state letter
    (C(R) running, C(S) sleeping, C(T) stopped) and the share of a CPU it used, which tells a
    blocked event loop (busy) from a stopped process. When the metrics answered, the event loop
    runs, so the state is read once, with no CPU sample.
  - The lines of its log tail that name a Node.js failure (V8's C(FATAL ERROR ... heap limit) and
    the C(--report-on-fatalerror) report file, an unhandled promise rejection and its stack,
    C(EADDRINUSE)), counting heap-limit aborts over the whole tail.
  - Read-only; it runs for real in check mode and always reports C(changed=false).
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only, so it reads for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  metrics_url:
    description: The service's prom-client metrics URL; empty skips the metrics.
    type: str
    default: ""
  pid:
    description:
      - The service's process id on the target (the service manager's); empty, or not a number
        (a container id), skips the process sample.
    type: raw
  log_lines:
    description: The service's recent log lines (the service manager's log tail).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for the metrics endpoint.
    type: float
    default: 1.0
  cpu_sample_seconds:
    description: Seconds between the two C(/proc) samples of the process.
    type: float
    default: 0.5
"""

EXAMPLES = r"""
- name: Read the backend's Node.js signals
  pivotal.flow_ops.node_signals:
    metrics_url: http://127.0.0.1:3000/metrics
    pid: "{{ service_manager_status.pid }}"
    log_lines: "{{ service_manager_status.logs }}"
  register: backend_node_signals
"""

RETURN = r"""
metrics:
  description: prom-client values found (eventloop_lag_s, heap_used_bytes, heap_limit_bytes, rss_bytes, ...).
  type: dict
  returned: always
  sample: {"eventloop_lag_s": 0.004, "heap_used_bytes": 14408960, "version": "v20.20.2"}
metrics_error:
  description: Why the metrics could not be read; empty when they were.
  type: str
  returned: always
process:
  description: The process sample, {state, cpu_share}, or {error}; empty without a pid.
  type: dict
  returned: always
  sample: {"state": "R", "cpu_share": 0.98}
logs:
  description: heap_limit, heap_limit_crashes, unhandled_rejection, rejection_stack, addr_in_use, report_file.
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils import node_signals


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            metrics_url=dict(type="str", default=""),
            pid=dict(type="raw"),
            log_lines=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=1.0),
            cpu_sample_seconds=dict(type="float", default=0.5),
        ),
        supports_check_mode=True,
    )
    params = module.params
    metrics, error = node_signals.fetch_metrics(params["metrics_url"], params["timeout"])
    module.exit_json(changed=False, **node_signals.signals(metrics, error, params["pid"], params["log_lines"],
                                                           params["cpu_sample_seconds"]))


if __name__ == "__main__":
    main()
