# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""incident_record: get or update the incident record of a run, on the controller.

The record (module_utils/incident.py's model, module_utils/incident_store.py's file) holds each
sink's handle so a later run of the same incident updates the same ticket, thread and pager
incident. It lives with the run state, under $PFLOW_OPS_HOME/incidents/, locked per record, or,
where the inventory names an etcd coordination store, in etcd (shared by every controller).
Documentation never blocks a recovery: a corrupt record is kept aside and a fresh one started,
with a warning; an unwritable state directory is a failed task the incident role rescues.
It reports changed=false: the record is pflow-ops' own bookkeeping, not a change on a host.
"""

from __future__ import annotations

import datetime
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination
from ansible_collections.pivotal.flow_ops.plugins.module_utils import event_input
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_store

ARGUMENT_SPEC = {
    "state": {"type": "str", "default": "get", "choices": ["get", "update", "ack"]},
    "key": {"type": "str", "default": ""},
    "runbook": {"type": "str", "default": ""},
    "run_id": {"type": "str", "default": ""},
    "event": {"type": "str", "default": "", "choices": ["", "documented", "resolved", "still_firing"]},
    "outcome": {"type": "str", "default": ""},
    "sinks": {"type": "list", "elements": "dict", "default": []},
    "by": {"type": "str", "default": ""},
}


def now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_text(task_vars: dict, name: str) -> str:
    value = task_vars.get(name)
    return value if isinstance(value, str) else ""


def choose_key(args: dict, task_vars: dict) -> dict:
    """{key, source}: the key argument, else (module_utils/incident.py select_key, in its order)
    pflow_incident_key, pflow_alert_incident (the alert's annotation), pflow_alert_group_key,
    pflow_alert_fingerprint, all read RAW from the task's variables (an AWX survey answer or -e
    value is never templated here), else the run itself. A given key or annotation that is not
    valid fails the task (documented nowhere, never elsewhere)."""
    if args["key"]:
        return incident.select_key(args["key"])
    return incident.select_key(raw_text(task_vars, "pflow_incident_key"),
                               raw_text(task_vars, "pflow_alert_fingerprint"),
                               raw_text(task_vars, "pflow_env") or "default", args["runbook"] or "-",
                               raw_text(task_vars, "pflow_run_id") or now_text(),
                               annotation=raw_text(task_vars, "pflow_alert_incident"),
                               group_key=group_key(task_vars))


def group_key(task_vars: dict) -> str:
    """Alertmanager's group key of the alert, RAW (pflow_alert_group_key), checked as the
    playbook's first play checks it; "" when none. The sinks get it as data (a task result is
    never templated) and the PagerDuty sink only ever sends its hash."""
    value = raw_text(task_vars, "pflow_alert_group_key")
    problem = event_input.group_key_problem(value, "pflow_alert_group_key")
    if problem:
        raise incident.IncidentError(problem)
    return value


def get_or_update(home: str, args: dict, records: Any = None) -> dict:
    """The record (after the update for state=update/ack) and the warnings met on the way;
    ``records`` is where it lives (incident_store.open_records), default the file under home."""
    key = args["key"]
    if not incident.valid_key(key):
        raise incident.IncidentError("incident key %r is not valid" % key[:140])
    store = records if records is not None else incident_store.FileRecords(home)
    now = now_text()

    def change(record: dict | None) -> dict | None:
        if args["state"] == "get":
            return None  # a get writes nothing
        if record is None or record.get("key") != key:
            record = incident.new_record(key, now)
        if args["state"] == "update":
            record = incident.apply_update(record, args["run_id"], args["event"], args["outcome"],
                                           args["sinks"], now)
            # Where it belongs, for the scheduled re-notification (incident_renotify).
            record["env"] = args.get("env") or record.get("env") or "default"
            if incident.valid_key(args["runbook"]):
                record["runbook"] = args["runbook"]
            return record
        return incident.apply_update(record, "", "", "", [], now, ack={"by": args["by"] or "unknown", "at": now})

    got = store.update(incident.key_sha(key), change)
    if got["record"] is None or got["record"].get("key") != key:
        got["record"] = incident.new_record(key, now)
    return got


def records_for(home: str, task_vars: dict) -> Any:
    """Where this environment's records live: its coordination store's settings (inventory
    variables read raw, never templated) choose the file under home or etcd."""
    settings = coordination.parse(coordination.settings_values(task_vars))
    return incident_store.open_records(settings, home, raw_text(task_vars, "pflow_env") or "default",
                                       coordination.open_store)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # the record is the controller's; the target is never contacted
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if self._task.check_mode and args["state"] != "get":
            args = dict(args, state="get")  # a dry run documents nothing
        try:
            chosen = choose_key(args, task_vars or {})
            alert_group = group_key(task_vars or {})
            args = dict(args, key=chosen["key"], env=raw_text(task_vars or {}, "pflow_env") or "default")
            home = coordination.state_home()
            got = get_or_update(home, args, records_for(home, task_vars or {}))
        except (incident.IncidentError, coordination.CoordinationError, OSError, ValueError) as exc:
            result.update(failed=True, changed=False, msg="incident record: %s" % exc)
            return result
        for warning in got["warnings"]:
            self._display.warning(warning)
        result.update(changed=False, key=chosen["key"], key_source=chosen["source"], record=got["record"], exists=got["exists"], path=got["path"],
                      warnings_text=got["warnings"], group_key=alert_group)
        return result
