"""The fault table and the errors users get when the sandbox is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

import pflow_ops.sandbox as sandbox
from pflow_ops.sandbox import FAULTS, SandboxError


def test_fault_table_covers_the_documented_faults() -> None:
    expected = {"backend-crash", "backend-hang", "backend-errors", "db-down", "redis-down"}
    assert expected <= set(FAULTS)
    assert all(desc and "\n" not in desc for desc in FAULTS.values())


def test_unknown_fault_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as exc:
        sandbox.break_fault("disk-full", home=tmp_path)
    assert exc.value.exit_code == 2
    assert str(exc.value).startswith("unknown fault 'disk-full'; valid faults: ")
    for name in FAULTS:
        assert name in str(exc.value)


@pytest.mark.parametrize("action", ["break", "heal"])
def test_operations_on_a_sandbox_that_is_not_up(tmp_path: Path, action: str) -> None:
    with pytest.raises(SandboxError, match=r"not up; run `pflow-ops sandbox up` first"):
        if action == "break":
            sandbox.break_fault("db-down", home=tmp_path)
        else:
            sandbox.heal(home=tmp_path)


def test_status_and_down_of_a_sandbox_that_never_ran(tmp_path: Path) -> None:
    result = sandbox.status(home=tmp_path)
    assert result["running"] is False
    assert result["programs"] == {}
    assert result["health"] is None
    assert result["endpoints"] is None
    sandbox.down(home=tmp_path)  # idempotent: nothing to stop is not an error
    sandbox.down(home=tmp_path, purge=True)
    assert not (tmp_path / "sandbox").exists()
