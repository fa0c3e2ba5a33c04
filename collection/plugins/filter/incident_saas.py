# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the SaaS incident sinks' decisions (module_utils/incident_saas.py), for the
incident role's sink_slack.yml, sink_pagerduty.yml and sink_jira.yml: Jinja only prints them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_saas as _saas


class FilterModule(object):
    def filters(self):
        return {
            "incident_saas_calls": _saas.calls,
            "incident_saas_ok": _saas.response_ok,
            "incident_saas_done": _saas.response_done,
            "incident_saas_failure": _saas.failure_line,
            "incident_saas_sent": _saas.sent_summary,
            "incident_slack_body": _saas.slack_body,
            "incident_slack_handle": _saas.slack_handle,
            "incident_pd_dedup_key": _saas.dedup_key,
            "incident_pd_event": _saas.pagerduty_event,
            "incident_pd_changes": _saas.change_summaries,
            "incident_pd_handle": _saas.pagerduty_handle,
            "incident_pd_severity": _saas.trigger_severity,
            "incident_catalogue_severity": _saas.catalogue_severity,
            "incident_jira_text": _saas.jira_text,
            "incident_jira_handle": _saas.jira_handle,
            "incident_ticket_answer": _saas.ticket_answer,
            "incident_ticket_handle": _saas.ticket_handle,
        }
