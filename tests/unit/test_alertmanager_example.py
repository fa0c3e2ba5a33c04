"""The production Alertmanager example routes what pflow-ops can act on to it, and only that.

monitoring/alertmanager/production.example.yml is checked three ways: against catalogue.yml (the
pflow-ops route names every catalogue alert and alias, nothing else), by the real ``amtool``
(Debian's ``prometheus-alertmanager`` package: ``check-config`` and ``config routes test``), and
against the rules (inhibition rules name real alerts and compare labels those alerts carry).
The sandbox's rendered Alertmanager configuration gets the same self-alert check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops import catalogue
from pflow_ops.sandbox import monitoring_conf as conf
from pflow_ops.sandbox.layout import Layout, MonitoringPorts, MonitoringState

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
EXAMPLE = MONITORING / "alertmanager" / "production.example.yml"
RECEIVER_RULES = MONITORING / "rules" / "pflow-ops-receiver.rules.yml"
RULE_FILES = sorted((MONITORING / "rules").glob("*.rules.yml"))
TEST_FILES = sorted((MONITORING / "tests").glob("*.test.yml"))
PFLOW_OPS = "pflow-ops"
HUMANS = {"oncall-pager", "oncall-chat", "sre-pager", "sre-chat"}
EXTERNAL_LABELS = {"env"}  # set by each Prometheus (global.external_labels), not by the rules
_MATCHER = re.compile(r'^(\w+)(=~|!~|!=|=)"(.*)"$')


def _names(cat: catalogue.Catalogue) -> list[str]:
    """Every alert name pflow-ops routes by name: catalogue alerts and catalogue aliases."""
    return sorted({a for rb in cat.runbooks for a in rb.alerts} | set(cat.aliases))


def expected_name_regex(cat: catalogue.Catalogue) -> str:
    return "|".join(_names(cat))


def expected_runbook_regex(cat: catalogue.Catalogue) -> str:
    # The receiver upper-cases the label before the lookup; (?i) lets the route agree.
    return "(?i)" + "|".join(rb.id for rb in cat.runbooks)


@pytest.fixture(scope="module")
def cat() -> catalogue.Catalogue:
    return catalogue.load()


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail(
            "amtool not found on PATH: it ships with Debian's `prometheus-alertmanager` package "
            "(apt-get install prometheus-alertmanager)"
        )
    return path


def _run(amtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [amtool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def receivers_for(amtool: str, config: Path, labels: dict[str, str]) -> list[str]:
    """The receivers Alertmanager's routing tree sends ``labels`` to, in tree order."""
    args = [f"{k}={v}" for k, v in labels.items()]
    proc = _run(amtool, "config", "routes", "test", f"--config.file={config}", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1].split(",")


def _matchers(route: dict[str, Any]) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for text in route.get("matchers") or []:
        match = _MATCHER.match(text)
        assert match, f'matcher not in the form name<op>"value": {text}'
        found[match.group(1)] = (match.group(2), match.group(3))
    return found


def _pflow_routes(example: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in example["route"]["routes"] if r["receiver"] == PFLOW_OPS]


# -- against the catalogue ---------------------------------------------------------------------


def test_the_name_route_is_the_catalogue(cat: catalogue.Catalogue, example: dict[str, Any]) -> None:
    by_name, _ = _pflow_routes(example)
    want = expected_name_regex(cat)
    assert _matchers(by_name)["alertname"] == ("=~", want), (
        f'catalogue.yml changed: set the pflow-ops route to\n        - alertname=~"{want}"'
    )
    assert by_name["continue"] is True


def test_the_label_route_takes_catalogue_runbook_ids_once(
    cat: catalogue.Catalogue, example: dict[str, Any]
) -> None:
    _, by_label = _pflow_routes(example)
    found = _matchers(by_label)
    assert found["runbook"] == ("=~", expected_runbook_regex(cat))
    # An alert both named and labelled goes to pflow-ops through the first route only.
    assert found["alertname"] == ("!~", expected_name_regex(cat))
    assert by_label["continue"] is True


def test_pflow_ops_routes_come_first_and_refuse_self_alerts(example: dict[str, Any]) -> None:
    routes = example["route"]["routes"]
    first = [r["receiver"] for r in routes[:2]]
    assert first == [PFLOW_OPS, PFLOW_OPS]  # before any human route stops the walk
    assert all(r["receiver"] != PFLOW_OPS for r in routes[2:])
    assert example["route"]["receiver"] in HUMANS
    # A matched child route (continue or not) means no fallback to the root receiver: the last
    # route catches every alert for humans.
    assert routes[-1] == {"receiver": example["route"]["receiver"]}
    for route in _pflow_routes(example):
        assert _matchers(route)["pflow_ops_self"] == ("!=", "true")


def test_the_webhook_is_tls_with_a_token_file(example: dict[str, Any]) -> None:
    (receiver,) = [r for r in example["receivers"] if r["name"] == PFLOW_OPS]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].startswith("https://") and hook["url"].endswith("/webhook")
    assert hook["send_resolved"] is True
    auth = hook["http_config"]["authorization"]
    assert auth == {"type": "Bearer", "credentials_file": auth["credentials_file"]}
    assert hook["http_config"]["tls_config"]["ca_file"]
    assert 0 < hook["max_alerts"] <= 500  # a notification stays under the receiver's --max-body


