# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the one outcome vocabulary (module_utils/outcome.py), for roles and the AWX gate."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import outcome as _outcome


def combine_outcomes(outcomes):
    """pivotal.flow_ops.combine_outcomes: the worst of a list of outcomes (error when empty)."""
    return _outcome.combine(outcomes or [])


def combine_results(results):
    """pivotal.flow_ops.combine_results: {outcome, hosts, not_ok} of a pflow_results mapping."""
    return _outcome.combine_results(results or {})


def outcome_needs_human(outcome):
    """pivotal.flow_ops.outcome_needs_human: escalate, refused or error."""
    return _outcome.needs_human(outcome)


class FilterModule(object):
    def filters(self):
        return {
            "combine_outcomes": combine_outcomes,
            "combine_results": combine_results,
            "outcome_needs_human": outcome_needs_human,
        }
