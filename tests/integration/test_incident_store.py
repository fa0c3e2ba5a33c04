"""The incident record in a real etcd (the session's etcd-server, tests/integration/conftest.py),
when the environment's inventory names it: two controllers (two PFLOW_OPS_HOMEs on one etcd)
document one incident through the incident role's own entry point and update ONE record, so the
second run comments on the first run's ticket and edits its chat message; concurrent updates from
two processes lose nothing; `pflow-ops incident ack --env` from one home is seen by the other; a
corrupt value is kept aside like a corrupt file; a stopped etcd fails the record with one line
naming the store, the run still succeeds, no sink posts and no local file is written instead;
no sink secret reaches etcd. Assertions on behaviour, never on timings.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops.cli import main
from tests.integration import etcd_server
from tests.integration.recording_endpoint import RecordingEndpoint
from tests.plugins import load_plugin

pytestmark = pytest.mark.skipif(not etcd_server.available(), reason="etcd-server is not installed")

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = Path(__file__).resolve().parent / "playbooks" / "incident_document.yml"
ENV = "it"
KEY = "INC-77"
SLACK_TOKEN = "xoxb-test-0000-STORESECRET"
JIRA_TOKEN = "jira-pat-STORESECRET"
SECRETS = (SLACK_TOKEN, JIRA_TOKEN)

action = load_plugin("incident_record", kind="action")
model = action.incident
SHA = model.key_sha(KEY)
RECORD_KEY = f"/pflow-ops/incidents/{ENV}/{SHA}"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[RecordingEndpoint]:
    server = RecordingEndpoint()
    server.start()
    yield server
    server.stop()


def _project(root: Path, url: str) -> Path:
    """A project whose inventory (environment ``it``) names ``url`` as its coordination store."""
    project = root / "project"
    (project / "inventories" / ENV).mkdir(parents=True)
    (project / "collection").symlink_to(ROOT / "collection")
    inventory = {
        "all": {
            "hosts": {"localhost": None},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "pflow_env": ENV,
                "pflow_coordination_url": url,
            },
        }
    }
    (project / "inventories" / ENV / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return project


@pytest.fixture
def project(etcd: etcd_server.EtcdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment on the session's etcd, its incident keys fresh for the test."""
    _client(etcd).delete_prefix("/pflow-ops/incidents")
    project = _project(tmp_path, etcd.url)
    monkeypatch.setenv("PFLOW_OPS_PROJECT", str(project))
    return project


def _client(server: etcd_server.EtcdServer) -> Any:
    import etcd3gw

    return etcd3gw.Etcd3Client(host=etcd_server.HOST, port=server.client_port, api_path="/v3/")


def _values(server: etcd_server.EtcdServer) -> dict[str, str]:
    """Every key and value under /pflow-ops/ as etcd holds them."""
    got = _client(server).get_prefix("/pflow-ops/")
    return {meta["key"].decode(): value.decode() for value, meta in got}


def _document(
    project: Path, home: Path, url: str, run: str, outcome: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One run documented by ansible-playbook through the incident role's document entry point,
    as controller ``home`` (its own PFLOW_OPS_HOME) with the project's inventory."""
    sinks = [
        {"kind": "slack", "api_url": f"{url}/slack/api", "token": SLACK_TOKEN, "channel": "#inc"},
        {"kind": "jira", "uri": f"{url}/jira", "token": JIRA_TOKEN, "project": "OPS"},
    ]
    extra = {
        "pflow_incident_sinks": [{**s, "retries": 1, "delay": 0, "timeout": 5} for s in sinks],
        "pflow_run_id": run,
        "pflow_incident_key": KEY,
        "incident_event": "documented",
        "test_run_result": {
            "runbook": "RB-01",
            "host": "web1",
            "service": "backend",
            "outcome": outcome,
            "reason": "backend down",
            "actions": [],
        },
    }
    home.mkdir(parents=True, exist_ok=True)
    (home / "extra.json").write_text(json.dumps(extra))
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(project / "inventories" / ENV / "hosts.yml"),
            str(DOCUMENT),
            "-e",
            f"@{home / 'extra.json'}",
        ],
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_SHOW_CUSTOM_STATS": "1",
            "PFLOW_OPS_HOME": str(home),
            **(env or {}),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _cli(home: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(home))
    return main(["incident", *argv])


