# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the chat sinks' decisions (module_utils/incident_chat.py) for the incident role's
sink_mattermost.yml, sink_matrix.yml, sink_teams.yml and sink_email.yml: Jinja only prints them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_chat as _chat


def _checked(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (_chat.ChatError, KeyError) as exc:
            raise AnsibleFilterError(str(exc))

    run.__doc__ = func.__doc__
    return run


class FilterModule(object):
    def filters(self):
        return {
            "incident_chat_calls": _chat.calls,
            "incident_mattermost_request": _checked(_chat.mattermost_request),
            "incident_mattermost_handle": _chat.mattermost_handle,
            "incident_matrix_request": _checked(_chat.matrix_request),
            "incident_matrix_handle": _chat.matrix_handle,
            "incident_teams_body": _chat.teams_body,
            "incident_teams_handle": _chat.teams_handle,
            "incident_email_subject": _chat.email_subject,
            "incident_email_handle": _chat.email_handle,
        }