def test_no_secret_is_inline(example: dict[str, Any]) -> None:
    inline = {"credentials", "routing_key", "service_key", "api_url", "password", "bearer_token"}

    def keys(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    assert keys(example) & inline == set()
    assert set(HUMANS) | {PFLOW_OPS} == {r["name"] for r in example["receivers"]}


# -- with the real amtool ----------------------------------------------------------------------


def test_amtool_check_config_accepts_the_example(amtool: str) -> None:
    proc = _run(amtool, "check-config", str(EXAMPLE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "6 inhibit rules" in proc.stdout


def test_amtool_check_config_is_not_blind(amtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(EXAMPLE.read_text().replace("receiver: sre-chat", "receiver: nobody"))
    proc = _run(amtool, "check-config", str(broken))
    assert proc.returncode != 0
    assert "nobody" in proc.stdout + proc.stderr


def _rule_labels() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = {k: str(v) for k, v in rule["labels"].items()}
    return found


@pytest.mark.parametrize("name", _names(catalogue.load()))
def test_a_catalogue_alert_or_alias_goes_to_pflow_ops_and_to_humans(amtool: str, name: str) -> None:
    labels = {"alertname": name, "env": "production"}
    # Catalogue alerts carry the catalogue's labels; an alias comes from a foreign rule set.
    labels |= _rule_labels().get(name, {"severity": "critical"})
    got = receivers_for(amtool, EXAMPLE, labels)
    assert got[0] == PFLOW_OPS and got.count(PFLOW_OPS) == 1
    assert len(got) == 2 and got[1] in HUMANS


@pytest.mark.parametrize(
    ("labels", "human"),
    [
        ({"alertname": "ApiAvailabilityBudgetBurn", "runbook": "RB-01", "severity": "critical"},
         "oncall-pager"),
        ({"alertname": "TeamRedisDown", "runbook": "rb-03", "severity": "warning"}, "oncall-chat"),
    ],
)  # fmt: skip
def test_an_alert_labelled_with_a_runbook_goes_to_pflow_ops_once(
    amtool: str, labels: dict[str, str], human: str
) -> None:
    assert receivers_for(amtool, EXAMPLE, labels) == [PFLOW_OPS, human]


@pytest.mark.parametrize(
    ("labels", "human"),
    [
        ({"alertname": "KubePodCrashLooping", "severity": "warning"}, "oncall-chat"),
        ({"alertname": "NodeDown", "severity": "critical"}, "oncall-pager"),
        ({"alertname": "Foo", "runbook": "RB-99", "severity": "high"}, "oncall-pager"),
        # A name that only contains a catalogue name: matchers are anchored.
        ({"alertname": "HighErrorRateSomewhere", "severity": "warning"}, "oncall-chat"),
    ],
)
def test_an_unknown_alert_goes_to_humans_only(
    amtool: str, labels: dict[str, str], human: str
) -> None:
    assert receivers_for(amtool, EXAMPLE, labels) == [human]


@pytest.mark.parametrize("name", sorted(n for n in _rule_labels() if n.startswith("PflowOps")))
def test_a_receiver_self_alert_goes_to_sre_only(amtool: str, name: str) -> None:
    labels = _rule_labels()[name] | {"alertname": name, "job": "pflow-ops-receiver"}
    want = "sre-pager" if labels["severity"] == "critical" else "sre-chat"
    assert receivers_for(amtool, EXAMPLE, labels) == [want]


def test_a_self_alert_named_and_labelled_like_a_catalogue_alert_still_skips_pflow_ops(
    amtool: str,
) -> None:
    labels = {
        "alertname": "HighErrorRate", "runbook": "RB-01", "pflow_ops_self": "true",
        "severity": "critical",
    }  # fmt: skip
    assert receivers_for(amtool, EXAMPLE, labels) == ["sre-pager"]


# -- inhibition rules against the alert rules ----------------------------------------------------


def _firing_label_keys() -> dict[str, set[str]]:
    """Alert name -> every label key its promtool firing cases expect (rule and series labels)."""
    keys: dict[str, set[str]] = {}
    for path in TEST_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in group.get("alert_rule_test") or []:
                for alert in case.get("exp_alerts") or []:
                    keys.setdefault(case["alertname"], set()).update(alert["exp_labels"])
    return keys


def _alertnames(matchers: list[str], known: set[str]) -> set[str]:
    (text,) = matchers
    op, value = _matchers({"matchers": [text]})["alertname"]
    names = {value} if op == "=" else {n for n in known if re.fullmatch(value, n)}
    assert op in ("=", "=~") and names
    return names


def test_inhibition_rules_name_real_alerts_and_compare_labels_they_carry(
    example: dict[str, Any],
) -> None:
    known = set(_rule_labels())
    keys = _firing_label_keys()
    rules = example["inhibit_rules"]
    assert len(rules) == 6
    for rule in rules:
        equal = set(rule["equal"]) - EXTERNAL_LABELS
        assert equal, rule  # `env` alone would inhibit across every target of an environment
        sources = _alertnames(rule["source_matchers"], known)
        targets = _alertnames(rule["target_matchers"], known)
        assert not sources & targets
        for name in sources | targets:
            assert name in known
            assert equal <= keys[name], (name, equal - keys[name])


# -- the sandbox's rendered configuration --------------------------------------------------------


def test_the_sandbox_alertmanager_keeps_self_alerts_away_from_pflow_ops(
    amtool: str, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "sandbox", privileged=False)
    mon = MonitoringState(ports=MonitoringPorts(9090, 9093, 9187, 9121, 9400), time_factor=20)
    config = tmp_path / "alertmanager.yml"
    config.write_text(conf.alertmanager_config(layout, mon))
    proc = _run(amtool, "check-config", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    self_alert = {"alertname": "PflowOpsAlertNotRouted", "pflow_ops_self": "true"}
    assert receivers_for(amtool, config, self_alert) == [conf.SELF_RECEIVER_NAME]
    catalogue_alert = {"alertname": "RedisConnectionFailure", "service": "cache"}
    assert receivers_for(amtool, config, catalogue_alert) == [conf.RECEIVER_NAME]
