# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RB-01's preflight: may the run start? The endpoints its service manager needs are set, the
thresholds are in range (workflow extra vars and schedules reach the role without the AWX
survey's min/max, and the argument spec checks types only), and the environment an AWX survey
confirmed is this inventory's. A pure function of the role's values, one sentence per problem;
the role's preflight task fails with them (filter pivotal.flow_ops.backend_preflight)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

# (setting, lowest, highest, lowest allowed?): the same ranges as pflow-ops' own -e check.
RANGES = (
    ("backend_error_rate_max", 0, 1, True),
    ("backend_latency_p95_max_ms", 0, 60000, False),
    ("backend_soak_seconds", 0, 3600, True),
    ("backend_restart_budget_max", 0, 10, True),
)
ENDPOINTS = {"supervisord": "backend_supervisor_server_url", "compose": "backend_compose_project"}
SANDBOX_HINT = "For the local sandbox run `pflow-ops sandbox up`; otherwise set it in the inventory."


def _out_of_range(name, value):
    low, high, low_ok = next((lo, hi, ok) for key, lo, hi, ok in RANGES if key == name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "%s=%r is not a number." % (name, value)
    if number > high or number < low or (number == low and not low_ok):
        return "%s=%s: out of range (%s %g and at most %g); see collection/roles/backend/README.md." % (
            name, value, "at least" if low_ok else "above", low, high)
    return ""


def problems(values):
    """[] when the run may start; else one sentence per problem. ``values``: the role's
    variables by name (backend_env, backend_service_manager, backend_health_url, the manager's
    endpoint, the ranged thresholds, backend_confirm_env)."""
    v = values or {}
    env = v.get("backend_env", "")
    out = []
    if not v.get("backend_health_url"):
        out.append("backend_health_url is empty for env '%s'. %s" % (env, SANDBOX_HINT))
    endpoint = ENDPOINTS.get(v.get("backend_service_manager"))
    if endpoint and not v.get(endpoint):
        out.append("%s is empty for env '%s' (backend_service_manager %s). %s" % (
            endpoint, env, v.get("backend_service_manager"), SANDBOX_HINT))
    for name, _low, _high, _low_ok in RANGES:
        problem = _out_of_range(name, v.get(name))
        if problem:
            out.append(problem)
    confirm = v.get("backend_confirm_env") or ""
    if confirm and confirm != env:
        out.append("backend_confirm_env '%s' is not this inventory's environment '%s': refusing to run." % (confirm, env))
    return out
