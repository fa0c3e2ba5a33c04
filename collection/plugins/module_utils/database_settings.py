# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-02's settings step, which runs community.postgresql.postgresql_alter_system once per
setting the plan chose (reloadable, allowed, and alterable by the role, as pg_diagnose's
``evaluate_settings`` found them): the connection options it gets and how its results become
actions of the same shape as pg_remediate's, so the verdict reads one list.

Pure functions; the role reaches them through the ``pivotal.flow_ops.database_*`` filters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import math

from ansible_collections.pivotal.flow_ops.plugins.module_utils.pg_connection import APPLICATION_NAME

ACTION = "set"


def _ms(seconds):
    return max(1, int(round(float(seconds) * 1000)))


def alter_system_connect_params(connect_timeout, statement_timeout, lock_timeout):
    """libpq keywords for postgresql_alter_system's ``connect_params``.

    The session names itself as every other pflow-ops session does (so a diagnosis never takes it
    for the application's), and is bounded: libpq's connect_timeout takes whole seconds, at least
    1 (module_utils/pg_connection.py says why our own modules keep a deadline of their own), so
    the role's timeout is rounded up; the server ends a statement or a lock wait that outlives the
    role's timeouts (ALTER SYSTEM waits for the lock on postgresql.auto.conf).
    """
    return {
        "application_name": APPLICATION_NAME,
        "connect_timeout": str(max(1, int(math.ceil(float(connect_timeout))))),
        "options": "-c statement_timeout=%d -c lock_timeout=%d" % (_ms(statement_timeout), _ms(lock_timeout)),
    }


def alter_system_login(maintenance_user, maintenance_password, user, password):
    """The role ALTER SYSTEM runs as: the maintenance role when there is one (with its own
    password, even an empty one), else the monitoring role, as pg_remediate chooses."""
    if maintenance_user:
        return {"user": maintenance_user, "password": maintenance_password or ""}
    return {"user": user, "password": password or ""}


def _action(target, result, before="", after=""):
    return {"action": ACTION, "target": target, "result": result, "before": before, "after": after}


def _one(run, dry):
    """(action, failed) for one loop result of postgresql_alter_system."""
    item = run.get("item") or {}
    name, want, have = str(item.get("name", "?")), str(item.get("desired", "")), str(item.get("current", ""))
    if "restart_required" not in run:
        # The task tolerates failure (failed_when: false) so that the verdict can name it: a
        # module that did not finish returns no restart_required.
        return _action(name, "failed: %s" % (run.get("msg") or "postgresql_alter_system did not finish"), have), True
    if not run.get("changed"):
        return _action(name, "skipped: already %s (postgresql_alter_system compared the normalized values)" % want,
                       have, have), False
    if run.get("restart_required"):
        return _action(name, "still pending: the server needs a restart to apply it (pending_restart)", have, want), True
    if dry:
        return _action(name, "would ALTER SYSTEM SET %s = %s and reload (check mode)" % (name, want), have, want), False
    return _action(name, "applied (ALTER SYSTEM + pg_reload_conf, community.postgresql.postgresql_alter_system)",
                   have, want), False


def setting_actions(results, dry):
    """The registered loop (``results``) as {actions, failed, changed}; skipped items are left out."""
    actions, failed, changed = [], 0, False
    for run in (results or {}).get("results") or []:
        if run.get("skipped"):
            continue
        act, bad = _one(run, dry)
        actions.append(act)
        failed += int(bad)
        changed = changed or (bool(run.get("changed")) and not bad)
    return {"actions": actions, "failed": failed, "changed": changed}


def with_settings(fix, results, dry):
    """pg_remediate's result (``fix``, possibly a skipped task) with the settings step's actions
    added: changed, actions, failed_actions and msg cover both."""
    fix = dict(fix or {})
    found = setting_actions(results, dry)
    actions = list(fix.get("actions") or []) + found["actions"]
    failed = int(fix.get("failed_actions") or 0) + found["failed"]
    done = [a for a in actions if not str(a["result"]).startswith("skipped")]
    fix.update(
        changed=bool(fix.get("changed")) or found["changed"],
        actions=actions,
        failed_actions=failed,
        sessions_by_application=fix.get("sessions_by_application") or {},
        msg="%d actions%s, %d failed, %d skipped" % (len(done), " (check mode)" if dry else "", failed,
                                                     len(actions) - len(done)),
    )
    return fix
