"""The collection's Event-Driven Ansible rulebook: valid for ansible-rulebook, routed exactly as
the catalogue says, and run for real (ansible-rulebook + its Drools engine) against an alert storm.

Only the event source and the playbook are swapped in the run: the Alertmanager source plugin
lives in the ansible.eda collection (Galaxy, unreachable here), so a local source replays
Alertmanager-shaped events, and a recording playbook stands in for the runbook so the test sees
exactly which runs the rules start and with which variables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pflow_ops import catalogue

ROOT = Path(__file__).resolve().parents[2]
RULEBOOK = ROOT / "collection" / "extensions" / "eda" / "rulebooks" / "pivotal_flow_alerts.yml"
BIN = Path(sys.executable).parent

STORM_SOURCE = """
import asyncio

def alert(name, status, fingerprint, **labels):
    return {"alert": {"status": status, "fingerprint": fingerprint,
                      "labels": {"alertname": name, **labels}}}

async def main(queue, args):
    # An alert storm: Alertmanager re-sends the same firing alert many times.
    for _ in range(int(args["storm"])):
        await queue.put(alert("BackendServiceDown", "firing", "1a2b3c4d5e6f7081"))
    await queue.put(alert("RedisHighEvictions", "firing", "99aa88bb77cc66dd"))
    await queue.put(alert("DatabaseSlowQueries", "resolved", "0123456789abcdef"))
    await queue.put(alert("DiskFull", "firing", "fedcba9876543210"))
    await queue.put(alert("HighErrorRate", "firing", "aaaabbbbccccdddd", path="$(reboot)"))
    await asyncio.sleep(1)
"""

RECORDER = """
- name: Record the run the rulebook started
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the alert variables the playbook received
      ansible.builtin.copy:
        content: "{{ {'alertname': pflow_alert_name, 'fingerprint': pflow_alert_fingerprint,
                      'mode': pflow_mode, 'playbook': recorded_playbook} | to_json }}"
        dest: "{{ out_dir }}/{{ pflow_alert_name }}-{{ 999999999 | random }}.json"
        mode: "0600"
"""


def _rulebook() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULEBOOK.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def _alerts_in(condition: str) -> set[str]:
    inside = condition.split(" in [", 1)[1].split("]", 1)[0]
    return {name.strip().strip('"') for name in inside.split(",")}


def _collection_playbook(path: str) -> str:
    """The FQCN a catalogue playbook (a thin import_playbook wrapper) runs."""
    plays = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    return str(plays[0]["ansible.builtin.import_playbook"])


def test_the_rulebook_is_valid_for_ansible_rulebook() -> None:
    import ansible_rulebook

    schema_path = Path(ansible_rulebook.__file__).parent / "schema" / "ruleset_schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.validate(_rulebook(), schema)


def test_the_rulebook_routes_every_catalogue_alert_to_its_runbook_with_a_throttle() -> None:
    cat = catalogue.load()
    rules = {r["name"].split(" ", 1)[0]: r for r in _rulebook()[0]["rules"]}
    assert set(rules) == {rb.id for rb in cat.runbooks}
    for rb in cat.runbooks:
        rule = rules[rb.id]
        assert _alerts_in(rule["condition"]) == set(rb.alerts), rb.id
        assert 'event.alert.status == "firing"' in rule["condition"]
        run = rule["action"]["run_playbook"]
        assert run["name"] == _collection_playbook(rb.playbook)
        assert run["extra_vars"]["pflow_alert_name"] == "{{ event.alert.labels.alertname }}"
        assert rule["throttle"]["group_by_attributes"] == ["event.alert.labels.alertname"]
        assert rule["throttle"]["once_within"]
    source = _rulebook()[0]["sources"][0]
    assert source["ansible.eda.alertmanager"]["host"] == "127.0.0.1"


def test_an_alert_storm_starts_one_run_per_alert(tmp_path: Path) -> None:
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        pytest.fail("ansible-rulebook needs a Java runtime: run scripts/setup.sh")
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "storm.py").write_text(STORM_SOURCE, encoding="utf-8")
    (tmp_path / "record.yml").write_text(RECORDER, encoding="utf-8")
    out = tmp_path / "runs"
    out.mkdir()
    rulebook = _rulebook()
    rulebook[0]["sources"] = [{"name": "storm", "storm": {"storm": 300}}]
    for rule in rulebook[0]["rules"]:
        run = rule["action"]["run_playbook"]
        run["extra_vars"].update(out_dir=str(out), recorded_playbook=run["name"])
        run["name"] = str(tmp_path / "record.yml")
    (tmp_path / "rulebook.yml").write_text(yaml.safe_dump(rulebook), encoding="utf-8")
    (tmp_path / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [
            str(BIN / "ansible-rulebook"),
            "--rulebook",
            str(tmp_path / "rulebook.yml"),
            "-i",
            str(tmp_path / "hosts"),
            "-S",
            str(tmp_path / "sources"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = sorted(
        (json.loads(p.read_text()) for p in out.glob("*.json")), key=lambda r: r["alertname"]
    )
    # 300 notifications of one alert: one run. A resolved alert and an unknown one: none. A
    # label carrying shell syntax is data: the run gets the alert's name, nothing else.
    assert runs == [
        {
            "alertname": "BackendServiceDown",
            "fingerprint": "1a2b3c4d5e6f7081",
            "mode": "recover",
            "playbook": "pivotal.flow_ops.rb_01_backend_down",
        },
        {
            "alertname": "HighErrorRate",
            "fingerprint": "aaaabbbbccccdddd",
            "mode": "recover",
            "playbook": "pivotal.flow_ops.rb_01_backend_down",
        },
        {
            "alertname": "RedisHighEvictions",
            "fingerprint": "99aa88bb77cc66dd",
            "mode": "recover",
            "playbook": "pivotal.flow_ops.rb_03_cache_issues",
        },
    ]
