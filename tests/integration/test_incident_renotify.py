"""Issue 16, the scheduled re-notification: an escalated incident with no pager is notified again
through the real SMTP server (aiosmtpd, with AUTH) at the catalogue's
times (L2 after 15 minutes, L3 after 30), once per level, and not at all once acknowledged.
The clock is moved with `pflow-ops incident renotify --now` (an unprotected environment); the
escalation itself is documented by the incident role, as a runbook's report phase does."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Run, Stack
from tests.integration.incident_servers import Mailbox, smtp_server
from tests.integration.test_incident import SMTP_PASSWORD, SMTP_USER, _files_with, _project

pytestmark = pytest.mark.integration

KEY = "INC-RENOTIFY-1"
ESCALATED = {
    "runbook": "RB-03",
    "host": "localhost",
    "service": "redis",
    "outcome": "escalate",
    "reason": "restart budget spent",
    "findings": [],
    "actions": [],
    "verification": [],
}


@pytest.fixture(scope="module")
def renotify_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Mailbox]]:
    """A state directory and a project whose environment 'incident' (the local inventory) has an
    email sink and no pager, with the SMTP server behind it."""
    tmp = tmp_path_factory.mktemp("renotify")
    with smtp_server(SMTP_USER, SMTP_PASSWORD) as (port, box):
        sinks = (
            "pflow_incident_sinks:\n"
            f"  - {{kind: email, host: 127.0.0.1, port: {port}, secure: never,"
            f" username: {SMTP_USER}, password: '{SMTP_PASSWORD}', from: pflow-ops@example.test,"
            " to: [oncall@example.test], retries: 1}\n"
        )
        project = _project(tmp, sinks)
        home = tmp / "home"
        home.mkdir()
        env = {**os.environ, "PFLOW_OPS_HOME": str(home), "PFLOW_OPS_PROJECT": str(project)}
        yield Stack(home, env), box


def _escalate(st: Stack) -> None:
    """The escalation, documented by the incident role as a runbook's report phase does it."""
    project = Path(st.env["PFLOW_OPS_PROJECT"])
    extra = st.home.parent / "escalated.json"
    extra.write_text(
        json.dumps(
            {"test_run_result": ESCALATED, "pflow_incident_key": KEY, "pflow_run_id": "run-1"}
        )
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(project / "inventories" / "incident" / "hosts.yml"),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            "@" + str(extra),
            str(ROOT / "tests" / "integration" / "playbooks" / "incident_document.yml"),
        ],
        env={**st.env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _renotify(st: Stack, start: datetime.datetime, minutes: int, *extra: str) -> Run:
    now = (start + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = st.cli(
        "incident", "renotify", "--env", "incident", "--now", now, "--output", "json", *extra
    )
    assert run.rc == 0, run.stdout + run.stderr
    return run


def _status(run: Run) -> list[tuple[str, str]]:
    return [(i["key"], i["status"]) for i in run.json["incidents"]]


def test_an_unacknowledged_escalation_is_renotified_per_level_until_acked(
    renotify_env: tuple[Stack, Mailbox],
) -> None:
    st, box = renotify_env
    _escalate(st)
    assert len(box.messages) == 1
    record = st.cli("incident", "show", KEY, "--output", "json").json
    start = datetime.datetime.fromisoformat(record["events"][0]["at"].replace("Z", "+00:00"))
    assert (record["env"], record["runbook"]) == ("local", "RB-03")

    # Before L2's time: the pure decision says so, no playbook runs, nothing is sent.
    early = _renotify(st, start, 14)
    assert _status(early) == [(KEY, "wait")] and early.json["playbook"] is False
    assert len(box.messages) == 1

    # L2 at 15 minutes: one email in the incident's thread, journaled.
    l2 = _renotify(st, start, 15)
    assert l2.json["playbook"] is True
    assert [(s["key"], s["level"]) for s in l2.json["sent"]] == [(KEY, "L2")]
    assert [(s["sink"], s["status"]) for s in l2.json["sent"][0]["sinks"]] == [("email", "ok")]
    assert len(box.messages) == 2
    mail = box.messages[1]
    assert mail["Subject"] == "Re: " + box.messages[0]["Subject"]
    assert mail["References"] == box.messages[0]["References"]
    body = mail.get_body().get_content()
    assert "Re-notification: escalation level L2, Backend team lead (due after 15 minutes)." in body
    assert f"Unacknowledged since {record['events'][0]['at']}" in body
    assert f"pflow-ops incident ack {KEY}" in body

    # Never twice: a minute later L2 is done and L3 is not due yet (no playbook either).
    again = _renotify(st, start, 16)
    assert _status(again) == [(KEY, "wait")] and "L3" in again.json["incidents"][0]["reason"]
    assert len(box.messages) == 2

    # A dry run at 30 minutes says L3 is due and sends nothing; the real one sends it.
    dry = _renotify(st, start, 30, "--check")
    assert _status(dry) == [(KEY, "due")] and dry.json["sent"] == []
    assert len(box.messages) == 2
    l3 = _renotify(st, start, 30)
    assert [s["level"] for s in l3.json["sent"]] == ["L3"]
    assert len(box.messages) == 3
    assert "escalation level L3, Platform architect" in box.messages[2].get_body().get_content()

    # Acknowledged: nothing more, whenever.
    assert st.cli("incident", "ack", KEY, "--by", "ana").rc == 0
    late = _renotify(st, start, 240)
    assert late.json["incidents"] == [] and late.json["playbook"] is False
    assert len(box.messages) == 3

    shown = st.cli("incident", "show", KEY, "--output", "json").json
    journal = [(e["event"], e.get("level")) for e in shown["events"]]
    assert journal == [("documented", None), ("renotify", "L2"), ("renotify", "L3")]
    assert _files_with(st.home, (SMTP_PASSWORD,)) == []
