#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: supervisor_program_info
short_description: Read one supervisord program's state and log tail over XML-RPC
version_added: 0.6.0
description:
  - Talks to supervisord's XML-RPC API directly (no C(supervisorctl) process), over its unix socket
    or its HTTP port, and reports the program's process state, how its last process ended and the
    tail of its stdout log.
  - A diagnostic; it changes nothing and does not fail when supervisord is unreachable (it returns
    RV(reachable=false) and the reason). It fails on bad parameters, rejected credentials or an
    unknown program (the message lists the programs supervisord knows).
seealso:
  - module: pivotal.flow_ops.supervisor_program
    description: Start, stop or restart the program.
  - module: community.general.supervisorctl
    description: Program actions through the C(supervisorctl) command on the target.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pivotal.flow_ops.action_groups.supervisor_group
  - pivotal.flow_ops.supervisor
attributes:
  check_mode:
    support: full
    details: The module changes nothing; check mode runs it as usual.
  diff_mode:
    support: N/A
    details: The module changes nothing.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Read the backend's process state and log tail
  pivotal.flow_ops.supervisor_program_info:
    name: backend
    server_url: unix:///run/supervisor/supervisor.sock
  register: backend_proc

- name: Read it over HTTP with credentials, without the log
  pivotal.flow_ops.supervisor_program_info:
    name: backend
    server_url: http://127.0.0.1:9001
    username: ops
    password: "{{ supervisor_password }}"
    log_lines: 0
  register: backend_proc
"""

RETURN = r"""
reachable:
  description: Whether supervisord answered.
  type: bool
  returned: always
  sample: true
program:
  description: The program; null when supervisord is unreachable.
  type: dict
  returned: always
  contains:
    name: {description: Program name., type: str}
    group: {description: Group name., type: str}
    state:
      description: supervisord state name (RUNNING, STARTING, BACKOFF, STOPPING, STOPPED, EXITED, FATAL, UNKNOWN).
      type: str
    pid: {description: "Process id, null when no process.", type: int}
    exitstatus: {description: Exit status of the last exit., type: int}
    start: {description: Epoch seconds of the last start., type: int}
    stop: {description: Epoch seconds of the last stop., type: int}
    now: {description: "supervisord's clock, epoch seconds.", type: int}
    uptime_s: {description: "Seconds since start when RUNNING or STOPPING, else null.", type: int}
    spawnerr: {description: "Last spawn error, empty when none.", type: str}
    description: {description: supervisord's one-line description., type: str}
    exit_reason:
      description:
        - "How the last process ended in supervisord's own words, read from its main log when the
          program is not running: C(exit status 1; not expected), C(terminated by SIGKILL; not
          expected). Empty when unknown or running."
      type: str
  sample: {name: backend, group: backend, state: RUNNING, pid: 4242, exitstatus: 0, start: 1767225600,
           stop: 0, now: 1767225700, uptime_s: 100, spawnerr: "", description: "pid 4242, uptime 0:01:40",
           exit_reason: ""}
log_tail:
  description: Last O(log_lines) lines of the program's stdout log, oldest first.
  type: list
  elements: str
  returned: always
  sample: ["listening on 127.0.0.1:3000", "GET /health 200"]
msg:
  description: Why supervisord is unreachable.
  type: str
  returned: when RV(reachable) is false
  sample: "supervisord at unix:///run/supervisor/supervisor.sock is unreachable: connection refused (is supervisord running?)"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pivotal.flow_ops.plugins.module_utils.supervisor_rpc import (
    ModuleFailure,
    connection_argument_spec,
    read_program,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    try:
        result, warnings = read_program(module.params)
    except ModuleFailure as exc:
        module.fail_json(msg=exc.msg, changed=False, **exc.result)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
