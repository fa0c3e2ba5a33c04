"""Issue 16's incident keys end to end, through the real receiver and the real playbook guard:
an Alertmanager notification's groupKey travels from ``pflow-ops serve`` (a real process on a
loopback port) through the argv it launches, ``pflow-ops alert``'s own parser and extra-vars file,
to the playbook's first play (alert_input) and the incident role, whose PagerDuty sink (pointed at
the local recording endpoint) triggers with Alertmanager's own dedup_key, sha256(groupKey), and
the catalogue's severity. A hostile groupKey or incident annotation starts nothing; one passed to
a playbook directly is refused by its first play before anything is documented.

The receiver's runs are its test launcher (test_receiver.py: records the argv, runs nothing), so
the runbook itself does not run here: its published result is given, as the incident role's other
integration tests give it; the runbooks end to end are test_incident.py's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.loadtest import alert, notification
from pflow_ops import cli, run, runner
from tests.integration.recording_endpoint import RecordingEndpoint
from tests.integration.test_receiver import Receiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GUARD_PLAY = yaml.safe_load(
    (ROOT / "collection" / "playbooks" / "rb_01_backend_down.yml").read_text(encoding="utf-8")
)[0]
ROUTING_KEY = "R0UT1NGKEY1111111111111111111111"
FP = "5e1f0a2b3c4d6e7f"


def _document_play() -> dict[str, Any]:
    """What a runbook role's report phase does: publish the run result, document it."""
    return {
        "name": "Document the run in its incident",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Publish the run result as the runbook roles' report phase does",
                "ansible.builtin.set_fact": {"pflow_run_result": "{{ test_run_result }}"},
            },
            {
                "name": "Document the run in its incident",
                "ansible.builtin.include_role": {
                    "name": "pivotal.flow_ops.incident",
                    "tasks_from": "document",
                },
            },
        ],
    }


@pytest.fixture(scope="module")
def pager() -> Iterator[RecordingEndpoint]:
    server = RecordingEndpoint()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = Receiver(tmp_path)
    try:
        yield rec
    finally:
        if rec.proc is not None and rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()


def _playbook(tmp: Path) -> Path:
    path = tmp / "incident_keys.yml"
    path.write_text(yaml.safe_dump([GUARD_PLAY, _document_play()], sort_keys=False))
    return path


