"""The restart budget's decisions, branch by branch: what a budget file may hold, the per-run
variables refused, the override's reason, the window, the retention and the refusal lines."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import budget_policy as bp

PATH = "/h/budget/restarts.json"


def _e(ts: float, **kw: Any) -> dict[str, Any]:
    return {"ts": ts, "reason": "r", "override": False, **kw}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "not JSON"),
        ("not json{", "not JSON"),
        ("[]", "no 'keys' object"),
        ('{"keys": []}', "no 'keys' object"),
        ('{"keys": {"k": {}}}', "are not a list"),
        ('{"keys": {"k": ["x"]}}', "no numeric 'ts'"),
        ('{"keys": {"k": [{"ts": "yesterday"}]}}', "no numeric 'ts'"),
        ('{"keys": {"k": [{"ts": true}]}}', "no numeric 'ts'"),
        ('{"keys": {"k": [{"ts": NaN}]}}', "no numeric 'ts'"),
        ('{"keys": {"k": [{"ts": Infinity}]}}', "no numeric 'ts'"),
        ('{"keys": {"k": [{}]}}', "no numeric 'ts'"),
    ],
)
def test_unreadable_state_is_never_data(raw: str, why: str) -> None:
    data, reason = bp.parse_state(raw)
    assert data is None and why in reason


def test_valid_state_is_data() -> None:
    data, why = bp.parse_state('{"version": 1, "keys": {"k": [{"ts": 1}, {"ts": 2.5}]}}')
    assert why == "" and data == {"version": 1, "keys": {"k": [{"ts": 1}, {"ts": 2.5}]}}
    assert bp.parse_state('{"keys": {}}') == ({"keys": {}}, "")


@pytest.mark.parametrize(
    ("extra_vars", "refused"),
    [
        ({}, []),
        (None, []),
        ({"backend_soak_seconds": 1, "pflow_restart_budget_override": True}, []),
        ({"backend_restart_budget_window": 1}, ["backend_restart_budget_window"]),
        ({"backend_restart_budget_max": 99}, ["backend_restart_budget_max"]),
        (
            {"cache_restart_budget_max": 9, "database_restart_budget_window": 9, "x": 1},
            ["cache_restart_budget_max", "database_restart_budget_window"],
        ),
        ({"restart_budget_max": 9}, ["restart_budget_max"]),
        ({"service_manager_budget": {"max_restarts": 99}}, ["service_manager_budget"]),
        # The environment part of the key: a fresh key is an empty budget.
        ({"pflow_env": "x", "backend_env": "x"}, ["backend_env", "pflow_env"]),
        ({"database_env": "x", "cache_env": "x"}, ["cache_env", "database_env"]),
        ({"pflow_confirm_env": "prod", "backend_confirm_env": "prod"}, []),
        # Not the policy: the override, its reason, lookalikes that only contain the words.
        ({"backend_restart_budget_override_reason": "x", "restart_budget_maximum": 1}, []),
    ],
)
def test_per_run_policy_vars(extra_vars: dict[str, Any] | None, refused: list[str]) -> None:
    assert bp.per_run_policy_vars(extra_vars) == refused


def test_per_run_refusal_names_the_variables_and_the_inventory() -> None:
    assert bp.per_run_refusal([]) == ""
    line = bp.per_run_refusal(["backend_restart_budget_max", "backend_restart_budget_window"])
    assert "\n" not in line
    assert "-e backend_restart_budget_max, backend_restart_budget_window" in line
    assert "comes from the inventory" in line


@pytest.mark.parametrize(
    ("override", "reason", "refused", "kept"),
    [
        (False, None, False, None),
        (False, "unused", False, None),
        (True, None, True, ""),
        (True, "", True, ""),
        (True, "  \t", True, ""),
        (True, " INC-42 ", False, "INC-42"),
    ],
)
def test_an_override_needs_a_reason(
    override: bool, reason: str | None, refused: bool, kept: str | None
) -> None:
    line = bp.override_refusal(override, reason)
    assert (
        line == "--override-budget needs a reason (who and why: an incident or ticket)"
    ) is refused
    assert bool(line) is refused
    assert bp.override_reason_of(override, reason) == kept


def test_unreadable_refusal_names_the_kept_copy() -> None:
    kept = PATH + ".corrupt-5000"
    assert bp.unreadable_refusal(PATH, kept) == (
        f"restart budget state unreadable at {PATH} (kept as {kept}); a human may --override-budget"
    )
    assert "(Permission denied)" in bp.unreadable_refusal(PATH, "", "Permission denied")


def test_retention_is_fixed_unless_a_window_is_longer() -> None:
    assert bp.retention(1) == bp.retention(1800) == bp.RETENTION_SECONDS == 86400
    assert bp.retention(172800) == 172800


def test_window_counts_future_entries_and_drops_expired_ones() -> None:
    entries = [_e(1050.0), _e(1000.0), _e(1200.0), _e(999.0)]
    assert [e["ts"] for e in bp.in_window(entries, 1100.0, 100)] == [1050.0, 1200.0]


def test_pruning_follows_the_retention_never_a_window() -> None:
    keys = {
        "a": [_e(1000.0), _e(90000.0)],
        "b": [_e(500.0)],
        "c": [_e(99999.0), _e(86401.0)],
    }
    out = bp.pruned(keys, 87000.0, 86400)
    assert out == {"a": [_e(1000.0), _e(90000.0)], "c": [_e(86401.0), _e(99999.0)]}


def test_clock_warning_only_for_entries_in_the_future() -> None:
    assert bp.clock_warning([_e(999.0), _e(1000.0)], 1000.0, PATH) == ""
    line = bp.clock_warning([_e(900.0), _e(1300.0), _e(1100.0)], 1000.0, PATH)
    assert line.startswith("clock jumped backwards: 2 restart(s)")
    assert "300 s in the future" in line and "still count" in line


def _assess(entries: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "now": 1000.0,
        "max_restarts": 2,
        "window_seconds": 100,
        "override": False,
        "override_reason": None,
    }
    args.update(kw)
    return bp.assess(entries, **args)


@pytest.mark.parametrize(
    ("entries", "kw", "allowed", "overridden", "refusal"),
    [
        ([], {}, True, False, ""),
        ([_e(950.0)], {}, True, False, ""),
        ([_e(950.0), _e(960.0)], {}, False, False, "restart budget spent: 2 of 2"),
        ([_e(850.0), _e(960.0)], {}, True, False, ""),  # one expired
        ([_e(1500.0), _e(1600.0)], {}, False, False, "restart budget spent"),  # clock jump
        ([], {"max_restarts": 0}, False, False, "automatic restarts are disabled"),
        (
            [_e(950.0), _e(960.0)],
            {"override": True, "override_reason": "INC-1"},
            True,
            True,
            "",
        ),
        ([], {"override": True, "override_reason": "INC-1"}, True, False, ""),
        ([], {"override": True, "override_reason": " "}, False, False, "needs a reason"),
        (
            [_e(950.0), _e(960.0)],
            {"override": True, "override_reason": ""},
            False,
            False,
            "needs a reason",
        ),
        ([], {"unreadable": "restart budget state unreadable"}, False, False, "state unreadable"),
        (
            [],
            {
                "unreadable": "restart budget state unreadable",
                "override": True,
                "override_reason": "x",
            },
            True,
            True,
            "",
        ),
        (
            [],
            {
                "unreadable": "restart budget state unreadable",
                "override": True,
                "override_reason": "",
            },
            False,
            False,
            "needs a reason",
        ),
    ],
)
def test_assess(
    entries: list[dict[str, Any]],
    kw: dict[str, Any],
    allowed: bool,
    overridden: bool,
    refusal: str,
) -> None:
    out = _assess(entries, **kw)
    assert (out["allowed"], out["overridden"]) == (allowed, overridden)
    assert refusal in out["refusal"] and bool(out["refusal"]) is bool(refusal)


def test_spent_refusal_says_when_and_how_to_overrule() -> None:
    line = bp.spent_refusal(3, 3, 1800, 42.7)
    assert line == (
        "restart budget spent: 3 of 3 restarts used in the last 30 min (next slot in 42 s); "
        "a human may --override-budget"
    )


def test_counts() -> None:
    assert bp.counts([], 1000.0, 100, 3) == {
        "used": 0,
        "remaining": 3,
        "oldest_ts": None,
        "resets_in_s": None,
    }
    assert bp.counts([_e(950.0), _e(990.0)], 1000.0, 100, 1) == {
        "used": 2,
        "remaining": 0,
        "oldest_ts": 950.0,
        "resets_in_s": 50.0,
    }


def test_new_entry_records_the_override_reason_only_with_an_override() -> None:
    assert bp.new_entry(1000.12345, "RB-01 down", False, None, "") == {
        "ts": 1000.123,
        "reason": "RB-01 down",
        "override": False,
    }
    assert bp.new_entry(1000.0, "RB-01 down", True, "INC-42", "r1") == {
        "ts": 1000.0,
        "reason": "RB-01 down",
        "override": True,
        "override_reason": "INC-42",
        "run_id": "r1",
    }


@pytest.mark.parametrize(
    ("allowed", "refusal", "expected"),
    [
        (True, "", "allowed: 1 of 3 restarts used in the window"),
        (False, "restart budget spent: ...", "refused: 1 of 3 restarts used in the window"),
        (False, "automatic restarts are disabled", "refused: 1 of 3 restarts used in the window"),
        (False, "--override-budget needs a reason", "refused: --override-budget needs a reason"),
    ],
)
def test_summary(allowed: bool, refusal: str, expected: str) -> None:
    assert bp.summary(allowed, 1, 3, refusal) == expected


@pytest.mark.parametrize(
    ("refusal", "guard"),
    [
        ("", False),
        ("restart budget spent: 3 of 3", False),
        ("automatic restarts are disabled (restart budget 0)", False),
        ("--override-budget needs a reason", True),
        ("restart budget state unreadable at /x (kept as /x.corrupt-1)", True),
        ("restart budget policy cannot be set per run (-e x_restart_budget_max)", True),
    ],
)
def test_is_guard_refusal(refusal: str, guard: bool) -> None:
    assert bp.is_guard_refusal(refusal) is guard
