#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_remediate
short_description: Act on the exact PostgreSQL sessions, tables and indexes a diagnosis chose, safely
version_added: 0.2.0
description:
  - Takes the targets chosen by the caller (usually from M(pivotal.flow_ops.pg_diagnose)
    candidates) and re-checks each one just before acting. A session must still have the same
    C(pid) and C(backend_start), still be in the expected state beyond the age limit, and not be a
    superuser, system, replication, tool or protected-application session.
  - Runaway queries get C(pg_cancel_backend) first, then C(pg_terminate_backend) with a timeout
    if the same query still runs after I(cancel_grace_s).
  - Idle-in-transaction and idle sessions get C(pg_terminate_backend) with a timeout.
  - Tables get C(ANALYZE), and invalid indexes C(REINDEX INDEX CONCURRENTLY), both under
    C(lock_timeout) and C(statement_timeout). C(_ccnew) and C(_ccold) leftovers are dropped with
    C(DROP INDEX CONCURRENTLY), and so is a C(_ccnew) left by a REINDEX that fails here.
  - Settings are not changed here. The database role applies the ones a diagnosis found with
    M(community.postgresql.postgresql_alter_system), which compares normalized values, predicts
    the change in check mode and reports C(restart_required).
  - In check mode it runs only the read-only re-checks and returns what it would do.
seealso:
  - module: pivotal.flow_ops.pg_diagnose
    description: Finds the sessions, tables and indexes this module acts on (and the settings to change).
  - module: community.postgresql.postgresql_alter_system
    description: Changes a setting through ALTER SYSTEM and a reload; RB-02 applies the settings it finds with it.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pivotal.flow_ops.action_groups.postgresql_group
  - pivotal.flow_ops.postgres
attributes:
  check_mode:
    support: full
    details: Re-checks every target, changes nothing, and reports C(would ...) actions.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - psycopg2 on the target
notes:
  - PostgreSQL 15 lets only a table's owner (or a superuser) run ANALYZE or REINDEX on it. Give
    I(maintenance_user) that ownership; C(pg_signal_backend) is enough for the session actions.
options:
  login_user:
    aliases: [user]
    description: Role for the session actions (C(pg_signal_backend) and C(pg_monitor)).
    type: str
    required: true
  maintenance_user:
    description: Role for ANALYZE and REINDEX; I(user) when omitted.
    type: str
  maintenance_password:
    description: Password of I(maintenance_user).
    type: str
  connect_timeout:
    description: Hard limit in seconds on connecting.
    type: float
    default: 5
  lock_timeout:
    description:
      - C(lock_timeout) in seconds for maintenance statements.
      - They give up instead of queueing behind the application.
    type: float
    default: 5
  maintenance_timeout_s:
    description: C(statement_timeout) in seconds for each ANALYZE or REINDEX.
    type: float
    default: 300
  protected_applications:
    description: C(application_name) values never touched.
    type: list
    elements: str
    default: []
  cancel_queries:
    description: Runaway queries, each C({pid, backend_start}) (plus C(application), C(user) for the report).
    type: list
    elements: dict
    default: []
  query_min_age_s:
    description: A query is cancelled only if it has run at least this long when re-checked.
    type: float
    default: 300
  cancel_grace_s:
    description: Seconds to wait after the cancel before terminating the session.
    type: float
    default: 5
  terminate_timeout_s:
    description: Seconds C(pg_terminate_backend) waits for the session to end.
    type: float
    default: 5
  terminate_idle_in_transaction:
    description: Idle-in-transaction sessions to end, each C({pid, backend_start}).
    type: list
    elements: dict
    default: []
  idle_in_transaction_min_age_s:
    description: Minimum time idle in transaction when re-checked.
    type: float
    default: 300
  terminate_idle:
    description: Idle sessions to end (connection exhaustion), oldest first, each C({pid, backend_start}).
    type: list
    elements: dict
    default: []
  idle_min_age_s:
    description: Minimum idle time when re-checked.
    type: float
    default: 60
  analyze_tables:
    description: Tables to ANALYZE, each C({schema, table}).
    type: list
    elements: dict
    default: []
  reindex_indexes:
    description:
      - Invalid indexes, each C({schema, index, leftover}).
      - A non-empty C(leftover) (ccnew, ccold) means drop it.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: End the sessions and rebuild the indexes the diagnosis chose
  pivotal.flow_ops.pg_remediate:
    database: pivotal_flow
    user: pflow_monitor
    password: "{{ vault_pflow_monitor_password }}"
    maintenance_user: pivotal_app
    maintenance_password: "{{ vault_pivotal_app_password }}"
    cancel_queries: "{{ diagnosis.candidates.runaway_queries }}"
    terminate_idle_in_transaction: "{{ diagnosis.candidates.idle_in_transaction }}"
    analyze_tables: "{{ diagnosis.candidates.stale_tables }}"
    reindex_indexes: "{{ diagnosis.candidates.invalid_indexes }}"
"""

RETURN = r"""
actions:
  description: One C({action, target, result, before, after}) per target, in the order acted on.
  returned: always
  type: list
  elements: dict
  sample:
    - action: cancel_query
      target: "pid 4242 (report-worker, pivotal_app)"
      result: "cancelled (pg_cancel_backend); the session stays"
      before: "active 6.2 min: SELECT pg_sleep(3600)"
      after: "idle 0.1 s: SELECT pg_sleep(3600)"
