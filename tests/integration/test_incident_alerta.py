"""Issue 16 against a real ticket system: the incident role's `alerta` sink and a real Alerta
server (tests/integration/alerta.py, on the sandbox's PostgreSQL). Three documents of one
incident (escalate, escalate again, the alert resolved) are ONE Alerta alert with a note per run,
open until the resolution and closed by it; a wrong API key is a failed sink in the record and the
report, never a different runbook outcome, and the key is nowhere in the output or the home."""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.alerta import Alerta, alerta_server
from tests.integration.conftest import Stack
from tests.integration.test_incident import _files_with, _playbook, _project, _record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def alerta(stack: Stack) -> Iterator[Alerta]:
    with alerta_server(stack.home) as server:
        yield server


def _sinks_yaml(server: Alerta, api_key: str) -> str:
    return (
        "pflow_incident_sinks:\n"
        f"  - {{kind: alerta, url: '{server.url}', api_key: '{api_key}', retries: 1}}\n"
    )


def _result(outcome: str) -> str:
    """A runbook result as -e JSON (extra vars win over the playbook's own set_fact)."""
    return json.dumps(
        {
            "pflow_run_result": {
                "runbook": "RB-03",
                "host": "localhost",
                "service": "redis",
                "outcome": outcome,
                "reason": "Redis restart budget spent" if outcome == "escalate" else "healthy",
                "findings": [],
                "actions": [],
                "verification": [],
            }
        }
    )


def test_three_runs_of_one_incident_are_one_alerta_alert_closed_on_recovery(
    alerta: Alerta, tmp_path: Path
) -> None:
    key = "INC-ALERTA-" + secrets.token_hex(3)
    sinks = _sinks_yaml(alerta, alerta.api_key)
    runs = [
        ("run-1", "escalate", "documented"),
        ("run-2", "escalate", "documented"),  # a second alert of the same incident
        ("run-3", "recovered", "resolved"),  # the closed loop saw the alert resolve
    ]
    for run_id, outcome, event in runs:
        done = _playbook(
            tmp_path,
            sinks,
            "-e",
            f"pflow_incident_key={key}",
            "-e",
            f"pflow_run_id={run_id}",
            "-e",
            f"incident_event={event}",
            "-e",
            _result(outcome),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert alerta.api_key not in done.stdout + done.stderr
        (alert,) = alerta.alerts(key)  # one alert for the incident, after every run
        # An escalation never closes it; only the resolution does.
        assert alert["status"] == ("closed" if event == "resolved" else "open")

    assert alert["event"] == "RB-03" and alert["environment"] == "Production"
    # The runbook's catalogue severity (RB-03: medium-high), in Alerta's words, as the pager's.
    assert alert["severity"] == "minor" and alert["service"] == ["redis"]
    assert alert["attributes"]["incidentKey"] == key
    assert alert["attributes"]["runId"] == "run-1"
    notes = alerta.notes(alert["id"])
    assert [n["text"].splitlines()[0] for n in notes] == [
        "run run-1, documented, escalate",
        "run run-2, documented, escalate",
        "run run-3, resolved, recovered",
    ]
    assert "Escalation path:" in notes[0]["text"]

    record = _record(tmp_path, key)
    assert record["handles"]["alerta"] == {"id": alert["id"], "notes": 3, "closed": True}
    assert record["resolved"] is True
    assert [e["sinks"][0]["status"] for e in record["events"]] == ["ok", "ok", "ok"]
    assert record["events"][0]["sinks"][0]["detail"] == "create, note: alert " + alert["id"]
    assert record["events"][-1]["sinks"][0]["detail"] == "note, close: alert " + alert["id"]
    assert _files_with(tmp_path / "home", (alerta.api_key,)) == []  # records, runner artifacts


@pytest.fixture
def wrong_key(
    sandbox: Stack, alerta: Alerta, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, str]]:
    """The sandbox run through a project whose 'incident' environment has an Alerta sink with a
    key Alerta does not know."""
    bad = "wrong-" + secrets.token_hex(12)
    project = _project(tmp_path_factory.mktemp("alerta"), _sinks_yaml(alerta, bad))
    shutil.rmtree(sandbox.home / "incidents", ignore_errors=True)
    yield dataclasses.replace(sandbox, env={**sandbox.env, "PFLOW_OPS_PROJECT": str(project)}), bad
    shutil.rmtree(sandbox.home / "incidents", ignore_errors=True)


def test_a_wrong_api_key_fails_the_sink_never_the_runbook(
    wrong_key: tuple[Stack, str], alerta: Alerta
) -> None:
    st, bad = wrong_key
    key = "INC-BADKEY-" + secrets.token_hex(3)
    run = st.cli("recover", "rb-03", "--env", "incident", "--output", "json", "--incident", key)
    assert run.rc == 0, run.stderr
    assert run.json["outcome"] == "healthy"  # what it would be with no sink at all
    (sink,) = run.json["incident"]["sinks"]
    assert sink["sink"] == "alerta" and sink["status"] == "failed"
    assert "HTTP 401" in sink["detail"] and bad not in sink["detail"]
    assert alerta.alerts(key) == []
    record = json.loads(st.cli("incident", "show", key, "--output", "json").stdout)
    assert record["handles"] == {}
    assert bad not in run.stdout + run.stderr
    assert _files_with(st.home, (bad,)) == []
