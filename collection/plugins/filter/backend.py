# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-01's decisions (module_utils/backend_decisions.py) as filters for the backend role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_decisions as _rb01
from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_preflight as _preflight


def backend_preflight(values):
    """pivotal.flow_ops.backend_preflight: the problems that stop the run before it starts ([] to go on)."""
    return _preflight.problems(values)


def backend_assess(status, health, probe=None, resources=None, dependencies=None, settings=None):
    """pivotal.flow_ops.backend_assess: {problem, findings, dependencies_down, pid_before, squatter}."""
    return _rb01.assess(status, health, probe, resources, dependencies, settings)


def backend_node_diagnosis(assessment, status, signals, settings=None):
    """pivotal.flow_ops.backend_node_diagnosis: the assessment with its Node.js class (node) and finding."""
    return _rb01.with_node(assessment, status, signals, settings)


def backend_plan(assessment, mode):
    """pivotal.flow_ops.backend_plan: {restart, why}."""
    return _rb01.plan(assessment, mode)


def backend_verdict(assessment, plan, restart=None, verify_probe=None, settings=None, mode="recover",
                    check_mode=False):
    """pivotal.flow_ops.backend_verdict: {outcome, reason, next_runbook, actions, verification}."""
    return _rb01.conclude(assessment, plan, restart, verify_probe, settings, mode, check_mode)


def backend_run_result(record, assessment=None, plan=None, restart=None, verify_probe=None, settings=None,
                       mode="recover", check_mode=False, stopped=None):
    """pivotal.flow_ops.backend_run_result: pflow_run_result, the verdict included."""
    return _rb01.run_result(record, assessment, plan, restart, verify_probe, settings, mode, check_mode, stopped)


class FilterModule(object):
    def filters(self):
        return {
            "backend_preflight": backend_preflight,
            "backend_assess": backend_assess,
            "backend_node_diagnosis": backend_node_diagnosis,
            "backend_plan": backend_plan,
            "backend_verdict": backend_verdict,
            "backend_run_result": backend_run_result,
        }
