# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""incident_renotify: which open incidents of the environment are due a re-notification, and
the journal of one sent (issue 16: with no pager configured, the escalation path's levels are
notified at the catalogue's times until someone acknowledges).

``state=plan`` lists the environment's incident records (where ``incident_record`` writes them:
$PFLOW_OPS_HOME/incidents/ or the environment's etcd store) and decides for each with module_utils/incident_renotify.py; a due
one comes back with its messages rendered in Python. ``state=journal`` appends the ``renotify``
event (its level, each sink's status) to the record, under the record's lock. The environment
(``pflow_env``) and the clock override (``pflow_renotify_now``, a dry run's or a test's "as if it
were") are read raw from the play's variables, never templated, and checked.
It reports changed=false: the record is pflow-ops' own bookkeeping, not a change on a host.
"""

from __future__ import annotations

import datetime
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_renotify as renotify
from ansible_collections.pivotal.flow_ops.plugins.action.incident_record import records_for

ARGUMENT_SPEC = {
    "state": {"type": "str", "default": "plan", "choices": ["plan", "journal"]},
    "escalation": {"type": "dict", "default": {}},
    "sinks": {"type": "list", "elements": "raw", "default": []},
    "key": {"type": "str", "default": ""},
    "level": {"type": "dict", "default": {}},
    "results": {"type": "list", "elements": "dict", "default": []},
}


def raw_text(task_vars: dict, name: str) -> str:
    value = task_vars.get(name)
    return value if isinstance(value, str) else ""


def clock(task_vars: dict) -> datetime.datetime:
    """Now, or the ``pflow_renotify_now`` override (ISO 8601 with its zone, else the task fails).
    A YAML extra vars file turns the text into a timestamp: an aware one is taken as it is."""
    override = task_vars.get("pflow_renotify_now")
    if isinstance(override, datetime.datetime) and override.tzinfo is not None:
        return override.astimezone(datetime.timezone.utc)
    if override is not None and override != "":
        return renotify.parse_time(override if isinstance(override, str) else repr(override))
    return datetime.datetime.now(datetime.timezone.utc)


def plan(store: Any, env: str, escalation: dict, sinks: list, now: datetime.datetime) -> dict:
    """{incidents: [{key, runbook, status, reason, level, since, minutes}], lines: [one per
    incident], due: [...with record and messages], unplaced: [keys]} for the open records of
    ``env``."""
    records = store.list()
    out: dict = {"incidents": [], "due": [], "lines": [], "unplaced": renotify.unplaced(records), "now": renotify.time_text(now)}
    for record in sorted(renotify.open_records(records, env), key=lambda r: str(r.get("key"))):
        decision = renotify.decide(record, escalation, sinks, now)
        summary = dict(decision, key=str(record.get("key")), runbook=str(record.get("runbook") or "-"))
        out["incidents"].append(summary)
        out["lines"].append("%s (%s): %s: %s" % (
            summary["key"], summary["runbook"], decision["status"], decision["reason"]))
        if decision["status"] == renotify.DUE:
            out["due"].append(dict(summary, record=record,
                                   messages=renotify.render(record, decision, env, escalation)))
    return out


def journal(store: Any, key: str, level: dict, results: list, run_id: str, now: str) -> dict:
    """The record with the sent level journaled, in one update of the environment's store (the
    file's lock, or etcd's revision-checked transaction)."""
    if not incident.valid_key(key) or not renotify.LEVEL_PATTERN.match(str(level.get("level", ""))):
        raise renotify.RenotifyError("journal: a valid key and level are needed")

    def change(record: dict | None) -> dict:
        if record is None or record.get("key") != key:
            raise renotify.RenotifyError("journal: no incident record for %s" % key)
        return renotify.journal(record, {"level": level}, results, now, run_id)

    return store.update(incident.key_sha(key), change)["record"]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # the records are the controller's; no target is contacted
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        env = raw_text(task_vars, "pflow_env") or "default"
        try:
            store = records_for(coordination.state_home(), task_vars)
            if args["state"] == "plan":
                planned = plan(store, env, args["escalation"], args["sinks"], clock(task_vars))
                for key in planned["unplaced"]:
                    self._display.warning("incident %s names no environment: it is not re-notified" % key)
                result.update(planned, changed=False, env=env)
            elif self._task.check_mode:
                result.update(changed=False, msg="check mode: nothing journaled")
            else:
                now = renotify.time_text(datetime.datetime.now(datetime.timezone.utc))
                record = journal(store, args["key"], args["level"], args["results"],
                                 raw_text(task_vars, "pflow_run_id"), now)
                result.update(changed=False, record=record, env=env)
        except (renotify.RenotifyError, incident.IncidentError, coordination.CoordinationError, OSError,
                ValueError) as exc:
            result.update(failed=True, changed=False, msg="incident renotify: %s" % exc)
        return result
