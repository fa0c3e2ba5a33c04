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
  - Keeps a sliding-window count of restarts per I(key) in the environment's coordination store,
    shared by every entry point (the pflow-ops CLI, plain C(ansible-playbook), AWX). The store is
    the inventory variable C(pflow_coordination_url), read raw (never templated). C(file) (the
    default) is C($PFLOW_OPS_HOME/budget/restarts.json) on the controller; C(etcd://HOST:PORT) or
    C(etcds://HOST:PORT) is an etcd shared by several controllers and AWX jobs, where each restart
    is a key with a lease (TTL = the retention below) and the read-decide-write is one
    transaction. TLS and credentials are described in M(pivotal.flow_ops.run_lock).
  - An etcd that cannot be reached refuses (C(allowed=false), the refusal naming the store), even
    with I(override), since the override could not be recorded. There is no fallback to C(file).
  - With I(state=check) it only reports whether a restart is allowed. With I(state=consume) it
    records a restart when one is allowed. Every refusal (budget spent, unreadable state, a
    per-run policy, an override without a reason) returns C(allowed=false) without failing, with
    the one line in C(refusal); the calling role decides and reports.
  - Fails closed. A budget file that cannot be read or parsed is never read as empty; it is
    copied aside to C(restarts.json.corrupt-<epoch>) (once per content), left in place, and every
    request is refused until a human overrides with a reason (which starts a fresh file).
  - The policy (I(max_restarts), I(window_seconds)) comes from the inventory. A play whose extra
    vars (C(-e), C(-e @file), AWX survey answers) set any C(*_restart_budget_max),
    C(*_restart_budget_window), C(service_manager_budget) or the environment part of the key
    (C(pflow_env), C(backend_env), C(database_env), C(cache_env)) is refused, naming the variable;
    the plugin reads the play's extra vars on the controller.
  - Entries are kept for a fixed retention (24 h, or I(window_seconds) when longer), whatever the
    caller's window, so no caller's window erases another caller's history. Writes are atomic and
    serialised by an exclusive C(flock) on C(restarts.json.lock), so two concurrent runs cannot
    both take the last slot.
  - A restart recorded in the future (the clock went backwards) still counts, with a warning.
  - Warnings are returned in C(budget_warnings) as well as shown as task warnings.
  - This is an action plugin; it runs on the controller and never contacts the target host.
seealso:
  - module: pivotal.flow_ops.supervisor_program
    description: The restart the budget guards.
  - module: pivotal.flow_ops.run_lock
    description: One run at a time per target.
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
        spent or its state is unreadable, and the entry is recorded with C(override=true) and
        I(override_reason) (it still counts).
      - An override exists only with a reason; with a blank one the request is refused.
    type: bool
    default: false
  override_reason:
    description:
      - Who overrode and why (an incident or ticket), recorded in the entry as C(override_reason).
        Required (non-blank) when I(override=true).
      - When not given, the plugin takes the controller variable
        C(pflow_restart_budget_override_reason) (what C(pflow-ops --override-budget REASON) sets)
        as plain text, never as a template.
    type: str
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
      - For the C(file) store only; with an etcd C(pflow_coordination_url) the task fails.
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
  description: Whether a restart is allowed (I(override) with a reason, or fewer than I(max_restarts) in the window).
  type: bool
  returned: always
overridden:
  description: True when the restart is allowed only because of I(override) (spent budget or unreadable state).
  type: bool
  returned: always
override_reason:
  description: The override's reason, stripped; null without I(override).
  type: str
  returned: always
refusal:
  description: One line saying why the request is refused and how a human may proceed; empty when allowed.
  type: str
  returned: always
  sample: "restart budget state unreadable at /home/ops/.pflow-ops/budget/restarts.json (kept as
    /home/ops/.pflow-ops/budget/restarts.json.corrupt-1767225600); a human may --override-budget"
budget_warnings:
  description: Warnings (an unreadable file kept aside, a clock that went backwards), also shown as task warnings.
  type: list
  elements: str
  returned: always
used:
  description: Restarts in the window, including the one just taken by I(state=consume).
  type: int
  returned: always
summary:
  description:
    - "One line for the run report, for example C(allowed: 1 of 3 restarts used in the window);
      a refusal other than a spent budget reads C(refused: <refusal>)."
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
retention_seconds:
  description: How long the file keeps an entry (24 h, or I(window_seconds) when longer).
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
  description:
    - Restarts in the window, oldest first. C(run_id) is present only when one was given,
      C(override_reason) only with C(override=true).
  type: list
  elements: dict
  returned: always
  sample: [{ts: 1767225600.123, reason: BackendDown, override: true, override_reason: "INC-42", run_id: "20260101-000000-ab12"}]
key:
  description: The I(key) the budget applies to.
  type: str
  returned: always
path:
  description: Where the key's entries live, the budget file on the controller or the etcd key prefix.
  type: str
  returned: always
  sample: /home/ops/.pflow-ops/budget/restarts.json
"""
