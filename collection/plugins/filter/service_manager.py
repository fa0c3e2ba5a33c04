# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service_manager role's results in words (module_utils/service_state.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import service_state as _state


def supervisor_status(result, name):
    """pivotal.flow_ops.supervisor_status: service_manager_status from supervisor_program_info."""
    return _state.supervisor_status(result, name)


def restart_gated_result(manager, budget, restart, gate=None, status_after=None, check_mode=False,
                         gate_timeout_setting="", gate_timeout=None):
    """pivotal.flow_ops.restart_gated_result: service_manager_restart_result (tasks/restart_gated.yml)."""
    return _state.restart_result(manager, budget, restart, gate, status_after, check_mode,
                                 gate_timeout_setting, gate_timeout)


class FilterModule(object):
    def filters(self):
        return {
            "supervisor_status": supervisor_status,
            "restart_gated_result": restart_gated_result,
        }
