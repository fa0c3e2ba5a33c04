# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EDA event filter pivotal.flow_ops.alert_guard: one screened event per Alertmanager alert.

Put it on the webhook source that receives Alertmanager's notifications. Each alert becomes
``{"alert": {"status", "fingerprint", "labels": {"alertname"[, "runbook"]}}}`` and nothing else
(no annotations, no other labels, no request headers), so neither the rules nor the runs they
start (which get the event as ``ansible_eda``) ever hold more than that. A hostile alert (a
template marker or an oversized value anywhere, a malformed alertname or fingerprint, a
``runbook`` label that is not a runbook id) becomes ``{"pflow_refused": "<one line>"}``.

The checks are the collection's module_utils/event_input.py, the same ones the playbooks' first
play runs. ansible-rulebook loads filters with ``runpy`` (not Ansible's collection loader), so
that file is loaded by its path in the collection.
"""

from __future__ import annotations

import os
import runpy
from typing import Any

DOCUMENTATION = r"""
---
short_description: Split an Alertmanager notification into screened per-alert events.
description:
  - One event per alert of the notification (C(payload.alerts)), reduced to its status,
    fingerprint, C(alertname) label and C(runbook) label (upper case).
  - An alert with a template marker or an oversized value anywhere, a malformed alertname or
    fingerprint, or a C(runbook) label that is not a runbook id becomes an event with only
    C(pflow_refused), one line saying why.
options: {}
"""

_CHECKS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "..",
    "..",
    "..",
    "plugins",
    "module_utils",
    "event_input.py",
)
_alert_events = runpy.run_path(_CHECKS)["alert_events"]


def main(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The screened events of one webhook event (an Alertmanager notification)."""
    return list(_alert_events(event))
