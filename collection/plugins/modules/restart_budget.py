#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: restart_budget
short_description: Allow at most N restarts per service per time window
version_added: 0.1.0
description:
  - Keeps a sliding-window count of restarts per I(key) in C($PFLOW_OPS_HOME/budget/restarts.json) on
    the controller, shared by every entry point (the pflow-ops CLI, plain C(ansible-playbook), AWX).
  - With I(state=check) it only reports whether a restart is allowed. With I(state=consume) it
    records a restart when one is allowed; when the budget is spent it returns C(allowed=false)
    without failing, and the calling role decides and reports.
  - Entries older than the window are dropped. Writes are atomic and serialised by an exclusive
    C(flock) on C(restarts.json.lock), so two concurrent runs cannot both take the last slot.
  - A corrupt budget file counts as empty; it is moved aside to C(restarts.json.corrupt-<epoch>)
    and a warning says so.
  - This is an action plugin; it runs on the controller and never contacts the target host.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Reports what consume would do (C(changed=true) and the would-be counts) and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  key:
    description: What the budget counts restarts of, conventionally C(<environment>/<host>/<service>).
    type: str
    required: true
  max_restarts:
    description: Restarts allowed per window. C(0) allows none without I(override).
    type: int
    default: 3
  window_seconds:
    description: Length of the sliding window.
    type: int
    default: 1800
  state:
    description: C(check) reports only; C(consume) records one restart if allowed.
    type: str
    choices: [check, consume]
    default: check
  override:
    description:
      - A human explicitly overrode the budget. The restart is allowed even when the budget is
        spent, and the entry is recorded with C(override=true) (it still counts).
    type: bool
    default: false
  reason:
    description: Why the restart happens (alert name, ticket); recorded with the entry.
    type: str
  run_id:
    description: Identifier of the run that takes the restart (pflow-ops run id, AWX job id); recorded with the entry.
    type: str
  state_dir:
    description:
      - The pflow-ops home directory. Defaults to the controller's C(PFLOW_OPS_HOME) environment
        variable, else C(~/.pflow-ops). The file is C(<state_dir>/budget/restarts.json).
    type: path
"""

EXAMPLES = r"""
- name: Take one restart from the backend's budget
  pivotal.flow_ops.restart_budget:
    key: "local/{{ inventory_hostname }}/backend"
    state: consume
    max_restarts: 3
    window_seconds: 1800
    reason: BackendDown
  register: backend_budget

- name: Restart the backend
  pivotal.flow_ops.supervisor_program:
    name: backend
    server_url: unix:///run/supervisor/supervisor.sock
    state: restarted
  when: backend_budget.allowed
"""

RETURN = r"""
allowed:
  description: Whether a restart is allowed (I(override), or fewer than I(max_restarts) in the window).
  type: bool
  returned: always
overridden:
  description: True when the restart is allowed only because of I(override).
  type: bool
  returned: always
used:
  description: Restarts in the window, including the one just taken by I(state=consume).
  type: int
  returned: always
summary:
  description: "One line for the run report, for example C(allowed: 1 of 3 restarts used in the window)."
  type: str
  returned: always
remaining:
  description: Restarts left in the window.
  type: int
  returned: always
max_restarts:
  description: The I(max_restarts) applied.
  type: int
  returned: always
window_seconds:
  description: The I(window_seconds) applied.
  type: int
  returned: always
oldest_ts:
  description: Epoch seconds of the oldest restart in the window; null when there is none.
  type: float
  returned: always
resets_in_s:
  description: Seconds until the oldest restart leaves the window and frees a slot; null when there is none.
  type: float
  returned: always
entries:
  description: Restarts in the window, oldest first. C(run_id) is present only when one was given.
  type: list
  elements: dict
  returned: always
  sample: [{ts: 1767225600.123, reason: BackendDown, override: false, run_id: "20260101-000000-ab12"}]
key:
  description: The I(key) the budget applies to.
  type: str
  returned: always
path:
  description: The budget file on the controller.
  type: str
  returned: always
  sample: /home/ops/.pflow-ops/budget/restarts.json
"""
