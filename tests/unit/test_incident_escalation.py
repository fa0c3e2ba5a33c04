"""The incident role prints each runbook's escalation path: its default is catalogue.yml's."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_incident_escalation_default_is_the_catalogues() -> None:
    catalogue = yaml.safe_load((ROOT / "catalogue.yml").read_text())
    defaults = yaml.safe_load((ROOT / "collection/roles/incident/defaults/main.yml").read_text())
    expected = {rb["id"]: rb["escalation"] for rb in catalogue["runbooks"]}
    assert defaults["incident_escalation"] == expected
