# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident decisions and renderer (module_utils/incident.py) as filters for the incident role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident as _incident


def incident_sinks(sinks):
    """pivotal.flow_ops.incident_sinks: pflow_incident_sinks, checked (known kinds, unique names)."""
    try:
        return _incident.check_sinks(sinks)
    except _incident.IncidentError as exc:
        raise AnsibleFilterError(str(exc))


def incident_messages(results, event="documented", key="", run_id="", env="", alertname="",
                      fingerprint="", escalation=None, loop=None):
    """pivotal.flow_ops.incident_messages: {model, subject, ticket_title, chat, ticket, pager,
    severity} for the batch's ``pflow_run_result`` facts."""
    model = _incident.build_model(results, event, key, run_id, env, alertname, fingerprint, escalation, loop)
    out = _incident.render(model)
    out["outcome"] = model["outcome"]
    out["runbook"] = model["runbook"]
    return out


def incident_sink_action(sink, record, event, outcome, key_source="given"):
    """pivotal.flow_ops.incident_sink_action: what this sink does (create, update, resolve,
    trigger, change, skip) given its handle in the record."""
    record = record or {}
    handle = (record.get("handles") or {}).get(_incident.sink_name(sink or {}))
    try:
        return _incident.sink_action((sink or {}).get("kind"), handle, event, outcome,
                                     bool(record.get("ack")), bool(record.get("resolved")), key_source)
    except _incident.IncidentError as exc:
        raise AnsibleFilterError(str(exc))


def incident_email_thread(key, domain="pflow-ops.invalid"):
    """pivotal.flow_ops.incident_email_thread: {root, headers} shared by every email of the incident."""
    return _incident.email_thread(key, domain)


def incident_ticket_id(response):
    """pivotal.flow_ops.incident_ticket_id: the checked ticket id of a tracker's create answer."""
    try:
        return _incident.ticket_id(response)
    except _incident.IncidentError as exc:
        raise AnsibleFilterError(str(exc))


def incident_loop_event(state):
    """pivotal.flow_ops.incident_loop_event: resolved | still_firing | '' for the loop's state."""
    return _incident.loop_event(state)


class FilterModule(object):
    def filters(self):
        return {
            "incident_sinks": incident_sinks,
            "incident_messages": incident_messages,
            "incident_sink_action": incident_sink_action,
            "incident_email_thread": incident_email_thread,
            "incident_ticket_id": incident_ticket_id,
            "incident_loop_event": incident_loop_event,
        }
