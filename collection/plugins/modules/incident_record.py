#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_record
short_description: Get or update the pflow-ops incident record of a run
version_added: 0.5.0
description:
  - One incident record per incident key (the C(--incident) key, the alert fingerprint, or the
    run itself), holding each incident sink's handle (ticket id, email thread, chat message, pager
    dedup key), the run ids that touched it, its events and the acknowledgement.
  - Stored on the controller at C($PFLOW_OPS_HOME/incidents/<sha256(key)>.json), mode 0600,
    written atomically under an exclusive C(flock) per record, so two runs of one incident update
    it in turn. The key never becomes a path.
  - Where the environment's inventory names an etcd coordination store (C(pflow_coordination_url),
    read raw), the record is the etcd key C(/pflow-ops/incidents/<pflow_env>/<sha256(key)>) instead,
    shared by every controller naming that store; an update is a transaction conditional on the
    key's mod_revision, retried a bounded number of times when another controller wrote first.
    An etcd that cannot be reached fails the task with one line naming the store; there is no
    fallback to the local file (a second record would open a second ticket).
  - A record that cannot be read is kept aside (C(<name>.corrupt-<ms>), or under
    C(/pflow-ops/incidents-corrupt/) in etcd) and a fresh record is started, with a warning;
    documenting an incident never blocks a recovery.
  - No secrets are stored; handle keys named like a secret (password, token, url) are dropped.
  - Always reports C(changed=false). In check mode it only reads.
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
    details: Reads the record and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  state:
    description: C(get) reads (a new record when none exists), C(update) records a run and its sinks' results, C(ack) marks the incident handled.
    type: str
    default: get
    choices: [get, update, ack]
  key:
    description:
      - The incident key, 1-128 characters of C(A-Z a-z 0-9 . _ / -) and the colon.
      - Empty chooses it from the play's variables, read raw (never templated) -
        C(pflow_incident_key) (C(pflow-ops --incident), an AWX survey field), else the alert's
        C(pflow_alert_fingerprint), else C(<pflow_env>/<runbook>/<pflow_run_id>). A given key that
        is not valid fails the task.
    type: str
    default: ""
  runbook:
    description: The runbook of the run, for the key of a run without an alert.
    type: str
    default: ""
  run_id:
    description: The run that documents the incident (C(state=update)).
    type: str
    default: ""
  event:
    description: What happened (C(state=update)).
    type: str
    default: ""
    choices: ["", documented, resolved, still_firing]
  outcome:
    description: The run's outcome (C(state=update)).
    type: str
    default: ""
  sinks:
    description:
      - The sinks' results (C(state=update)), each C({sink, kind, status, handle, detail}); a sink
        with status C(ok) replaces its handle.
    type: list
    elements: dict
    default: []
  by:
    description: Who handled the incident (C(state=ack)).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Read the incident record
  pivotal.flow_ops.incident_record:
    runbook: RB-03
  register: __incident_record

- name: Record this run and its sinks
  pivotal.flow_ops.incident_record:
    state: update
    key: "{{ __incident_record.key }}"
    run_id: "{{ pflow_run_id }}"
    event: documented
    outcome: escalate
    sinks: "{{ __incident_sink_results }}"
"""

RETURN = r"""
key:
  description: The incident key used.
  returned: success
  type: str
key_source:
  description: Where the key came from - C(given), C(fingerprint) or C(run).
  returned: success
  type: str
record:
  description: The record after the call.
  returned: success
  type: dict
exists:
  description: Whether a readable record existed before the call.
  returned: success
  type: bool
path:
  description: Where the record lives - its file, or C(<store>/pflow-ops/incidents/<env>/<sha>) in etcd.
  returned: success
  type: str
warnings_text:
  description: The warnings met (a corrupt record kept aside).
  returned: success
  type: list
  elements: str
"""