sessions_by_application:
  description: Sessions cancelled or terminated (or that would be, in check mode), counted per C(application_name).
  returned: always
  type: dict
  sample: {pivotal-flow-worker: 20, pivotal-flow-backend: 1}
failed_actions:
  description: How many actions failed or could not be done for lack of privilege.
  returned: always
  type: int
  sample: 0
connectivity:
  description: Result of connecting as I(user), as in M(pivotal.flow_ops.pg_diagnose).
  returned: always
  type: dict
  sample: {available: true, state: ok, msg: "PostgreSQL at 127.0.0.1:5432/pivotal answered in 1.2 ms", latency_ms: 1.2, attempts: 1}
msg:
  description: One line summing up.
  returned: always
  type: str
  sample: "2 actions, 0 failed, 1 skipped"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.pivotal.flow_ops.plugins.module_utils import pg_connection, pg_session
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_connection import required_connection_spec as connection_spec
from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_remediation import Remediator


class ModuleFailure(Exception):
    pass


def _open(params: dict, user: str, password: str | None, read_only: bool) -> pg_session.Session:
    session, conn = pg_session.open_session(
        dict(params, login_user=user, login_password=password),
        connect_timeout=params["connect_timeout"],
        statement_timeout_s=params["maintenance_timeout_s"],
        lock_timeout_s=params["lock_timeout"],
        read_only=read_only,
    )
    if session is None:
        raise ModuleFailure(conn["msg"])
    return session


def has_targets(params: dict) -> bool:
    keys = (
        "cancel_queries",
        "terminate_idle_in_transaction",
        "terminate_idle",
        "analyze_tables",
        "reindex_indexes",
    )
    return any(params[key] for key in keys)


def run_module(params: dict, check_mode: bool) -> dict:
    if not has_targets(params):
        return {
            "changed": False,
            "actions": [],
            "sessions_by_application": {},
            "failed_actions": 0,
            "connectivity": {},
            "msg": "nothing to do",
        }
    signals = _open(params, params["login_user"], params["login_password"], read_only=False)

    def objects() -> pg_session.Session:
        if not params["maintenance_user"] or params["maintenance_user"] == params["login_user"]:
            return signals
        return _open(params, params["maintenance_user"], params["maintenance_password"], read_only=False)

    fix = Remediator(signals, objects, params, check_mode)
    try:
        for target in params["cancel_queries"]:
            fix.cancel_query(target)
        for target in params["terminate_idle_in_transaction"]:
            fix.terminate_session(
                "terminate_idle_in_transaction",
                target,
                ("idle in transaction",),
                params["idle_in_transaction_min_age_s"],
            )
        for target in params["terminate_idle"]:
            fix.terminate_session("terminate_idle_session", target, ("idle",), params["idle_min_age_s"])
        # Leftovers first, so the REINDEX that follows starts from a clean table.
        for target in sorted(params["reindex_indexes"], key=lambda t: not t.get("leftover")):
            fix.reindex(target)
        for target in params["analyze_tables"]:
            fix.analyze(target)
    except pg_session.QueryFailed as exc:
        raise ModuleFailure(f"remediation stopped: {exc}") from None
    finally:
        fix.close()
        signals.close()
    failed = sum(
        1
        for a in fix.actions
        if a["result"].startswith(("failed", "still", "not gone")) or "does not own" in a["result"]
    )
    done = sum(1 for a in fix.actions if not a["result"].startswith("skipped"))
    return {
        "changed": fix.changed,
        # "application" is kept internally for the per-application count, not in the action shape.
        "actions": [{k: v for k, v in act.items() if k != "application"} for act in fix.actions],
        "sessions_by_application": fix.by_application(),
        "failed_actions": failed,
        "msg": f"{done} actions{' (check mode)' if check_mode else ''}, {failed} failed, "
        f"{len(fix.actions) - done} skipped",
    }


def main() -> None:

    def targets() -> dict:
        return dict(type="list", elements="dict", default=[])

    module = AnsibleModule(
        argument_spec=dict(
            connection_spec(),
            maintenance_user=dict(type="str"),
            maintenance_password=dict(type="str", no_log=True),
            connect_timeout=dict(type="float", default=5.0),
            lock_timeout=dict(type="float", default=5.0),
            maintenance_timeout_s=dict(type="float", default=300.0),
            protected_applications=dict(type="list", elements="str", default=[]),
            cancel_queries=targets(),
            query_min_age_s=dict(type="float", default=300.0),
            cancel_grace_s=dict(type="float", default=5.0),
            terminate_timeout_s=dict(type="float", default=5.0),
            terminate_idle_in_transaction=targets(),
            idle_in_transaction_min_age_s=dict(type="float", default=300.0),
            terminate_idle=targets(),
            idle_min_age_s=dict(type="float", default=60.0),
            analyze_tables=targets(),
            reindex_indexes=targets(),
        ),
        supports_check_mode=True,
    )
    if not pg_connection.HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=pg_connection.PSYCOPG2_IMPORT_ERROR)
    try:
        result = run_module(module.params, module.check_mode)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), actions=[], failed_actions=0)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
