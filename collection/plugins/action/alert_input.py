# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refuse a run whose alert data could be evaluated: the first play of every collection playbook.

Ansible 2.19 trusts extra vars as templates, so an alert field that reaches a playbook through
``-e``, ansible-rulebook or AWX runs the moment anything templates it (a role default, a play's
``hosts:`` or ``serial:``). This plugin reads the variables RAW from task_vars (an action plugin
gets them untemplated) and never templates them or puts them in module arguments; it runs on the
controller with no connection, so it costs no module transfer and works on an inventory that does
not list localhost. The checks are module_utils/event_input.py (pure, unit-tested).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.pivotal.flow_ops.plugins.module_utils import event_input


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # the variables are on the controller; no host is contacted
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        del tmp
        if self._task.args:
            result.update(failed=True, changed=False, msg="alert_input takes no options")
            return result
        problem = event_input.check_vars(dict(task_vars or {}))
        if problem:
            result.update(failed=True, changed=False, msg=f"refused alert input: {problem}")
        else:
            result.update(
                changed=False,
                msg="alert input is data: names, fingerprint, group key, incident, event checked",
            )
        return result
