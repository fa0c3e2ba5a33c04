"""The incident role pages with each runbook's severity: its default is catalogue.yml's."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_incident_severities_default_is_the_catalogues() -> None:
    catalogue = yaml.safe_load((ROOT / "catalogue.yml").read_text())
    defaults = yaml.safe_load((ROOT / "collection/roles/incident/defaults/main.yml").read_text())
    entries = [*catalogue["runbooks"], *catalogue.get("maintenance", [])]
    expected = {rb["id"]: rb["severity"] for rb in entries}
    assert defaults["incident_severities"] == expected
