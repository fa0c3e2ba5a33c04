# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-02 decisions for the database role (module_utils/database_decisions.py): the role's
tasks call these filters; Jinja only formats."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_decisions as _db
from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_settings as _settings


def database_classify(dx, status=None):
    """pivotal.flow_ops.database_classify: problem, findings, escalations, advisories, pending, logs."""
    return _db.classify(dx, status)


def database_plan(dx, mode, problem, override=False, override_reason=""):
    """pivotal.flow_ops.database_plan: restart_wanted, restart_reason (what the restart budget
    records), remediate and the pg_remediate targets."""
    return _db.plan(mode, problem, dx, override, override_reason)


def database_fixes_made(fix, dry):
    """pivotal.flow_ops.database_fixes_made: pg_remediate changed something for real."""
    return _db.fixes_made(fix, dry)


def database_alter_system_params(connect_timeout, statement_timeout, lock_timeout):
    """pivotal.flow_ops.database_alter_system_params: connect_params for postgresql_alter_system."""
    return _settings.alter_system_connect_params(connect_timeout, statement_timeout, lock_timeout)


def database_alter_system_login(maintenance_user, maintenance_password, user, password):
    """pivotal.flow_ops.database_alter_system_login: {user, password} postgresql_alter_system logs in with."""
    return _settings.alter_system_login(maintenance_user, maintenance_password, user, password)


def database_with_settings(fix, results, dry):
    """pivotal.flow_ops.database_with_settings: pg_remediate's result plus the settings step's actions."""
    return _settings.with_settings(fix, results, dry)


def database_verdict(facts):
    """pivotal.flow_ops.database_verdict: outcome, reason, next_runbook, actions, verification."""
    return _db.verdict(facts)


class FilterModule(object):
    def filters(self):
        return {
            "database_classify": database_classify,
            "database_plan": database_plan,
            "database_fixes_made": database_fixes_made,
            "database_verdict": database_verdict,
            "database_alter_system_params": database_alter_system_params,
            "database_with_settings": database_with_settings,
            "database_alter_system_login": database_alter_system_login,
        }