def test_two_controllers_document_one_incident_in_one_record_and_one_ticket(
    etcd: etcd_server.EtcdServer,
    project: Path,
    endpoint: RecordingEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint.reset()
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    for home, run, outcome in ((home_a, "run-1", "escalate"), (home_b, "run-2", "recovered")):
        proc = _document(project, home, endpoint.url, run, outcome)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "could not be documented" not in proc.stdout
    # The second controller found the first one's handles: one ticket, one message edited.
    assert endpoint.calls() == [
        "POST /slack/api/chat.postMessage",
        "POST /jira/rest/api/2/issue/",
        "POST /slack/api/chat.update",
        "POST /slack/api/chat.postMessage",
        "POST /jira/rest/api/2/issue/OPS-1/comment",
    ]
    values = _values(etcd)
    record = json.loads(values[RECORD_KEY])
    assert record["key"] == KEY and record["runs"] == ["run-1", "run-2"]
    assert record["handles"]["jira"] == {"issue": "OPS-1"}
    assert [e["outcome"] for e in record["events"]] == ["escalate", "recovered"]
    for text in values.values():  # no sink secret anywhere in the store
        for secret in SECRETS:
            assert secret not in text
    for home in (home_a, home_b):  # the record lives in etcd only
        assert not (home / "incidents").exists()

    # `pflow-ops incident ack` from the second home is seen by the first.
    assert _cli(home_b, monkeypatch, "ack", KEY, "--by", "ana", "--env", ENV) == 0
    assert "acked by ana" in capsys.readouterr().out
    assert _cli(home_a, monkeypatch, "show", KEY, "--env", ENV, "--output", "json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ack"]["by"] == "ana" and shown["runs"] == ["run-1", "run-2"]
    assert _cli(home_a, monkeypatch, "list", "--env", ENV) == 0
    assert f"{KEY}  open, acked by ana  last recovered  runs 2" in capsys.readouterr().out
    assert not (home_b / "incidents").exists()


def _records(home: str, url: str) -> Any:
    return action.records_for(home, {"pflow_coordination_url": url, "pflow_env": ENV})


def _writer(home: str, url: str, n: int) -> None:
    records = _records(home, url)
    for i in range(15):
        args = {
            "state": "update",
            "key": KEY,
            "runbook": "RB-01",
            "run_id": f"w{n}-{i}",
            "event": "documented",
            "outcome": "escalate",
            "sinks": [],
            "by": "",
        }
        action.get_or_update(home, args, records)


def test_concurrent_updates_from_two_controllers_lose_nothing(
    etcd: etcd_server.EtcdServer, project: Path, tmp_path: Path
) -> None:
    del project
    procs = [
        multiprocessing.get_context("fork").Process(
            target=_writer, args=(str(tmp_path / f"home-{n}"), etcd.url, n)
        )
        for n in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    record = json.loads(_values(etcd)[RECORD_KEY])
    assert sorted(record["runs"]) == sorted(f"w{n}-{i}" for n in range(2) for i in range(15))
    assert not any((tmp_path / f"home-{n}" / "incidents").exists() for n in range(2))


def test_a_corrupt_value_in_etcd_is_kept_aside_and_a_fresh_record_started(
    etcd: etcd_server.EtcdServer,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    del project
    _client(etcd).put(RECORD_KEY, '{"key": "INC-77", "handles": ')
    assert _cli(tmp_path, monkeypatch, "show", KEY, "--env", ENV) == 1
    assert "no incident record for INC-77" in capsys.readouterr().err
    args = {"state": "update", "key": KEY, "runbook": "RB-01", "run_id": "r2"}
    args.update(event="documented", outcome="recovered", sinks=[], by="")
    got = action.get_or_update(str(tmp_path), args, _records(str(tmp_path), etcd.url))
    assert got["exists"] is False and got["record"]["runs"] == ["r2"]
    assert len(got["warnings"]) == 1 and "could not be read" in got["warnings"][0]
    assert f"kept as {etcd.url}/pflow-ops/incidents-corrupt/{ENV}/{SHA}-" in got["warnings"][0]
    values = _values(etcd)
    kept = [v for k, v in values.items() if k.startswith("/pflow-ops/incidents-corrupt/")]
    assert kept == ['{"key": "INC-77", "handles": ']
    assert json.loads(values[RECORD_KEY])["runs"] == ["r2"]
    assert not (tmp_path / "incidents").exists()


def test_a_stopped_etcd_fails_the_record_with_one_line_and_nothing_falls_back(
    endpoint: RecordingEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Documenting never changes the run's outcome: the play succeeds with the error published;
    no sink posts (without the record it would open a second ticket) and no local record is
    written (two diverging records would post duplicate tickets)."""
    endpoint.reset()
    home = tmp_path / "home"
    with etcd_server.running() as server:
        project = _project(tmp_path, server.url)
        monkeypatch.setenv("PFLOW_OPS_PROJECT", str(project))
        records = _records(str(home), server.url)
        server.proc.terminate()
        server.proc.wait(30)
        args = {"state": "update", "key": KEY, "runbook": "RB-01", "run_id": "r1"}
        args.update(event="documented", outcome="escalate", sinks=[], by="")
        with pytest.raises(action.coordination.Unavailable) as failed:
            action.get_or_update(str(home), args, records)
        assert str(failed.value).startswith(f"coordination store {server.url} unreachable (")
        proc = _document(project, home, endpoint.url, "run-1", "escalate")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert f"incident record: coordination store {server.url} unreachable (" in proc.stdout
        assert endpoint.calls() == []
        assert _cli(home, monkeypatch, "ack", KEY, "--env", ENV) == 3
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"incident records: coordination store {server.url} unreachable (" in err
    assert not (home / "incidents").exists()
