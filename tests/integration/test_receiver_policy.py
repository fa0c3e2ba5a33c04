"""The receiver's policy through the real process (``pflow-ops serve`` on a free loopback port,
the fake ``pflow-ops alert`` of test_receiver.py), against a real Alertmanager started here on
its own free port with a minimal configuration: alerts are posted to its API, and a silence and
an inhibition rule decide which queued runs start.

Covers: a storm of distinct fingerprints is one run with every alert attached; silenced,
inhibited and resolved alerts do not run; the pause switch; routing by alias and by runbook
label (argv carries ``--runbook``); unknown alerts are a warning line and a metric; two
Alertmanager peers notifying the same alert start one run; a second receiver is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.loadtest import alert, notification
from tests.integration.test_receiver import ROOT, TOKEN, Receiver, firing, free_port

pytestmark = pytest.mark.integration

ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")
AM_CONFIG = """\
route:
  receiver: nobody
  group_wait: 1h
receivers:
  - name: nobody
inhibit_rules:
  - source_matchers: ['alertname="PflowTestOutage"']
    target_matchers: ['alertname="DatabaseHighConnections"']
"""


class Alertmanager:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, data: Any = None) -> Any:
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
        return json.loads(text) if text.strip() else None

    def fire(self, name: str, **labels: str) -> str:
        """Post a firing alert; its fingerprint, as Alertmanager computes it."""
        now = datetime.now(UTC)
        self.call(
            "POST",
            "/api/v2/alerts",
            [
                {
                    "labels": {"alertname": name, **labels},
                    "startsAt": now.isoformat(),
                    "endsAt": (now + timedelta(hours=1)).isoformat(),
                }
            ],
        )
        return str(self.find(name)["fingerprint"])

    def find(self, name: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.call("GET", f'/api/v2/alerts?filter=alertname="{name}"')
            if found:
                return dict(found[0])
            time.sleep(0.1)
        raise AssertionError(f"Alertmanager does not show {name}")

    def silence(self, name: str) -> str:
        now = datetime.now(UTC)
        matcher = {"name": "alertname", "value": name, "isRegex": False, "isEqual": True}
        answer = self.call(
            "POST",
            "/api/v2/silences",
            {
                "matchers": [matcher],
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(hours=1)).isoformat(),
                "createdBy": "test",
                "comment": "maintenance window",
            },
        )
        return str(answer["silenceID"])

    def wait_status(self, name: str, key: str) -> None:
        """Until Alertmanager reports the alert silenced or inhibited (``key``)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.find(name)["status"][key]:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} never got {key}")


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    if not ALERTMANAGER_BIN.exists():
        pytest.skip(f"{ALERTMANAGER_BIN} is not installed")
    tmp = tmp_path_factory.mktemp("am")
    (tmp / "alertmanager.yml").write_text(AM_CONFIG)
    port = free_port()
    proc = subprocess.Popen(
        [
            str(ALERTMANAGER_BIN),
            f"--config.file={tmp / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "am.log").open("wb"),
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / "am.log").read_text()
            time.sleep(0.2)
        yield Alertmanager(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = Receiver(tmp_path)
    try:
        yield rec
    finally:
        if rec.proc is not None and rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()


def _events(rec: Receiver, kind: str) -> list[dict[str, Any]]:
    return [e for e in rec.journal() if e["event"] == kind]


def test_a_storm_of_500_fingerprints_is_one_run_with_every_alert_attached(
    receiver: Receiver,
) -> None:
    receiver.start()
    storm = notification(*(alert("HighErrorRate", f"{i:016x}") for i in range(500)))
    status, answer = receiver.post(storm)
    assert status == 200
    decisions = [a["decision"] for a in answer["alerts"]]
    assert decisions.count("queued") == 1 and decisions.count("attached") == 499
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    assert len(receiver.launches()) == 1
    [started] = _events(receiver, "started")
    assert len(started["alerts"]) == 500  # the journal says which alerts the run covered
    attached = [e for e in _events(receiver, "decision") if e["action"] == "attached"]
    assert {e["item"] for e in attached} == {started["rid"]}
    metrics = receiver.metrics()
    assert metrics['pflow_receiver_alerts_attached_total{runbook="RB-01"}'] == 499
    assert metrics["pflow_receiver_queue_depth"] == 0


def test_silenced_inhibited_and_resolved_alerts_do_not_run(
    receiver: Receiver, am: Alertmanager
) -> None:
    silenced = am.fire("BackendServiceDown", instance="b1")
    am.silence("BackendServiceDown")
    am.wait_status("BackendServiceDown", "silencedBy")
    am.fire("PflowTestOutage")
    inhibited = am.fire("DatabaseHighConnections", instance="d1")
    am.wait_status("DatabaseHighConnections", "inhibitedBy")
    active = am.fire("CacheLowHitRate", instance="c1")
    receiver.start("--alertmanager-url", am.url)
    status, _ = receiver.post(
        notification(
            alert("BackendServiceDown", silenced),
            alert("DatabaseHighConnections", inhibited),
            alert("RedisHighEvictions", "0badc0de0badc0de"),  # not in Alertmanager: resolved
            alert("CacheLowHitRate", active),  # attached to the RB-03 run, and active
        )
    )
    assert status == 200
    receiver.wait_for("the cache run", lambda: len(receiver.finished()) == 1)
    receiver.wait_for("the skips", lambda: len(_events(receiver, "cancelled")) == 2)
    [launch] = receiver.launches()
    assert launch["argv"][0] == "CacheLowHitRate"
    assert launch["argv"][launch["argv"].index("--fingerprint") + 1] == active
    skipped = {e["fingerprint"]: e["reason"] for e in _events(receiver, "skipped")}
    assert skipped == {
        silenced: "silenced",
        inhibited: "inhibited",
        "0badc0de0badc0de": "not_active",
    }
    [started] = _events(receiver, "started")
    assert started["check"] == "ok"
    metrics = receiver.metrics()
    for reason in ("silenced", "inhibited", "not_active"):
        assert metrics[f'pflow_receiver_alerts_skipped_total{{reason="{reason}"}}'] == 1
    assert metrics["pflow_receiver_alertmanager_check_errors_total"] == 0


def test_an_unreachable_alertmanager_runs_unchecked_and_counts_the_error(
    receiver: Receiver,
) -> None:
    receiver.start("--alertmanager-url", f"http://127.0.0.1:{free_port()}")
    assert receiver.post(firing("DatabaseSlowQueries", "dbdb"))[0] == 200
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    assert _events(receiver, "started")[0]["check"] == "unchecked"
    assert receiver.metrics()["pflow_receiver_alertmanager_check_errors_total"] == 1


def _pflow(rec: Receiver, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PFLOW_OPS_HOME": str(rec.home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pflow_ops", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )


def test_pause_starts_nothing_and_resume_starts_the_queued_run(receiver: Receiver) -> None:
    receiver.start()
    paused = _pflow(receiver, "receiver", "pause", "--env", "local", "--reason", "db upgrade")
    assert paused.returncode == 0, paused.stderr
    receiver.wait_for("the pause", lambda: bool(_events(receiver, "paused")))
    assert receiver.metrics()["pflow_receiver_paused"] == 1
    status, answer = receiver.post(firing("DatabaseSlowQueries", "d2d2"))
    assert (status, answer["alerts"][0]["decision"]) == (200, "queued")
    shown = _pflow(receiver, "receiver", "status", "--env", "local", "--output", "json")
    assert json.loads(shown.stdout)["paused"] is True
    assert json.loads(shown.stdout)["receiver_running"] is True
    assert receiver.launches() == []  # still paused: two status calls later, nothing started
    assert receiver.metrics()["pflow_receiver_queue_depth"] == 1
    assert _pflow(receiver, "receiver", "resume", "--env", "local").returncode == 0
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    [pause] = _events(receiver, "paused")
    assert pause["reason"] == "db upgrade" and "@" in pause["by"]
    assert [e["event"] for e in receiver.journal() if e["event"] in ("resumed", "started")] == [
        "resumed",
        "started",
    ]
    assert receiver.metrics()["pflow_receiver_paused"] == 0


def test_alias_and_runbook_label_route_and_argv_carries_the_runbook(receiver: Receiver) -> None:
    receiver.start()
    status, answer = receiver.post(
        notification(
            alert("PostgresqlTooManyConnections", "a1a1"),  # catalogue alias -> RB-02
            alert("TeamCacheIsSad", "b2b2", labels={"runbook": "rb-03"}),  # label -> RB-03
        )
    )
    assert (status, [a["decision"] for a in answer["alerts"]]) == (200, ["queued", "queued"])
    receiver.wait_for("both runs", lambda: len(receiver.finished()) == 2)
    argvs = {launch["argv"][0]: launch["argv"] for launch in receiver.launches()}
    for name, runbook in (("PostgresqlTooManyConnections", "RB-02"), ("TeamCacheIsSad", "RB-03")):
        assert argvs[name][-2:] == ["--runbook", runbook]
    vias = {e["alertname"]: e["via"] for e in _events(receiver, "decision")}
    assert vias == {"PostgresqlTooManyConnections": "alias", "TeamCacheIsSad": "label"}


def test_an_unknown_alert_is_a_warning_line_a_metric_and_an_answer(receiver: Receiver) -> None:
    receiver.start()
    status, answer = receiver.post(
        notification(
            alert("NodeFilesystemAlmostFull", "c3c3"),
            alert("BackendServiceDown", "c4c4", labels={"runbook": "RB-77"}),
        )
    )
    assert status == 200
    assert answer["alerts"] == [
        {"fingerprint": "c3c3", "decision": "ignored", "reason": "unknown_alert"},
        {"fingerprint": "c4c4", "decision": "ignored", "reason": "unknown_runbook"},
    ]
    warnings = [line for line in receiver.log().splitlines() if " WARNING ignored " in line]
    assert len(warnings) == 2
    assert 'alertname="NodeFilesystemAlmostFull"' in warnings[0]
    assert "reason=unknown_alert" in warnings[0]
    metrics = receiver.metrics()
    assert metrics['pflow_receiver_alerts_ignored_total{reason="unknown_alert"}'] == 1
    assert metrics['pflow_receiver_alerts_ignored_total{reason="unknown_runbook"}'] == 1
    assert receiver.launches() == []


def test_two_alertmanager_peers_notifying_one_alert_start_one_run(receiver: Receiver) -> None:
    receiver.start()
    for peer in ("am-0", "am-1"):
        note = {**firing("RedisHighEvictions", "e5e5e5e5"), "externalURL": f"http://{peer}:9093"}
        assert receiver.post(note)[0] == 200
    receiver.wait_for("the run", lambda: len(receiver.finished()) == 1)
    assert len(receiver.launches()) == 1
    assert receiver.metrics()["pflow_receiver_alerts_deduplicated_total"] == 1


def test_a_second_receiver_for_the_same_env_and_home_is_refused(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.start()
    second = subprocess.run(
        [sys.executable, "-m", "pflow_ops.receiver", "--port", str(free_port())],
        env={
            **os.environ,
            "PFLOW_OPS_HOME": str(receiver.home),
            "PFLOW_OPS_RECEIVER_TOKEN": TOKEN,
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert second.returncode == 3
    assert "another receiver" in second.stderr
