"""The production Alertmanager example, loaded by a real Alertmanager: it starts (its secret files
in place), inhibits each symptom only while its cause fires for the same labels, and routes
catalogue alerts to pflow-ops and humans, its own alerts to humans only.

The example's secret directory is pointed at a temporary one holding a generated CA and dummy
secrets: Alertmanager opens the CA file when it loads the configuration (``amtool check-config``
does not), the others only when it notifies. Nothing here reaches a pager or the webhook: the
hosts are example names and the alerts are read back from the API within seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops.sandbox.net import free_ports
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "monitoring" / "alertmanager" / "production.example.yml"
RULE_FILES = sorted((ROOT / "monitoring" / "rules").glob("*.rules.yml"))
SECRETS = "/etc/alertmanager/secrets/"
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
_SERIAL = count()


def _rule_labels() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = {k: str(v) for k, v in rule["labels"].items()}
    return found


class Alertmanager:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def post(self, *alerts: dict[str, str]) -> None:
        body = json.dumps([{"labels": labels} for labels in alerts]).encode()
        req = urllib.request.Request(
            f"{self.url}/api/v2/alerts", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200

    def alert(self, labels: dict[str, str]) -> dict[str, Any]:
        """The alert with exactly these labels, as Alertmanager reports it (status, receivers)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            alerts: list[dict[str, Any]] = json.loads(resp.read())
        (found,) = [a for a in alerts if a["labels"] == labels]
        return found


def _secrets(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=pflow-ops test CA", "-keyout", str(directory / "ca.key"),
         "-out", str(directory / "pflow-ops-ca.crt")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("pflow-ops.token", "oncall-pagerduty.key", "sre-pagerduty.key"):
        (directory / name).write_text("not-a-real-secret\n")
    for name in ("oncall-slack.url", "sre-slack.url"):
        (directory / name).write_text("http://127.0.0.1:9/never\n")


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    if shutil.which("openssl") is None or not ALERTMANAGER.exists():
        pytest.fail("needs openssl and Debian's prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("am-example")
    _secrets(tmp / "secrets")
    config = tmp / "alertmanager.yml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8").replace(SECRETS, f"{tmp}/secrets/"))
    (port,) = free_ports(1)
    log = (tmp / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    manager = Alertmanager(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{manager.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp / "alertmanager.log").read_text()
            assert time.monotonic() < deadline, "Alertmanager not ready after 60s"
            time.sleep(0.2)
        # It applied the whole file, CA included (a missing CA is only logged, then nothing
        # would be sent).
        assert "failed to apply" not in (tmp / "alertmanager.log").read_text()
        yield manager
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _inhibit_cases() -> list[tuple[str, str, list[str]]]:
    """(source alert, target alert, equal labels) for every inhibition rule of the example."""
    known = _rule_labels()
    rules = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["inhibit_rules"]
    cases = []
    for rule in rules:
        names = []
        for side in ("source_matchers", "target_matchers"):
            (text,) = rule[side]
            match = re.fullmatch(r'alertname(=~|=)"(.*)"', text)
            assert match, text
            names.append(sorted(n for n in known if re.fullmatch(match.group(2), n)))
            assert names[-1], f"{text} names no alert of monitoring/rules"
        cases += [(s, t, list(rule["equal"])) for s in names[0] for t in names[1]]
    return cases


def _labels(name: str, equal: list[str], tag: str) -> dict[str, str]:
    """An alert as its rule labels it, with the compared labels set to values of its own."""
    return _rule_labels()[name] | {"alertname": name} | {k: f"{k}-{tag}" for k in equal}


@pytest.mark.parametrize(
    ("source", "target", "equal"), _inhibit_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_symptom_is_inhibited_only_while_its_cause_fires_for_the_same_labels(
    am: Alertmanager, source: str, target: str, equal: list[str]
) -> None:
    tag = f"t{next(_SERIAL)}"
    cause = _labels(source, equal, tag)
    symptom = _labels(target, equal, tag)
    # The same symptom elsewhere: one compared label differs each time.
    elsewhere = [symptom | {label: f"{label}-other-{tag}"} for label in equal]
    am.post(symptom, *elsewhere)
    assert am.alert(symptom)["status"]["state"] == "active"  # no cause yet
    am.post(cause)
    fingerprint = am.alert(cause)["fingerprint"]
    status = am.alert(symptom)["status"]
    assert (status["state"], status["inhibitedBy"]) == ("suppressed", [fingerprint])
    for other in elsewhere:
        assert am.alert(other)["status"]["state"] == "active", other
    assert am.alert(cause)["status"]["state"] == "active"  # a cause is never its own symptom


def test_routing_as_the_running_alertmanager_sees_it(am: Alertmanager) -> None:
    catalogue_alert = _rule_labels()["RedisHighEvictions"] | {
        "alertname": "RedisHighEvictions", "env": "routing", "instance": "redis-a:9121",
    }  # fmt: skip
    self_alert = _rule_labels()["PflowOpsRunNeedsHuman"] | {
        "alertname": "PflowOpsRunNeedsHuman", "env": "routing", "run_runbook": "RB-02",
    }  # fmt: skip
    unknown = {"alertname": "NodeFilesystemAlmostFull", "env": "routing", "severity": "warning"}
    am.post(catalogue_alert, self_alert, unknown)

    def receivers(labels: dict[str, str]) -> list[str]:
        return [r["name"] for r in am.alert(labels)["receivers"]]

    assert receivers(catalogue_alert) == ["pflow-ops", "oncall-chat"]
    assert receivers(self_alert) == ["sre-chat"]
    assert receivers(unknown) == ["oncall-chat"]
