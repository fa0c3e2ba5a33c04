"""Issue 16's incident keys: the group key and the incident annotation as alert data (the checks
the playbooks' first play, the EDA filter and the receiver share), the incident key's sources in
their order (select_key), and the PagerDuty severity from the catalogue. A test per branch."""

from __future__ import annotations

import hashlib
import re

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import event_input, incident
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_saas as saas

GROUP_KEY = '{}/{severity="critical"}:{alertname="BackendServiceDown", service="api"}'
AM_KEY = hashlib.sha256(GROUP_KEY.encode("utf-8")).hexdigest()
LOOKUP = "{{ lookup('pipe', 'touch /tmp/pwned') }}"


# --- the group key and the annotation as data ----------------------------------------------


@pytest.mark.parametrize(
    "value",
    [GROUP_KEY, "{}:{}", "", '{}/{env=~"prod|stag"}:{instance="web 1:80", job="a=b"}', "é{}"],
)
def test_a_real_group_key_with_braces_quotes_and_colons_is_data(value: str) -> None:
    assert event_input.group_key_problem(value) == ""
    assert event_input.check_vars({"pflow_alert_group_key": value}) == ""


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('{}:{alertname="' + LOOKUP + '"}', "carries a template marker"),
        ('{}:{x="{% set y = 1 %}"}', "carries a template marker"),
        ("{#}", "carries a template marker"),
        ('{}:{a="b"}\n{}', "carries a control character"),
        ('{}:{a="\x1b[31m"}', "carries a control character"),
        ("x" * (event_input.GROUP_KEY_MAX + 1), "oversized"),
        (["{}:{}"], "not a string"),
        (12, "not a string"),
    ],
)
def test_a_hostile_or_malformed_group_key_is_refused_with_one_line(
    value: object, reason: str
) -> None:
    problem = event_input.check_vars({"pflow_alert_group_key": value})
    assert problem.startswith(f"pflow_alert_group_key: {reason}")
    assert "{{" not in problem and len(problem) < 200


@pytest.mark.parametrize("name", ["pflow_alert_incident", "pflow_incident_key"])
@pytest.mark.parametrize("value", [LOOKUP, "INC 42", "x" * 129, "a;rm -rf", "é", ["INC-1"]])
def test_an_incident_key_that_is_not_plain_is_refused_by_the_first_play(
    name: str, value: object
) -> None:
    assert event_input.check_vars({name: value}).startswith(f"{name}: not an incident key")


@pytest.mark.parametrize("name", ["pflow_alert_incident", "pflow_incident_key"])
def test_a_plain_or_empty_incident_key_passes_the_first_play(name: str) -> None:
    assert event_input.check_vars({name: "JIRA-123"}) == ""
    assert event_input.check_vars({name: ""}) == ""


def test_the_first_plays_key_pattern_is_the_incident_modules() -> None:
    assert event_input.INCIDENT_KEY.pattern == incident.KEY_PATTERN.pattern.strip("^$")
    assert isinstance(event_input.INCIDENT_KEY, re.Pattern)


def _alert(**annotations: str) -> dict:
    return {
        "status": "firing",
        "fingerprint": "1a2b3c4d5e6f7081",
        "labels": {"alertname": "BackendServiceDown"},
        "annotations": {"summary": "down", **annotations},
    }


def test_the_eda_filter_keeps_the_group_key_and_the_incident_annotation() -> None:
    events = event_input.alert_events(
        {"payload": {"groupKey": GROUP_KEY, "alerts": [_alert(incident="INC-42"), _alert()]}}
    )
    assert [(e["alert"]["group_key"], e["alert"]["incident"]) for e in events] == [
        (GROUP_KEY, "INC-42"),
        (GROUP_KEY, ""),
    ]
    assert "summary" not in str(events)  # the other annotations stay behind


def test_the_eda_filter_without_a_group_key_passes_an_empty_one() -> None:
    for payload in ({"alerts": [_alert()]}, {"groupKey": None, "alerts": [_alert()]}):
        assert event_input.alert_events({"payload": payload})[0]["alert"]["group_key"] == ""


@pytest.mark.parametrize("group_key", ['{}:{a="' + LOOKUP + '"}', "a\nb", 7])
def test_the_eda_filter_refuses_every_alert_of_a_hostile_group_key(group_key: object) -> None:
    events = event_input.alert_events(
        {"payload": {"groupKey": group_key, "alerts": [_alert()] * 2}}
    )
    assert len(events) == 2
    assert all(e[event_input.REFUSED_KEY].startswith("payload.groupKey: ") for e in events)
    assert all("{" not in e[event_input.REFUSED_KEY] for e in events)
    empty = event_input.alert_events({"payload": {"groupKey": group_key, "alerts": []}})
    assert list(empty[0]) == [event_input.REFUSED_KEY]


