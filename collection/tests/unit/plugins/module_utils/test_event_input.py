"""Alert data is data: every branch of the checks the playbooks' first play and the EDA filter
share, each attacked with the payload it exists to stop."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import event_input

LOOKUP = "{{ lookup('pipe', 'touch /tmp/pwned') }}"
HOSTILE_TEXTS = [LOOKUP, "{% for x in y %}", "{# c #}", "x" * (event_input.MAX_STRING + 1)]


def _alert(**over: object) -> dict:
    alert: dict = {
        "status": "firing",
        "fingerprint": "1a2b3c4d5e6f7081",
        "labels": {"alertname": "BackendServiceDown", "instance": "web1:8000"},
        "annotations": {"summary": "Backend down; see $(runbook) ../../etc/passwd"},
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    }
    alert.update(over)
    return alert


def test_shown_is_a_truncated_repr_that_cannot_be_a_template() -> None:
    text = event_input.shown(LOOKUP)
    assert "{" not in text and text.startswith('"\\x7b\\x7b lookup(') and text.endswith("...")
    assert len(text) <= 40 + 3 * 4  # each escaped brace is 4 characters instead of 1
    assert event_input.shown("abc") == "'abc'"


@pytest.mark.parametrize(
    "value", [None, 3, 1.5, True, "plain text; $(touch x) ../../etc/passwd", {"a": [1, "b"]}]
)
def test_plain_data_is_not_hostile(value: object) -> None:
    assert event_input.hostile(value, "v") == ""


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_a_template_marker_or_an_oversized_string_anywhere_is_hostile(text: str) -> None:
    problem = event_input.hostile({"a": [{"b": text}]}, "v")
    assert problem.startswith("v.a[0].b: ")
    assert ("oversized" in problem) == (len(text) > event_input.MAX_STRING)
    assert "{" not in problem


def test_a_template_marker_in_a_key_is_hostile() -> None:
    assert event_input.hostile({"labels": {"a{{b": "c"}}, "v").startswith(
        "v.labels key: carries a template"
    )


def test_a_key_that_is_not_an_identifier_is_shown_escaped_in_the_path() -> None:
    problem = event_input.hostile({"a b": LOOKUP}, "v")
    assert problem.startswith("v['a b']: carries a template marker")


def test_structures_too_deep_or_too_large_are_hostile() -> None:
    deep: object = "x"
    for _level in range(event_input.MAX_DEPTH + 1):
        deep = [deep]
    assert "nested deeper than" in event_input.hostile(deep, "v")
    deep_dict: object = "x"
    for _level in range(event_input.MAX_DEPTH + 1):
        deep_dict = {"k": deep_dict}
    assert "nested deeper than" in event_input.hostile(deep_dict, "v")
    assert "more than" in event_input.hostile(list(range(event_input.MAX_ITEMS + 1)), "v")


def test_check_vars_accepts_a_valid_alert_run_and_a_run_without_alert() -> None:
    good = {
        "pflow_alert_name": "BackendServiceDown",
        "pflow_alert_fingerprint": "1a2b3c4d5e6f7081",
        "pflow_mode": "recover",
        "pflow_alert_matchers": {"instance": "web1:8000"},
        "ansible_eda": {"rule": "RB-01 Backend Service Down", "event": {"alert": _alert()}},
    }
    assert event_input.check_vars(good) == ""
    assert event_input.check_vars({"pflow_alert_name": "", "pflow_alert_fingerprint": ""}) == ""
    assert event_input.check_vars({}) == ""


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("pflow_alert_name", LOOKUP, "not a Prometheus alert name"),
        ("pflow_alert_name", "Backend;touch", "not a Prometheus alert name"),
        ("pflow_alert_name", "A" * 129, "not a Prometheus alert name"),
        ("pflow_alert_name", "Backend\n", "not a Prometheus alert name"),
        ("pflow_alert_name", ["BackendServiceDown"], "not a Prometheus alert name"),
        ("pflow_alert_fingerprint", LOOKUP, "not an Alertmanager fingerprint"),
        ("pflow_alert_fingerprint", "../../etc/passwd", "not an Alertmanager fingerprint"),
        ("pflow_alert_fingerprint", "ABCDEF", "not an Alertmanager fingerprint"),
        ("pflow_alert_fingerprint", "a" * 33, "not an Alertmanager fingerprint"),
        ("pflow_mode", "destroy", "not one of recover, diagnose, maintain"),
        ("pflow_mode", LOOKUP, "not one of recover, diagnose, maintain"),
    ],
)
def test_check_vars_refuses_a_malformed_alert_name_fingerprint_or_mode(
    name: str, value: object, rule: str
) -> None:
    problem = event_input.check_vars({name: value})
    assert problem.startswith(f"{name}: {rule}")
    assert "{" not in problem.split(": ", 2)[2] if rule.startswith("not a") else True
    assert len(problem) < 200


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_check_vars_refuses_hostile_eda_event_data_anywhere(text: str) -> None:
    event = {"event": {"alert": _alert(annotations={"summary": text})}}
    assert event_input.check_vars({"ansible_eda": event}).startswith(
        "ansible_eda.event.alert.annotations.summary: "
    )


def test_check_vars_refuses_hostile_data_in_any_other_pflow_alert_variable() -> None:
    problem = event_input.check_vars({"pflow_alert_matchers": {"instance": LOOKUP}})
    assert problem.startswith("pflow_alert_matchers.instance: carries a template marker")


def test_check_vars_leaves_variables_that_are_not_alert_data_alone() -> None:
    # An inventory's own templates are the inventory's business, not an alert's.
    assert event_input.check_vars({"backend_url": "http://{{ inventory_hostname }}:8000"}) == ""


def test_screen_alert_keeps_only_what_the_rules_need() -> None:
    assert event_input.screen_alert(_alert()) == {
        "alert": {
            "status": "firing",
            "fingerprint": "1a2b3c4d5e6f7081",
            "group_key": "",
            "incident": "",
            "labels": {"alertname": "BackendServiceDown"},
        }
    }


def test_screen_alert_normalises_the_runbook_label_as_routing_does() -> None:
    labels = {"alertname": "Anything", "runbook": " rb-02 "}
    screened = event_input.screen_alert(_alert(labels=labels))
    assert screened["alert"]["labels"] == {"alertname": "Anything", "runbook": "RB-02"}


def test_screen_alert_reports_an_unexpected_status_as_unknown() -> None:
    assert event_input.screen_alert(_alert(status="pending"))["alert"]["status"] == "unknown"


@pytest.mark.parametrize(
    ("alert", "reason"),
    [
        ("not a dict", "alert: not an alert object"),
        (
            _alert(annotations={"summary": LOOKUP}),
            "alert.annotations.summary: carries a template marker",
        ),
        (_alert(generatorURL="x" * 100_000), "alert.generatorURL: oversized"),
        (
            _alert(labels={"alertname": "a;touch"}),
            "alert.labels.alertname: not a Prometheus alert name",
        ),
        (_alert(labels={}), "alert.labels.alertname: not a Prometheus alert name: None"),
        (
            _alert(fingerprint="$(touch x)"),
            "alert.fingerprint (BackendServiceDown): not an Alertmanager",
        ),
        (
            _alert(labels={"alertname": "X", "runbook": "../../etc/passwd"}),
            "alert.labels.runbook (X): not a runbook id",
        ),
    ],
)
def test_screen_alert_refuses_a_hostile_or_malformed_alert(alert: object, reason: str) -> None:
    screened = event_input.screen_alert(alert)
    assert list(screened) == [event_input.REFUSED_KEY]
    assert screened[event_input.REFUSED_KEY].startswith(reason)
    assert "{" not in screened[event_input.REFUSED_KEY]


def test_alert_events_splits_a_notification_and_drops_everything_else() -> None:
    notification = {
        "payload": {
            "status": "firing",
            "commonAnnotations": {"x": LOOKUP},
            "alerts": [_alert(), _alert(fingerprint="zz")],
        },
        "meta": {"headers": {"X-Evil": LOOKUP}},
    }
    events = event_input.alert_events(notification)
    assert events[0] == event_input.screen_alert(_alert())
    assert events[1][event_input.REFUSED_KEY].startswith("alerts[1].fingerprint")


@pytest.mark.parametrize("event", [None, {}, {"payload": "x"}, {"payload": {"alerts": "x"}}])
def test_alert_events_refuses_what_is_not_a_notification(event: object) -> None:
    reason = "payload.alerts: not an Alertmanager notification (no alerts list)"
    assert event_input.alert_events(event) == [{event_input.REFUSED_KEY: reason}]
