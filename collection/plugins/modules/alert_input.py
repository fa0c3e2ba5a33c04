#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: alert_input
short_description: Refuse a run whose alert data could be evaluated as a template
version_added: 0.5.0
description:
  - Ansible trusts extra vars (C(-e), ansible-rulebook's C(run_playbook), AWX) as templates, so an
    alert field reaching a playbook as an extra var would run as soon as anything templated it.
    This check runs first in every collection playbook and fails the run, with one line naming
    the variable and the rule, when the alert input is not plain data.
  - Reads the variables raw, as given, without templating them.
  - Fails when C(pflow_alert_name) is set and is not a Prometheus alert name
    (C([A-Za-z_][A-Za-z0-9_]*), at most 128 characters); when C(pflow_alert_fingerprint) is set
    and is not an Alertmanager fingerprint (1 to 32 lowercase hex digits); when
    C(pflow_alert_group_key) (Alertmanager's C(groupKey)) is not a string of at most 2048
    printable characters without a Jinja opener (its braces, quotes, C(=) and C(:) are its
    normal text); when C(pflow_alert_incident) (the alert's C(incident) annotation) or
    C(pflow_incident_key) is set and is not an incident key (1 to 128 letters, digits and
    C(._:/-)); when C(pflow_mode) is set and is not C(recover), C(diagnose) or C(maintain);
    when any string (or key) under C(ansible_eda) (the rule and event ansible-rulebook passes to every run) or under any other
    C(pflow_alert_*) variable carries a Jinja opener (C({{), C({%), C({#)) or is longer than
    4096 characters, or such a structure is nested deeper than 8 or holds more than 1024 values.
  - The message shows the offending value as a truncated repr with C({) written as C(\x7b).
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
  diff_mode:
    support: none
  platform:
    platforms: all
options: {}
"""

EXAMPLES = r"""
# The first play of a playbook that an alert may start: it runs once whatever the inventory
# or --limit, and its failure ends the playbook before any later play templates a value.
- name: Check the alert input
  hosts: all:localhost
  gather_facts: false
  tasks:
    - name: Refuse alert input that is not plain data
      pivotal.flow_ops.alert_input:
      run_once: true
      tags: [always]
"""

RETURN = r"""
msg:
  description: What was checked, or the refusal (C(refused alert input:) then the variable, the rule and the value).
  type: str
  returned: always
  sample: "refused alert input: pflow_alert_fingerprint: not an Alertmanager fingerprint (1 to 32 lowercase hex digits): '\\x7b\\x7b lookup(...'"
"""
