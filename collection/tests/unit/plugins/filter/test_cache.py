"""The cache filters: what the role calls, with the values Ansible hands them."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.filter import cache

FILTERS = cache.FilterModule().filters()


def test_the_role_finds_every_filter() -> None:
    assert set(FILTERS) == {"cache_assess", "cache_recovery", "cache_verdict"}


@pytest.mark.parametrize(
    ("enabled", "problem"), [(True, "tuning"), ("false", ""), ("True", "tuning")]
)
def test_an_extra_var_string_is_read_as_ansible_reads_it(enabled: object, problem: str) -> None:
    diag = {
        "available": True,
        "config_access": True,
        "signals": {"noeviction_cache": True},
        "config": {"maxmemory-policy": "noeviction"},
    }
    assert FILTERS["cache_assess"](diag, None, enabled)["problem"] == problem


def test_no_facts_is_not_a_crash() -> None:
    assert FILTERS["cache_verdict"](None)["outcome"] == "healthy"
