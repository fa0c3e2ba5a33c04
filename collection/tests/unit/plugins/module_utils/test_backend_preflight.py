"""RB-01's preflight, branch by branch: endpoints, ranges, the confirmed environment."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import backend_preflight as pf

GOOD = {
    "backend_env": "local",
    "backend_confirm_env": "",
    "backend_service_manager": "supervisord",
    "backend_health_url": "http://127.0.0.1:3000/health",
    "backend_supervisor_server_url": "unix:///run/supervisor.sock",
    "backend_compose_project": "",
    "backend_error_rate_max": 0.05,
    "backend_latency_p95_max_ms": 1000,
    "backend_soak_seconds": 0,
    "backend_restart_budget_max": 3,
}


def test_a_good_configuration_starts() -> None:
    assert pf.problems(GOOD) == []
    assert pf.problems(dict(GOOD, backend_confirm_env="local")) == []
    assert pf.problems(dict(GOOD, backend_service_manager="compose", backend_compose_project="pf",
                            backend_supervisor_server_url="")) == []


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"backend_health_url": ""}, "backend_health_url is empty for env 'local'. For the local sandbox"),
        ({"backend_supervisor_server_url": ""}, "backend_supervisor_server_url is empty for env 'local'"),
        ({"backend_service_manager": "compose"}, "backend_compose_project is empty for env 'local'"),
        ({"backend_error_rate_max": 5}, "backend_error_rate_max=5: out of range (at least 0 and at most 1)"),
        ({"backend_error_rate_max": -0.1}, "backend_error_rate_max=-0.1: out of range"),
        ({"backend_latency_p95_max_ms": 0}, "backend_latency_p95_max_ms=0: out of range (above 0"),
        ({"backend_latency_p95_max_ms": 60001}, "backend_latency_p95_max_ms=60001: out of range"),
        ({"backend_soak_seconds": 3601}, "backend_soak_seconds=3601: out of range"),
        ({"backend_restart_budget_max": 11}, "backend_restart_budget_max=11: out of range"),
        ({"backend_restart_budget_max": "many"}, "backend_restart_budget_max='many' is not a number"),
        ({"backend_confirm_env": "prod"}, "backend_confirm_env 'prod' is not this inventory's environment 'local': refusing"),
    ],
)
def test_each_problem_stops_the_run_with_its_sentence(over: dict, words: str) -> None:
    found = pf.problems(dict(GOOD, **over))
    assert len(found) == 1 and words in found[0]


def test_every_problem_is_named_at_once() -> None:
    # No manager named: only the health URL, and every threshold missing.
    assert len(pf.problems({})) == 1 + len(pf.RANGES)
