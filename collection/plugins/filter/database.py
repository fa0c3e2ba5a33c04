# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-02 decisions for the database role (module_utils/database_decisions.py): the role's
tasks call these filters; Jinja only formats."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import database_decisions as _db


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
        }
