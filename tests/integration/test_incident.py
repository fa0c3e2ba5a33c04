"""Issue 16 end to end: runbook runs on the real sandbox document their incident in a real SMTP
server (aiosmtpd, with AUTH) and a local ticket tracker speaking the generic ticket webhook.
An alert handled twice is one ticket with two comments and one email thread; an escalation
opens a ticket and never resolves it; the resolution event resolves; a dead sink is a warning,
never a different outcome; no sink secret lands under $PFLOW_OPS_HOME."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.sandbox.net import free_ports
from tests.integration.conftest import ROOT, Run, Stack
from tests.integration.incident_servers import Mailbox, Tracker, smtp_server, ticket_tracker

pytestmark = pytest.mark.integration

SMTP_USER = "pflow"
SMTP_PASSWORD = f"smtpsecret-{secrets.token_hex(8)}"
TICKET_TOKEN = f"ticketsecret-{secrets.token_hex(8)}"
FINGERPRINT = "4c7e1d2a9b3f5e60"


@dataclasses.dataclass
class Sinks:
    mailbox: Mailbox
    tracker: Tracker
    smtp_port: int
    tracker_url: str


def _sinks_yaml(smtp_port: int, tracker_url: str) -> str:
    return (
        "pflow_incident_sinks:\n"
        f"  - {{kind: email, host: 127.0.0.1, port: {smtp_port}, secure: never,"
        f" username: {SMTP_USER}, password: '{SMTP_PASSWORD}', from: pflow-ops@example.test,"
        " to: [oncall@example.test], retries: 1}\n"
        f"  - {{kind: ticket, url: '{tracker_url}', token: '{TICKET_TOKEN}', retries: 1}}\n"
    )


def _project(tmp: Path, sinks_yaml: str) -> Path:
    """The checkout, symlinked, plus an environment 'incident': the local inventory with the
    sinks in its group_vars (where an environment sets them; a vault in production)."""
    project = tmp / "project"
    project.mkdir()
    for item in ROOT.iterdir():
        if item.name not in ("inventories", ".git"):
            (project / item.name).symlink_to(item)
    inventories = project / "inventories"
    inventories.mkdir()
    for env in (ROOT / "inventories").iterdir():
        (inventories / env.name).symlink_to(env)
    shutil.copytree(ROOT / "inventories" / "local", inventories / "incident")
    with (inventories / "incident" / "group_vars" / "all.yml").open("a") as f:
        f.write(sinks_yaml)
    return project


@pytest.fixture(scope="module")
def sinks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sinks, Path]]:
    with (
        smtp_server(SMTP_USER, SMTP_PASSWORD) as (port, box),
        ticket_tracker(TICKET_TOKEN) as (url, tracker),
    ):
        project = _project(tmp_path_factory.mktemp("incident"), _sinks_yaml(port, url))
        yield Sinks(box, tracker, port, url), project


@pytest.fixture
def documented(sandbox: Stack, sinks: tuple[Sinks, Path]) -> Iterator[tuple[Stack, Sinks]]:
    """The sandbox, run through the project whose 'incident' environment has the sinks; each
    test starts with empty sinks and no incident record."""
    servers, project = sinks
    servers.mailbox.messages.clear()
    servers.tracker.requests.clear()
    servers.tracker.tickets.clear()
    shutil.rmtree(sandbox.home / "incidents", ignore_errors=True)
    yield (
        dataclasses.replace(sandbox, env={**sandbox.env, "PFLOW_OPS_PROJECT": str(project)}),
        servers,
    )


def _alert(st: Stack, *extra: str) -> Run:
    return st.cli(
        "alert",
        "RedisConnectionFailure",
        "--fingerprint",
        FINGERPRINT,
        "--env",
        "incident",
        "--output",
        "json",
        *extra,
    )


def _calls(tracker: Tracker) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _auth, _body in tracker.requests]


def test_an_alert_handled_twice_is_one_ticket_with_two_comments_and_one_thread(
    documented: tuple[Stack, Sinks],
) -> None:
    st, servers = documented
    assert st.cli("sandbox", "break", "redis-down").rc == 0
    first = _alert(st)
    assert first.rc == 0, first.stderr
    assert first.json["outcome"] == "recovered"
    second = _alert(st)  # the rerun of the same alert: healthy now, and says so in the incident
    assert second.rc == 0, second.stderr

    for run in (first, second):
        incident = run.json["incident"]
        assert incident["key"] == FINGERPRINT
        assert {(s["sink"], s["status"]) for s in incident["sinks"]} == {
            ("email", "ok"),
            ("ticket", "ok"),
        }

    # One ticket, two comments, nothing resolved (no closed loop on this sandbox: not checked).
    assert _calls(servers.tracker) == [
        ("POST", "/tickets"),
        ("POST", "/tickets/T-1/comments"),
        ("POST", "/tickets/T-1/comments"),
    ]
    ticket = servers.tracker.tickets["T-1"]
    assert ticket["incident_key"] == FINGERPRINT and ticket["status"] == "open"
    assert [c["outcome"] for c in ticket["comments"]] == ["recovered", "healthy"]
    assert [c["run_id"] for c in ticket["comments"]] == [
        first.json["run_id"],
        second.json["run_id"],
    ]
    assert (
        "restart" in ticket["comments"][0]["body"]
        and "(value STOPPED" in ticket["comments"][0]["body"]
    )
    assert all(auth == f"Bearer {TICKET_TOKEN}" for _m, _p, auth, _b in servers.tracker.requests)

    # One email thread: two messages naming the same root, the second answering the first.
    mails = servers.mailbox.messages
    assert len(mails) == 2
    assert mails[0]["References"] == mails[1]["References"] == mails[0]["In-Reply-To"]
    assert mails[0]["References"].startswith("<pflow-incident-")
    assert mails[0]["Message-ID"] != mails[1]["Message-ID"]
    assert mails[1]["Subject"] == "Re: " + mails[0]["Subject"]
    assert FINGERPRINT in mails[0]["Subject"] and "recovered" in mails[0]["Subject"]
    assert (
        "Alert: RedisConnectionFailure   Fingerprint: " + FINGERPRINT
        in mails[0].get_body().get_content()
    )

    # The record holds both runs and both handles; `pflow-ops incident show` reads it.
    shown = st.cli("incident", "show", FINGERPRINT, "--output", "json")
    assert shown.rc == 0, shown.stderr
    record = shown.json
    assert record["runs"] == [first.json["run_id"], second.json["run_id"]]
    assert record["handles"]["ticket"]["id"] == "T-1"
    assert str(record["handles"]["ticket"]["comments"]) == "2"
    assert str(record["handles"]["email"]["messages"]) == "2"
    mode = os.stat(st.home / "incidents" / f"{_sha(FINGERPRINT)}.json").st_mode & 0o777
    assert mode == 0o600

    # No sink secret anywhere under $PFLOW_OPS_HOME (records, reports, runner artifacts).
    assert _files_with(st.home, (SMTP_PASSWORD, TICKET_TOKEN)) == []


def test_an_escalation_opens_a_ticket_and_never_resolves_it(
    documented: tuple[Stack, Sinks],
) -> None:
    st, servers = documented
    st.spend_budget("local/localhost/redis", 3)
    assert st.cli("sandbox", "break", "redis-down").rc == 0
    run = st.cli(
        "recover", "rb-03", "--env", "incident", "--output", "json", "--incident", "INC-42"
    )
    assert run.json["outcome"] in ("refused", "escalate"), run.stderr
    assert run.json["incident"]["key"] == "INC-42"
    assert _calls(servers.tracker) == [("POST", "/tickets"), ("POST", "/tickets/T-1/comments")]
    assert servers.tracker.tickets["T-1"]["status"] == "open"
    body = servers.tracker.tickets["T-1"]["comments"][0]["body"]
    assert "Escalation path:" in body and "L2 Backend team lead" in body
    assert "restart budget spent" in body
    assert len(servers.mailbox.messages) == 1
    record = st.cli("incident", "show", "INC-42", "--output", "json").json
    assert record["resolved"] is False and record["last_outcome"] == run.json["outcome"]
    acked = st.cli("incident", "ack", "INC-42", "--by", "ana", "--output", "json")
    assert acked.rc == 0 and acked.json["ack"]["by"] == "ana"
    assert _files_with(st.home, (SMTP_PASSWORD, TICKET_TOKEN)) == []


def _sha(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


def _files_with(root: Path, needles: tuple[str, ...]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(n.encode() in data for n in needles):
                found.append(str(path))
    return found


# --- the role alone, against the same servers: the resolution event and a dead sink --------------

PLAYBOOK = """
- name: Document a result the way the roles do
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Keep the runbook result
      ansible.builtin.set_fact:
        pflow_run_result:
          runbook: RB-03
          host: localhost
          service: redis
          outcome: recovered
          reason: Redis restarted
          findings: []
          actions:
            - {action: restart, target: redis, result: restarted, before: STOPPED, after: RUNNING}
          verification: []
    - name: Document
      ansible.builtin.include_role:
        name: pivotal.flow_ops.incident
        tasks_from: document
        apply:
          run_once: true
      run_once: true
