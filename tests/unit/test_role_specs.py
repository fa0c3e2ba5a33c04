"""Each role's defaults, argument_specs and README list the same public variables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "collection" / "roles"
RUNBOOK_ROLES = {"backend", "database", "cache"}


def _roles() -> list[Path]:
    return sorted(p for p in ROLES.iterdir() if (p / "tasks" / "main.yml").is_file())


def _all_roles() -> list[Path]:
    """Every role, including those used only through entry points (service_manager)."""
    return sorted(p for p in ROLES.iterdir() if (p / "meta" / "argument_specs.yml").is_file())


def test_every_role_has_argument_specs_defaults_and_a_readme() -> None:
    for role in ROLES.iterdir():
        for name in ("meta/argument_specs.yml", "defaults/main.yml", "README.md"):
            assert (role / name).is_file(), f"{role.name} has no {name}"


@pytest.mark.parametrize("role", _all_roles(), ids=lambda p: p.name)
def test_defaults_equal_argument_specs(role: Path) -> None:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    for entry_point, entry in spec["argument_specs"].items():
        options = entry["options"]
        assert set(defaults) == set(options), f"{role.name}:{entry_point}"
        for name, value in defaults.items():
            assert options[name].get("default") == value, f"{role.name}:{entry_point} {name}"
            assert options[name].get("description"), f"{name} has no description"


@pytest.mark.parametrize("role", _all_roles(), ids=lambda p: p.name)
def test_public_variables_carry_the_role_prefix_and_are_documented(role: Path) -> None:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    readme = (role / "README.md").read_text()
    for name in defaults:
        assert name.startswith(f"{role.name}_"), name
        assert f"`{name}`" in readme, f"{name} missing from {role.name}/README.md"
    assert "## Idempotence" in readme


@pytest.mark.parametrize("role", _roles(), ids=lambda p: p.name)
def test_main_only_includes_phase_files(role: Path) -> None:
    main = yaml.safe_load((role / "tasks" / "main.yml").read_text())
    block = main[0]
    imported = [t["ansible.builtin.import_tasks"] for t in block["block"] + block["always"]]
    runbook_order = ["preflight.yml", "investigate.yml", "recover.yml", "verify.yml", "report.yml"]
    # The runbook roles have every phase; a helper role (alert_loop) only those it needs, but
    # always in runbook order and always ending with the report, in `always:`.
    expected = (
        runbook_order if role.name in RUNBOOK_ROLES else sorted(imported, key=runbook_order.index)
    )
    assert imported == expected
    assert [t["ansible.builtin.import_tasks"] for t in block["always"]] == ["report.yml"]
    for task in block["block"] + block["always"]:
        phase = task["ansible.builtin.import_tasks"].removesuffix(".yml")
        assert task["tags"] == [f"{role.name}_{phase}"]
