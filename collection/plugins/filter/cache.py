# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Pivotal Flow SRE <sre@pivotal-flow.example>
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-03's decisions (module_utils/cache_decisions.py, cache_verdict.py) as filters for the cache role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_decisions as _cache
from ansible_collections.pivotal.flow_ops.plugins.module_utils import cache_verdict as _verdict


def cache_assess(diag, service=None, tuning_enabled=True):
    """pivotal.flow_ops.cache_assess: {problem, settings, purge, kill_idle_clients,
    recommendations, maxmemory_ceiling, plan, findings} from redis_diagnose's result."""
    # An extra var (-e cache_tuning_enabled=false) arrives as a string: read it as Ansible would.
    enabled = str(tuning_enabled).strip().lower() in ("1", "true", "yes", "on")
    return _cache.assess(diag or {}, service or {}, enabled)


def cache_recovery(mode, problem, state, override=False, override_reason=""):
    """pivotal.flow_ops.cache_recovery: {restart, tune, restart_reason}: what the recover phase
    may change, and the reason the restart budget records."""
    return _cache.recovery(mode, problem, state, override, override_reason)


def cache_verdict(facts):
    """pivotal.flow_ops.cache_verdict: {outcome, reason, next_runbook, actions, verification,
    findings} of an RB-03 run."""
    return _verdict.verdict(facts or {})


class FilterModule(object):
    def filters(self):
        return {
            "cache_assess": cache_assess,
            "cache_recovery": cache_recovery,
            "cache_verdict": cache_verdict,
        }