def _play(
    tmp: Path, run_vars: dict[str, Any], url: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """The playbook with the run's variables in the extra-vars file pflow-ops writes (its
    runner's own text) plus the environment's sinks, and the runbook's escalate result."""
    (tmp / "run_vars.yml").write_text(runner.extravars_text(run_vars))
    env_vars = {
        "ansible_python_interpreter": sys.executable,
        "pflow_env": "local",
        "pflow_incident_sinks": [
            {
                "kind": "pagerduty",
                "api_url": f"{url}/pagerduty",
                "routing_key": ROUTING_KEY,
                "retries": 1,
                "delay": 0,
                "timeout": 5,
            }
        ],
        "test_run_result": {
            "runbook": "RB-01",
            "host": "web1",
            "service": "backend",
            "outcome": "escalate",
            "reason": "backend down after the restart budget",
            "actions": [],
        },
    }
    (tmp / "env_vars.json").write_text(json.dumps(env_vars))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PFLOW_OPS_HOME": str(tmp / "home"),
    }
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(_playbook(tmp))]
    argv += ["-e", f"@{tmp / 'env_vars.json'}", "-e", f"@{tmp / 'run_vars.yml'}", *extra]
    return subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _run_vars_of(launch: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The variables `pflow-ops alert` would give the playbook for the argv the receiver
    launched: its own parser, request and run variables (the launcher is the test's)."""
    args = cli.build_parser().parse_args(["alert", *launch["argv"]])
    return run._run_vars(cli.run_request(args), run_id)


def _records(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (tmp / "home" / "incidents").glob("*.json")]


def test_a_group_key_from_the_receiver_pages_with_alertmanagers_own_dedup_key(
    receiver: Receiver, pager: RecordingEndpoint, tmp_path: Path
) -> None:
    pager.reset()
    pwned = tmp_path / "pwned"
    # A real group key: braces, quotes, '=', ':' and a label value with shell syntax (data).
    group_key = (
        '{}/{severity="critical"}:{alertname="BackendServiceDown",'
        f' instance="web1:8000; $(touch {pwned})"}}'
    )
    receiver.start()
    body = notification(alert("BackendServiceDown", FP))
    body["groupKey"] = group_key
    status, answer = receiver.post(body)
    assert status == 200 and answer["alerts"][0]["decision"] == "queued", answer
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    [launch] = receiver.launches()
    assert f"--group-key={group_key}" in launch["argv"]  # one argv item, no shell

    proc = _play(tmp_path, _run_vars_of(launch, "run-1"), pager.url)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    expected = hashlib.sha256(group_key.encode("utf-8")).hexdigest()
    [trigger] = [r for r in pager.under("/pagerduty/") if r.path == "/pagerduty/v2/enqueue"]
    assert trigger.body["event_action"] == "trigger"
    assert trigger.body["dedup_key"] == expected  # what Alertmanager's PagerDuty notifier sends
    assert trigger.body["payload"]["severity"] == "critical"  # RB-01's catalogue severity
    [record] = _records(tmp_path)
    assert record["key"] == expected  # the incident is the group's
    assert record["handles"]["pagerduty"] == {"dedup_key": expected, "triggered": True}
    assert not pwned.exists()
    assert group_key not in proc.stdout  # only its hash is ever shown


def test_the_alerts_incident_annotation_names_the_incident_and_the_page_stays_alertmanagers(
    receiver: Receiver, pager: RecordingEndpoint, tmp_path: Path
) -> None:
    pager.reset()
    group_key = '{}:{alertname="RedisConnectionFailure"}'
    receiver.start()
    raw = alert("RedisConnectionFailure", FP)
    raw["annotations"]["incident"] = "OPS-1234"
    body = notification(raw)
    body["groupKey"] = group_key
    assert receiver.post(body)[0] == 200
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    [launch] = receiver.launches()
    assert "--alert-incident=OPS-1234" in launch["argv"]
    run_vars = {**_run_vars_of(launch, "run-2")}
    proc = _play(tmp_path, run_vars, pager.url)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    [record] = _records(tmp_path)
    assert record["key"] == "OPS-1234"
    [trigger] = [r for r in pager.under("/pagerduty/") if r.path == "/pagerduty/v2/enqueue"]
    assert trigger.body["dedup_key"] == hashlib.sha256(group_key.encode()).hexdigest()
    assert trigger.body["payload"]["custom_details"]["incident_key"] == "OPS-1234"


def test_a_hostile_group_key_or_annotation_starts_nothing_at_the_receiver(
    receiver: Receiver, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    lookup = f"{{{{ lookup('pipe', 'touch {pwned}') }}}}"
    receiver.start()
    hostile_key = notification(alert("BackendServiceDown", FP))
    hostile_key["groupKey"] = '{}:{alertname="' + lookup + '"}'
    bad_annotation = alert("RedisConnectionFailure", "0f0f0f0f0f0f0f0f")
    bad_annotation["annotations"]["incident"] = f"INC-1; touch {pwned}"
    for body in (hostile_key, notification(bad_annotation)):
        status, answer = receiver.post(body)
        assert status == 200 and answer["alerts"][0]["decision"] == "ignored", answer
    reasons = [e.get("reason") for e in receiver.journal() if e.get("action") == "ignored"]
    assert reasons == ["bad_group_key", "bad_incident"]
    metrics = receiver.metrics()
    assert metrics['pflow_receiver_alerts_ignored_total{reason="bad_group_key"}'] == 1
    assert metrics['pflow_receiver_alerts_ignored_total{reason="bad_incident"}'] == 1
    assert receiver.launches() == [] and not pwned.exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pflow_alert_group_key", "{}:{a=\"{{ lookup('pipe', 'touch PWNED') }}\"}"),
        ("pflow_alert_incident", "{{ lookup('pipe', 'touch PWNED') }}"),
    ],
)
def test_a_playbook_refuses_a_hostile_group_key_or_annotation_before_documenting(
    pager: RecordingEndpoint, tmp_path: Path, name: str, value: str
) -> None:
    """Passed as a plain -e value (which Ansible trusts as a template), as a hand-typed command
    or a misconfigured AWX job would: the first play refuses, nothing is documented."""
    pager.reset()
    value = value.replace("PWNED", str(tmp_path / "pwned"))
    proc = _play(tmp_path, {}, pager.url, "-e", json.dumps({name: value}))
    assert proc.returncode != 0
    assert f"refused alert input: {name}: " in proc.stdout
    assert not (tmp_path / "pwned").exists()
    assert pager.requests == [] and not (tmp_path / "home" / "incidents").exists()