@pytest.mark.parametrize("bad", ["INC 42", "$(touch x)", "x" * 129])
def test_the_eda_filter_refuses_an_alert_whose_incident_annotation_is_not_a_key(bad: str) -> None:
    screened = event_input.screen_alert(_alert(incident=bad))
    assert screened[event_input.REFUSED_KEY].startswith(
        "alert.annotations.incident (BackendServiceDown): not an incident key"
    )


# --- select_key: the sources in their order -------------------------------------------------


def _select(**kw: str) -> dict:
    base = {
        "explicit": "",
        "fingerprint": "0a1b2c",
        "env": "prod",
        "runbook": "RB-01",
        "run_id": "r1",
    }
    base.update(kw)
    return incident.select_key(**base)


def test_the_given_key_wins_over_the_annotation_group_key_and_fingerprint() -> None:
    chosen = _select(explicit="JIRA-1", annotation="INC-2", group_key=GROUP_KEY)
    assert chosen == {"key": "JIRA-1", "source": "given"}


def test_the_annotation_wins_over_the_group_key() -> None:
    assert _select(annotation=" INC-2 ", group_key=GROUP_KEY) == {
        "key": "INC-2",
        "source": "annotation",
    }


def test_the_group_key_hashed_is_alertmanagers_pagerduty_key() -> None:
    chosen = _select(group_key=GROUP_KEY)
    assert chosen == {"key": AM_KEY, "source": "group_key"}
    assert (
        chosen["key"]
        == saas.alertmanager_dedup_key(GROUP_KEY)
        == incident.alertmanager_key(GROUP_KEY)
    )
    assert incident.valid_key(chosen["key"])


def test_the_group_key_is_hashed_exactly_as_received() -> None:
    assert _select(group_key=" " + GROUP_KEY)["key"] != AM_KEY  # never stripped


def test_without_a_group_key_the_fingerprint_then_the_run() -> None:
    assert _select(group_key="") == {"key": "0a1b2c", "source": "fingerprint"}
    assert _select(fingerprint="") == {"key": "prod/RB-01/r1", "source": "run"}
    assert incident.alertmanager_key("") == ""


@pytest.mark.parametrize("bad", [LOOKUP, "INC 42", "x" * 129])
def test_an_invalid_annotation_refuses_never_falls_through(bad: str) -> None:
    with pytest.raises(incident.IncidentError, match=r"annotation incident key .* is not valid"):
        _select(annotation=bad, group_key=GROUP_KEY)


def test_an_invalid_given_key_refuses_even_with_a_valid_annotation() -> None:
    with pytest.raises(incident.IncidentError, match="given incident key"):
        _select(explicit="a b", annotation="INC-2")


# --- the PagerDuty severity from the catalogue ---------------------------------------------

SEVERITIES = {
    "RB-01": "critical",
    "RB-02": "high",
    "RB-03": "medium-high",
    "MAINT-CACHE": "maintenance",
}


@pytest.mark.parametrize(
    ("runbooks", "expected"),
    [
        (["RB-01"], "critical"),
        (["RB-03"], "medium-high"),
        (["RB-03", "RB-02"], "high"),  # a batch pages as its worst
        (["MAINT-CACHE"], "maintenance"),
        (["RB-99"], ""),  # not in the map: the trigger falls back
        ([], ""),
    ],
)
def test_the_catalogue_severity_of_a_batch(runbooks: list[str], expected: str) -> None:
    results = [{"runbook": rb, "outcome": "escalate"} for rb in runbooks]
    assert saas.catalogue_severity(results, SEVERITIES) == expected


def test_an_unknown_catalogue_word_still_counts_and_junk_is_ignored() -> None:
    assert saas.catalogue_severity([{"runbook": "X"}], {"X": "Urgent"}) == "urgent"
    assert saas.catalogue_severity("junk", SEVERITIES) == ""
    assert saas.catalogue_severity([None, {"runbook": "RB-01"}], None) == ""


@pytest.mark.parametrize(
    ("sink", "catalogue", "outcome", "expected"),
    [
        ("", "critical", "warning", "critical"),
        ("", "high", "critical", "error"),
        ("", "medium-high", "critical", "warning"),
        ("", "maintenance", "critical", "info"),
        ("info", "critical", "critical", "info"),  # the sink pins its own
        ("", "", "critical", "critical"),  # no catalogue word: the outcome's
        ("", "", "", "error"),  # nothing: Alertmanager's default
        ("", "urgent", "", "error"),  # an unknown word: Alertmanager's default
    ],
)
def test_the_trigger_severity(sink: str, catalogue: str, outcome: str, expected: str) -> None:
    assert saas.trigger_severity(sink, catalogue, outcome) == expected
