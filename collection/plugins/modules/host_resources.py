#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_resources
short_description: Report disk, memory and load health of the host a service runs on
version_added: 0.1.0
description:
  - Reads C(statvfs) for each of I(paths), C(/proc/meminfo) and the load average, compares them
    with I(thresholds) and returns the numbers plus one finding per check.
  - A check is C(warning) past its threshold and C(critical) past twice as far (free space or
    available memory below half the minimum, load per CPU above twice the maximum). C(unknown)
    means the data could not be read (no C(/proc/meminfo) on this platform, unreadable filesystem).
  - Read-only and cheap (no subprocess); it runs for real in check mode and always reports
    C(changed=false). Unhealthy findings are results, not task failures.
seealso:
  - module: ansible.builtin.setup
    description: The host's facts (mounts, memory) without thresholds.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only, so it runs for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  paths:
    description:
      - Paths whose filesystem free space to check (data directory, log directory, ...). A missing
        path is checked through its nearest existing parent, on which it would be created.
    type: list
    elements: path
    default: []
  thresholds:
    description: Limits that turn a check into a warning.
    type: dict
    default: {}
    suboptions:
      disk_free_pct_min:
        description: Minimum free space, in percent of the filesystem.
        type: float
        default: 10
      memory_available_pct_min:
        description: Minimum available memory (C(MemAvailable)), in percent of total memory.
        type: float
        default: 10
      load_per_cpu_max:
        description: Maximum 1-minute load average per usable CPU.
        type: float
        default: 2.0
"""

EXAMPLES = r"""
- name: Check the backend host's disk, memory and load
  pivotal.flow_ops.host_resources:
    paths:
      - /var/lib/pflow
      - /var/log/pflow
    thresholds:
      disk_free_pct_min: 15
  register: backend_host
"""

RETURN = r"""
disks:
  description:
    - One entry per path, in the order given. C(status) is unknown, with null numbers, when the
      filesystem cannot be read or has no block accounting.
  type: list
  elements: dict
  returned: always
  sample:
    - {path: /var/log/pflow, exists: true, checked_path: /var/log/pflow, mount_point: /,
       total_bytes: 46499332096, free_bytes: 19541180416, free_pct: 42.0, status: ok}
memory:
  description: From C(/proc/meminfo); byte counts are null and status unknown where it does not exist.
  type: dict
  returned: always
  sample: {total_bytes: 8221904896, available_bytes: 5018927104, available_pct: 61.0,
           swap_total_bytes: 2147479552, swap_free_bytes: 2147479552, status: ok}
load:
  description: Load averages and the 1-minute load per usable CPU (CPU affinity, not just the CPU count).
  type: dict
  returned: always
  sample: {load1: 0.52, load5: 0.61, load15: 0.58, cpus: 4, load1_per_cpu: 0.13, status: ok}
findings:
  description: One finding per check, C(status) one of ok, warning, critical, unknown.
  type: list
  elements: dict
  returned: always
  sample:
    - {check: "disk_free:/var/log/pflow", status: ok, detail: "42.0% free (18.2 GiB of 43.3 GiB), min 10%"}
    - {check: memory_available, status: ok, detail: "61.0% available (4.7 GiB of 7.7 GiB), min 10%"}
    - {check: load_per_cpu, status: ok, detail: "load1 0.52 on 4 CPUs = 0.13 per CPU, max 2"}
status:
  description: Worst status among the findings.
  type: str
  returned: always
  sample: ok
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.host_checks import (
    HostCheckError,
    check_host,
    host_checks_argument_spec,
)

# The checks live in module_utils/host_checks.py (dependency_check runs them too).
ModuleFailure = HostCheckError


def run_module(params: dict) -> dict:
    return check_host(params)


def main() -> None:
    module = AnsibleModule(
        argument_spec=host_checks_argument_spec(),
        supports_check_mode=True,
    )
    try:
        result = run_module(module.params)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