"""


def _playbook(tmp: Path, sinks_yaml: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp / "play.yml").write_text(PLAYBOOK)
    (tmp / "sinks.yml").write_text(sinks_yaml)
    env = {
        **os.environ,
        "PFLOW_OPS_HOME": str(tmp / "home"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    }
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            "@" + str(tmp / "sinks.yml"),
            "-e",
            "pflow_run_id=run-1",
            str(tmp / "play.yml"),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def _record(tmp: Path, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (tmp / "home" / "incidents" / f"{_sha(key)}.json").read_text()
    )
    return data


def test_the_resolution_resolves_the_ticket_and_replies_in_the_thread(
    sinks: tuple[Sinks, Path], tmp_path: Path
) -> None:
    servers, _project_dir = sinks
    servers.mailbox.messages.clear()
    servers.tracker.requests.clear()
    servers.tracker.tickets.clear()
    yaml_text = _sinks_yaml(servers.smtp_port, servers.tracker_url)
    first = _playbook(tmp_path, yaml_text, "-e", "pflow_incident_key=INC-RES")
    assert first.returncode == 0, first.stdout + first.stderr
    done = _playbook(
        tmp_path, yaml_text, "-e", "pflow_incident_key=INC-RES", "-e", "incident_event=resolved"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _calls(servers.tracker) == [
        ("POST", "/tickets"),
        ("POST", "/tickets/T-1/comments"),
        ("POST", "/tickets/T-1/resolve"),
    ]
    assert servers.tracker.tickets["T-1"]["status"] == "resolved"
    assert len(servers.mailbox.messages) == 2
    resolution = servers.mailbox.messages[1]
    assert resolution["Subject"] == "Re: " + servers.mailbox.messages[0]["Subject"]
    assert "resolved (alert cleared)" in resolution.get_body().get_content()
    assert _record(tmp_path, "INC-RES")["resolved"] is True


def test_a_dead_sink_is_recorded_failed_and_the_play_goes_on(tmp_path: Path) -> None:
    (dead,) = free_ports(1)
    yaml_text = _sinks_yaml(dead, f"http://127.0.0.1:{dead}")
    run = _playbook(tmp_path, yaml_text, "-e", "pflow_incident_key=INC-DEAD")
    assert run.returncode == 0, run.stdout + run.stderr
    record = _record(tmp_path, "INC-DEAD")
    statuses = {s["sink"]: s["status"] for s in record["events"][-1]["sinks"]}
    assert statuses == {"email": "failed", "ticket": "failed"}
    assert record["handles"] == {}
    assert SMTP_PASSWORD not in run.stdout and TICKET_TOKEN not in run.stdout


def test_a_templated_incident_key_documents_nothing(
    sinks: tuple[Sinks, Path], tmp_path: Path
) -> None:
    servers, _project_dir = sinks
    servers.tracker.requests.clear()
    yaml_text = _sinks_yaml(servers.smtp_port, servers.tracker_url)
    run = _playbook(
        tmp_path,
        yaml_text,
        "-e",
        "pflow_incident_key={{ lookup('pipe', 'touch /tmp/pwned-incident') }}",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert servers.tracker.requests == []
    assert not Path("/tmp/pwned-incident").exists()
