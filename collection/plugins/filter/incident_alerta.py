# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the Alerta incident sink's decisions (module_utils/incident_alerta.py), for the
incident role's sink_alerta.yml: Jinja only prints them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible.errors import AnsibleFilterError
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_alerta as _alerta


def incident_alerta_id(result):
    """pivotal.flow_ops.incident_alerta_id: the checked id of the alert a create answered with."""
    try:
        return _alerta.alert_id(result)
    except _alerta.AlertaError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {
            "incident_alerta_calls": _alerta.calls,
            "incident_alerta_alert": _alerta.alert_body,
            "incident_alerta_note": _alerta.note_body,
            "incident_alerta_close": _alerta.close_body,
            "incident_alerta_id": incident_alerta_id,
            "incident_alerta_ok": _alerta.response_ok,
            "incident_alerta_done": _alerta.response_done,
            "incident_alerta_handle": _alerta.handle,
            "incident_alerta_sent": _alerta.sent,
            "incident_alerta_failure": _alerta.failure,
        }
