#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: incident_renotify
short_description: Plan and journal the re-notification of unacknowledged pflow-ops incidents
version_added: 0.6.0
description:
  - With no pager configured, an escalated incident that nobody acknowledged
    (C(pflow-ops incident ack KEY)) is notified again at each level of its runbook's escalation
    path, when the level's C(after_minutes) (catalogue.yml) have passed since the escalation.
  - C(state=plan) lists the open incident records of the environment (C(pflow_env), read raw)
    under C($PFLOW_OPS_HOME/incidents/) and decides for each which level is due
    (module_utils/incident_renotify.py) - C(due), C(wait), C(none) or C(invalid) with the reason.
    A due one comes back with its record and its rendered messages.
  - Never an acknowledged or resolved incident, never with a pager sink configured, never a level
    twice, never before its time; a record it cannot trust notifies nobody and says why.
  - C(state=journal) appends the C(renotify) event (its level and each sink's status) to the
    record, under the record's lock.
  - The clock is the controller's, or C(pflow_renotify_now) (ISO 8601 with its zone, read raw
    and checked) for a dry run or a test.
  - Always reports C(changed=false). In check mode C(journal) writes nothing.
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
    details: Plans; journals nothing.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  state:
    description: C(plan) decides what is due, C(journal) records a re-notification sent.
    type: str
    default: plan
    choices: [plan, journal]
  escalation:
    description:
      - The escalation paths (C(state=plan)), C({RB-xx [{level, who, when, after_minutes}]}),
        the incident role's C(incident_escalation).
    type: dict
    default: {}
  sinks:
    description:
      - The environment's incident sinks (C(state=plan)); only their C(kind) and C(name) are
        read. A C(pagerduty) sink means no re-notification.
    type: list
    elements: raw
    default: []
  key:
    description: The incident key (C(state=journal)).
    type: str
    default: ""
  level:
    description: The level sent (C(state=journal)), the C(level) dict of the plan's due entry.
    type: dict
    default: {}
  results:
    description: The sinks' results (C(state=journal)), each C({sink, kind, status, handle, detail}).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Decide which escalation level of each open incident is due
  pivotal.flow_ops.incident_renotify:
    escalation: "{{ incident_escalation }}"
    sinks: "{{ incident_sinks }}"
  register: __plan
  no_log: true

- name: Journal a re-notification sent
  pivotal.flow_ops.incident_renotify:
    state: journal
    key: "{{ item.key }}"
    level: "{{ item.level }}"
    results: "{{ __incident_sink_results }}"
  loop: "{{ __plan.due }}"
"""

RETURN = r"""
env:
  description: The environment whose records were read (C(pflow_env), else C(default)).
  returned: success
  type: str
now:
  description: The time decided at (C(state=plan)).
  returned: success
  type: str
incidents:
  description: One decision per open incident of the environment - C({key, runbook, status, reason, level, since, minutes}).
  returned: state=plan
  type: list
  elements: dict
lines:
  description: One line per open incident - key, runbook, status and reason.
  returned: state=plan
  type: list
  elements: str
due:
  description: The due decisions, each with its C(record) and rendered C(messages).
  returned: state=plan
  type: list
  elements: dict
unplaced:
  description: Keys of open records that name no environment (never re-notified; a warning each).
  returned: state=plan
  type: list
  elements: str
record:
  description: The record after the journal.
  returned: state=journal
  type: dict
"""
