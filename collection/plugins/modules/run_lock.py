#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_lock
short_description: Take or release the pflow-ops run lock of an environment and service
version_added: 0.5.0
description:
  - One recovery or maintenance per environment and service at a time, whichever way it is
    started. The C(pflow-ops) CLI takes this lock itself; this module lets a playbook started by
    AWX or plain C(ansible-playbook) take the same lock, in the same coordination store.
  - The store is the environment's C(pflow_coordination_url) inventory variable, read raw on the
    controller (never templated). C(file) (the default) is an exclusive C(flock) on
    C($PFLOW_OPS_HOME/locks/<env>-<service>.lock) on this controller; C(etcd://HOST:PORT) or
    C(etcds://HOST:PORT) is a key bound to a lease in etcd, shared by every controller and AWX job
    naming it. TLS files come from C(pflow_coordination_ca_cert), C(pflow_coordination_client_cert)
    and C(pflow_coordination_client_key); credentials from C(pflow_coordination_user) and
    C(pflow_coordination_password) (a vault value) or C($PFLOW_COORDINATION_USER) and
    C($PFLOW_COORDINATION_PASSWORD).
  - With I(state=acquired) a small holder process on the controller keeps the lock while the
    playbook runs and lets go when C(ansible-playbook) ends, however it ends. If the holder itself
    is killed, the kernel frees the C(flock), or the etcd lease expires within
    C(pflow_coordination_lock_ttl) seconds (default 15).
  - Fails closed. A lock held by another run fails the task with one line naming the holder; a
    store that cannot be reached fails the task naming the store (never a fallback to C(file)).
  - A run started by the CLI already holds the lock under its run id (C(pflow_run_id)); then
    I(state=acquired) reports C(changed=false) and I(state=released) leaves it to the CLI.
  - Always reports C(changed=false). The lock is the run's own bookkeeping and is gone when the run
    ends, so a second run on a healthy system still reports C(changed=0); C(taken) and C(released)
    say what the task did.
  - This is an action plugin; it runs on the controller and never contacts the target host.
seealso:
  - module: pivotal.flow_ops.restart_budget
    description: How many restarts a service may have per window.
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
    details: Reports whether the lock is free (or held by this run) and takes or releases nothing.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  state:
    description: C(acquired) takes the lock (fails when another run holds it); C(released) lets it go.
    type: str
    choices: [acquired, released]
    required: true
  env:
    description: The environment (the inventory's C(pflow_env)); letters, digits, C(_.-).
    type: str
    required: true
  service:
    description: The service the run changes (C(backend), C(database), C(cache)); letters, digits, C(_.-).
    type: str
    required: true
  holder:
    description:
      - Who holds the lock, recorded with it and shown in refusals. Use the same value for
        I(state=acquired) and I(state=released).
      - Defaults to C(pflow_run_id) (a run started by the CLI), else C(awx-job-<awx_job_id>), else
        C(ansible-playbook-<pid>@<controller>).
    type: str
"""

EXAMPLES = r"""
- name: Take the database's run lock (RB-02 and database maintenance never overlap)
  pivotal.flow_ops.run_lock:
    state: acquired
    env: "{{ pflow_env }}"
    service: database
  run_once: true

- name: Release the database's run lock
  pivotal.flow_ops.run_lock:
    state: released
    env: "{{ pflow_env }}"
    service: database
  run_once: true
"""

RETURN = r"""
acquired:
  description: Whether the lock is held by this run after the task.
  type: bool
  returned: always
taken:
  description: True when this task took the lock; false when this run (the CLI) already held it.
  type: bool
  returned: when I(state=acquired) and the lock is held by this run after the task
released:
  description: True when this task released the lock.
  type: bool
  returned: when I(state=released)
holder:
  description: The holder name this task used.
  type: str
  returned: always
  sample: awx-job-42
holder_record:
  description: What the store records for the lock (run_id, pid, host, since; C(lease) on etcd); null when free.
  type: dict
  returned: when the store was read
store:
  description: The coordination store, without credentials (C(file) or C(etcds://host:port)).
  type: str
  returned: when the store was read
  sample: etcds://etcd.example.net:2379
env:
  description: The I(env) applied.
  type: str
  returned: always
service:
  description: The I(service) applied.
  type: str
  returned: always
"""
