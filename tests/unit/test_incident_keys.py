"""Issue 16's incident keys on the launcher's side: `pflow-ops alert --group-key/--alert-incident`
become the run's pflow_alert_group_key / pflow_alert_incident (checked, refused with one line),
and the receiver carries a notification's groupKey and an alert's `incident` annotation to its
run's argv (as one argv item each), or ignores the alert when either may not travel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pflow_ops import cli, run
from pflow_ops.errors import UsageError
from pflow_ops.receiver import worker
from pflow_ops.receiver.policy import BAD_GROUP_KEY, BAD_INCIDENT, QUEUED, Policy, replay
from pflow_ops.request import RunRequest
from tests.unit.test_receiver_policy import TABLE, alert

GROUP_KEY = '{}/{severity="critical"}:{alertname="BackendServiceDown"}'
LOOKUP = "{{ lookup('pipe', 'id') }}"


def _request(*argv: str) -> RunRequest:
    return cli.run_request(cli.build_parser().parse_args(list(argv)))


def test_alert_takes_the_group_key_and_the_incident_annotation_into_the_run_vars() -> None:
    req = _request(
        "alert", "BackendServiceDown", "--fingerprint", "ab12", f"--group-key={GROUP_KEY}",
        "--alert-incident", "INC-42",
    )  # fmt: skip
    out = run._run_vars(req, "r1")
    assert (out["pflow_alert_group_key"], out["pflow_alert_incident"]) == (GROUP_KEY, "INC-42")
    assert "pflow_incident_key" not in out  # the annotation is not the operator's key


def test_without_them_the_run_vars_hold_neither() -> None:
    out = run._run_vars(_request("alert", "BackendServiceDown", "--fingerprint", "ab12"), "r1")
    assert "pflow_alert_group_key" not in out and "pflow_alert_incident" not in out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--group-key", '{}:{a="' + LOOKUP + '"}', "bad --group-key: carries a template marker"),
        ("--group-key", '{}:{a="b"}\n', "bad --group-key: carries a control character"),
        ("--alert-incident", "INC 42", "bad --alert-incident: not an incident key"),
        ("--alert-incident", LOOKUP, "bad --alert-incident: not an incident key"),
    ],
)
def test_a_hostile_group_key_or_annotation_is_a_usage_error(
    option: str, value: str, message: str
) -> None:
    with pytest.raises(UsageError) as exc:
        _request("alert", "BackendServiceDown", f"{option}={value}")
    assert str(exc.value).startswith(message) and "{{" not in str(exc.value)


# -- the receiver ------------------------------------------------------------------------------


def _alert(group_key: Any = GROUP_KEY, **annotations: str) -> dict[str, Any]:
    return {**alert(), "groupKey": group_key, "annotations": {"summary": "x", **annotations}}


def test_a_queued_alert_carries_its_group_key_and_annotation_through_the_journal() -> None:
    live = Policy(TABLE, 600, 300)
    d = live.decide("r1", _alert(incident="INC-42"), now=1000)
    assert d.action == QUEUED
    first = live.items["r1"].first
    assert first is not None and (first.group_key, first.incident) == (GROUP_KEY, "INC-42")
    record = d.record()
    assert (record["group_key"], record["incident"]) == (GROUP_KEY, "INC-42")
    # The replay (and the snapshot) rebuild the same attached alert.
    rebuilt = Policy(TABLE, 600, 300)
    replay(rebuilt, json.loads(json.dumps([{**record, "ts": 1000}])))
    assert rebuilt.state() == live.state()
    restored = Policy(TABLE, 600, 300)
    replay(restored, live.snapshot_records())
    assert restored.items["r1"].alerts == live.items["r1"].alerts


def test_an_alert_without_group_key_or_annotation_is_queued_with_neither() -> None:
    d = Policy(TABLE, 600, 300).decide("r1", alert(), now=1000)
    assert d.action == QUEUED and "group_key" not in d.record() and "incident" not in d.record()


@pytest.mark.parametrize(
    ("group_key", "annotations", "reason"),
    [
        ('{}:{instance="' + LOOKUP + '"}', {}, BAD_GROUP_KEY),
        ("{}:{}\r\n", {}, BAD_GROUP_KEY),
        ("x" * 5000, {}, BAD_GROUP_KEY),
        (["{}"], {}, BAD_GROUP_KEY),
        (GROUP_KEY, {"incident": "INC 42; rm -rf /"}, BAD_INCIDENT),
        (GROUP_KEY, {"incident": LOOKUP}, BAD_INCIDENT),
    ],
)
def test_an_alert_whose_group_key_or_annotation_may_not_travel_is_ignored(
    group_key: Any, annotations: dict[str, str], reason: str
) -> None:
    p = Policy(TABLE, 600, 300)
    d = p.decide("r1", _alert(group_key, **annotations), now=1000)
    assert (d.action, d.reason) == ("ignored", reason)
    assert not p.items


def test_the_argv_takes_each_as_one_item_and_refuses_what_is_not_checked() -> None:
    argv = worker.build_argv(
        ("pflow-ops",), "X", "prod", "ab12", False, group_key="--check {}", incident="INC-1"
    )
    assert argv[-2:] == ["--group-key=--check {}", "--alert-incident=INC-1"]
    assert "--check" not in argv
    parsed = cli.build_parser().parse_args(["alert", *argv[1:]])
    assert (parsed.group_key, parsed.alert_incident, parsed.check) == ("--check {}", "INC-1", False)
    assert "--group-key" not in " ".join(worker.build_argv(("p",), "X", "prod", "ab12", False))
    with pytest.raises(ValueError, match="template marker"):
        worker.build_argv(("p",), "X", "prod", "ab12", False, group_key=LOOKUP)
    with pytest.raises(ValueError, match="not an incident key"):
        worker.build_argv(("p",), "X", "prod", "ab12", False, incident="a b")


# -- the incident_record action plugin: the values read raw, in select_key's order -------------


def _args(**kw: Any) -> dict[str, Any]:
    return {"state": "get", "key": "", "runbook": "RB-01", "run_id": "", **kw}


def test_the_action_reads_the_annotation_and_the_group_key_raw() -> None:
    from tests.plugins import load_plugin

    action = load_plugin("incident_record", kind="action")
    both = {"pflow_alert_group_key": GROUP_KEY, "pflow_alert_fingerprint": "ab12"}
    assert action.choose_key(_args(), {**both, "pflow_alert_incident": "INC-42"}) == {
        "key": "INC-42",
        "source": "annotation",
    }
    chosen = action.choose_key(_args(), both)
    assert chosen["source"] == "group_key" and chosen["key"] == action.incident.key_sha(GROUP_KEY)
    assert action.group_key(both) == GROUP_KEY
    assert action.group_key({}) == ""
    with pytest.raises(action.incident.IncidentError, match="pflow_alert_group_key: carries"):
        action.choose_key(_args(), {"pflow_alert_group_key": '{}:{a="' + LOOKUP + '"}'})
    with pytest.raises(action.incident.IncidentError, match="annotation incident key"):
        action.choose_key(_args(), {**both, "pflow_alert_incident": "a b"})
