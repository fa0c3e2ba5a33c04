"""The incident decisions and renderer (issue 16): the key, what each sink does per event and
outcome, the record's update rules, the texts. One test per branch."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident

ESCALATION = {
    "RB-03": [
        {"level": "L1", "who": "On-call engineer", "when": "Immediately"},
        {"level": "L2", "who": "Backend team lead", "when": "after 15 minutes"},
    ]
}


def _result(outcome: str = "recovered", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "runbook": "RB-03",
        "host": "cache1",
        "service": "redis",
        "outcome": outcome,
        "reason": "Redis restarted",
        "next_runbook": "",
        "findings": [
            {
                "check": "connectivity",
                "status": "critical",
                "detail": "refused",
                "value": "refused",
                "threshold": "PING",
            },
            {"check": "memory", "status": "ok", "detail": "fine"},
        ],
        "actions": [
            {
                "action": "restart",
                "target": "redis",
                "result": "restarted",
                "before": "STOPPED",
                "after": "RUNNING",
            }
        ],
        "verification": [{"check": "ping_gate", "status": "ok", "detail": "PONG"}],
    }
    base.update(extra)
    return base


# --- the key -------------------------------------------------------------------------------


def test_a_given_key_wins() -> None:
    assert incident.select_key("JIRA-123", "abc", "prod", "RB-03", "r1") == {
        "key": "JIRA-123",
        "source": "given",
    }


@pytest.mark.parametrize("bad", ["{{ lookup('pipe','id') }}", "a b", "x" * 129, "a;rm", "é"])
def test_a_given_key_that_is_not_plain_is_refused_never_replaced(bad: str) -> None:
    with pytest.raises(incident.IncidentError, match="not valid"):
        incident.select_key(bad, "abc", "prod", "RB-03", "r1")


def test_the_fingerprint_is_the_key_of_an_alert_run() -> None:
    assert incident.select_key("", "0a1b2c", "prod", "RB-03", "r1") == {
        "key": "0a1b2c",
        "source": "fingerprint",
    }


def test_a_run_without_alert_is_its_own_incident() -> None:
    assert incident.select_key(None, "", "prod", "RB-03", "r1") == {
        "key": "prod/RB-03/r1",
        "source": "run",
    }


def test_a_malformed_fingerprint_falls_back_to_the_run_with_a_plain_key() -> None:
    chosen = incident.select_key("", "{{x}}", "pr od", "RB-03", "")
    assert chosen == {"key": "pr_od/RB-03/-", "source": "run"}
    assert incident.valid_key(chosen["key"])


def test_the_key_never_becomes_a_path() -> None:
    sha = incident.key_sha("../../etc/passwd")
    assert len(sha) == 64 and "/" not in sha


# --- what each sink does --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "handle", "event", "outcome", "expected"),
    [
        ("email", None, "documented", "escalate", "create"),
        ("email", {"root": "x"}, "documented", "recovered", "update"),
        ("email", {"root": "x"}, "resolved", "recovered", "resolve"),
        ("email", None, "resolved", "recovered", "create"),
        ("slack", {"ts": "1"}, "still_firing", "recovered", "update"),
        ("ticket", None, "documented", "escalate", "create"),
        ("ticket", {"id": "T-1"}, "documented", "escalate", "update"),
        ("ticket", {"id": "T-1"}, "resolved", "recovered", "resolve"),
        ("ticket", None, "resolved", "recovered", "skip"),
        ("jira", {"id": "P-1"}, "still_firing", "recovered", "update"),
        ("pagerduty", None, "documented", "escalate", "trigger"),
        ("pagerduty", None, "documented", "refused", "trigger"),
        ("pagerduty", None, "documented", "recovered", "change"),
        ("pagerduty", None, "documented", "healthy", "skip"),
        ("pagerduty", None, "still_firing", "recovered", "trigger"),
        ("pagerduty", {"dedup_key": "k", "triggered": True}, "resolved", "recovered", "resolve"),
        ("pagerduty", {"dedup_key": "k"}, "resolved", "recovered", "skip"),
    ],
)
def test_each_sink_action(kind: str, handle: Any, event: str, outcome: str, expected: str) -> None:
    assert incident.sink_action(kind, handle, event, outcome) == expected


def test_an_escalation_never_resolves_the_ticket_or_the_pager() -> None:
    for kind in ("ticket", "jira", "pagerduty", "email"):
        action = incident.sink_action(
            kind, {"id": "T-1", "triggered": True}, "documented", "escalate"
        )
        assert action != "resolve"


def test_a_resolved_incident_is_not_resolved_twice() -> None:
    assert (
        incident.sink_action("ticket", {"id": "T-1"}, "resolved", "recovered", resolved=True)
        == "skip"
    )


def test_an_acknowledged_incident_stops_renotification_but_keeps_the_ticket() -> None:
    assert (
        incident.sink_action("email", {"root": "r"}, "still_firing", "recovered", acked=True)
        == "skip"
    )
    assert (
        incident.sink_action("pagerduty", None, "still_firing", "recovered", acked=True) == "skip"
    )
    assert (
        incident.sink_action("ticket", {"id": "T"}, "still_firing", "recovered", acked=True)
        == "update"
    )


def test_a_healthy_manual_run_opens_nothing() -> None:
    assert incident.sink_action("ticket", None, "documented", "healthy", key_source="run") == "skip"
    assert (
        incident.sink_action("ticket", None, "documented", "healthy", key_source="fingerprint")
        == "create"
    )
    assert (
        incident.sink_action("ticket", {"id": "T"}, "documented", "healthy", key_source="run")
        == "update"
    )


@pytest.mark.parametrize(("kind", "event"), [("webhook", "documented"), ("email", "closed")])
def test_unknown_kind_or_event_fails_closed(kind: str, event: str) -> None:
    with pytest.raises(incident.IncidentError):
        incident.sink_action(kind, None, event, "recovered")


def test_sink_configs_are_checked() -> None:
    assert incident.check_sinks([{"kind": "email"}, {"kind": "email", "name": "oncall-mail"}])
    for bad in (
        {"kind": "email"},
        [{"kind": "fax"}],
        [{"kind": "email"}, {"kind": "email"}],
        [{"kind": "ticket", "name": "a b"}],
    ):
        with pytest.raises(incident.IncidentError):
            incident.check_sinks(bad)


# --- the record -----------------------------------------------------------------------------


def test_an_update_keeps_handles_runs_and_events() -> None:
    rec = incident.new_record("k", "t0")
    rec = incident.apply_update(
        rec,
        "r1",
        "documented",
        "escalate",
        [
            {
                "sink": "ticket",
                "kind": "ticket",
                "status": "ok",
                "handle": {"id": "T-1"},
                "detail": "create",
            },
            {
                "sink": "mail",
                "kind": "email",
                "status": "failed",
                "handle": {},
                "detail": "refused",
            },
        ],
        "t1",
    )
    rec = incident.apply_update(rec, "r1", "documented", "escalate", [], "t2")
    assert rec["handles"] == {"ticket": {"id": "T-1"}}
    assert rec["runs"] == ["r1"]
    assert [e["event"] for e in rec["events"]] == ["documented", "documented"]
    assert rec["events"][0]["sinks"][1]["status"] == "failed"
    assert rec["updated"] == "t2" and rec["created"] == "t0" and rec["resolved"] is False


def test_a_failed_sink_that_created_something_keeps_its_handle() -> None:
    rec = incident.apply_update(
        incident.new_record("k", "t"),
        "r",
        "documented",
        "escalate",
        [{"sink": "t", "status": "failed", "handle": {"id": "T-9"}}],
        "t",
    )
    assert rec["handles"]["t"] == {"id": "T-9"}


def test_a_skipped_sink_and_a_bogus_status_change_nothing() -> None:
    rec = incident.apply_update(
        incident.new_record("k", "t"),
        "r",
        "documented",
        "healthy",
        [
            {"sink": "a", "status": "skipped", "handle": {"id": "1"}},
            {"sink": "b", "status": "bogus"},
            "not a dict",
        ],
        "t",
    )
    assert rec["handles"] == {}
    assert [s["status"] for s in rec["events"][0]["sinks"]] == ["skipped", "failed"]


def test_resolution_then_a_new_run_reopens() -> None:
    rec = incident.apply_update(
        incident.new_record("k", "t"), "r1", "resolved", "recovered", [], "t"
    )
    assert rec["resolved"] is True
    rec = incident.apply_update(rec, "r2", "documented", "escalate", [], "t")
    assert rec["resolved"] is False


def test_ack_is_recorded() -> None:
    rec = incident.apply_update(
        incident.new_record("k", "t"), "", "", "", [], "t", ack={"by": "ana", "at": "t"}
    )
    assert rec["ack"] == {"by": "ana", "at": "t"} and rec["events"] == []


def test_no_secret_reaches_the_record() -> None:
    handle = {
        "id": "T-1",
        "token": "s3cret",
        "webhook_url": "https://hooks/x",
        "password": "p",
        "dedup_key": "d",
        "Authorization": "Bearer x",
        "routing_key": "r",
    }
    rec = incident.apply_update(
        incident.new_record("k", "t"),
        "r",
        "documented",
        "escalate",
        [{"sink": "s", "status": "ok", "handle": handle}],
        "t",
    )
    assert rec["handles"]["s"] == {"id": "T-1", "dedup_key": "d"}


def test_the_event_list_is_bounded() -> None:
    rec = incident.new_record("k", "t")
    for i in range(60):
        rec = incident.apply_update(rec, f"r{i}", "documented", "healthy", [], "t")
    assert len(rec["events"]) == 50 and rec["events"][-1]["run_id"] == "r59"


# --- the texts ------------------------------------------------------------------------------


def test_the_escalate_text_names_findings_actions_verification_and_the_path() -> None:
    model = incident.build_model(
        [_result("escalate")],
        "documented",
        "fp1",
        "run-1",
        "prod",
        "RedisConnectionFailure",
        "fp1",
        ESCALATION,
    )
    msgs = incident.render(model)
    text = msgs["ticket"]
    assert "connectivity: refused (value refused, threshold PING)" in text
    assert "restart redis: restarted (STOPPED -> RUNNING)" in text
    assert "[ok] ping_gate: PONG" in text
    assert "L2 Backend team lead: after 15 minutes" in text
    assert "Alert: RedisConnectionFailure   Fingerprint: fp1" in text
    assert "Run: run-1" in text
    assert "memory" not in text  # an ok finding is not news
    assert msgs["severity"] == "critical"
    assert msgs["subject"] == "[pflow-ops] prod RB-03 escalate: RedisConnectionFailure redis (fp1)"


def test_a_recovery_has_no_escalation_path() -> None:
    text = incident.render(incident.build_model([_result()], escalation=ESCALATION))["chat"]
    assert "Escalation path" not in text


def test_resolution_and_still_firing_headlines() -> None:
    loop = {"state": "resolved", "detail": "cleared after 12 s"}
    msgs = incident.render(incident.build_model([_result()], "resolved", "k", loop=loop))
    assert "resolved (alert cleared)" in msgs["subject"]
    assert "Alert state: resolved: cleared after 12 s" in msgs["chat"]
    firing = incident.render(
        incident.build_model([_result()], "still_firing", "k", escalation=ESCALATION)
    )
    assert "STILL FIRING" in firing["subject"] and "Escalation path" in firing["chat"]


def test_several_hosts_combine_to_the_worst_outcome() -> None:
    model = incident.build_model([_result("recovered"), _result("escalate", host="cache2"), "junk"])
    assert model["outcome"] == "escalate" and [h["host"] for h in model["hosts"]] == [
        "cache1",
        "cache2",
    ]


def test_no_result_is_an_error() -> None:
    model = incident.build_model([])
    assert model["outcome"] == "error" and model["runbook"] == "-"


def test_long_lists_are_capped_and_the_pager_summary_bounded() -> None:
    many = [{"action": "kill", "target": f"pid {i}", "result": "x" * 100} for i in range(40)]
    model = incident.build_model([_result("escalate", actions=many, reason="r" * 3000)])
    msgs = incident.render(model)
    assert "... 20 more in the run report" in msgs["chat"]
    assert len(msgs["pager"]) == incident.PAGER_SUMMARY_MAX


def test_hostile_alert_text_stays_text() -> None:
    msgs = incident.render(incident.build_model([_result(reason="{{ lookup('pipe', 'id') }}")]))
    assert "{{ lookup('pipe', 'id') }}" in msgs["chat"]


def test_an_action_without_values_and_a_next_runbook() -> None:
    text = incident.render(
        incident.build_model(
            [_result("escalate", next_runbook="RB-02", actions=[], findings=[], verification=[])]
        )
    )["chat"]
    assert "Next runbook: RB-02" in text and "Actions: none" in text


# --- the email thread and the ticket id ---------------------------------------------------------


def test_every_email_of_one_incident_names_the_same_root() -> None:
    a, b = incident.email_thread("k1", "example.test"), incident.email_thread("k1", "example.test")
    assert (
        a == b and a["root"].startswith("<pflow-incident-") and a["root"].endswith("@example.test>")
    )
    assert f"References={a['root']}" in a["headers"] and f"In-Reply-To={a['root']}" in a["headers"]
    assert incident.email_thread("k2", "example.test")["root"] != a["root"]
    assert "k1" not in a["root"]


@pytest.mark.parametrize(("answer", "expected"), [({"id": "T-1"}, "T-1"), ({"id": 42}, "42")])
def test_a_ticket_id_is_taken(answer: Any, expected: str) -> None:
    assert incident.ticket_id(answer) == expected


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "../admin"},
        {"id": True},
        {"id": None},
        {},
        [],
        "T-1",
        {"id": "x" * 65},
        {"id": "a/b?c"},
    ],
)
def test_a_hostile_ticket_id_is_refused(answer: Any) -> None:
    with pytest.raises(incident.IncidentError):
        incident.ticket_id(answer)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("resolved", "resolved"),
        ("firing", "still_firing"),
        ("unknown", "still_firing"),
        ("not_checked", ""),
        ("", ""),
    ],
)
def test_the_loop_verdict_maps_to_an_event(state: str, event: str) -> None:
    assert incident.loop_event(state) == event


def test_an_action_whose_result_already_names_the_change_is_not_repeated() -> None:
    action = {
        "action": "restart",
        "target": "redis",
        "result": "STOPPED -> running, pid 7",
        "before": "STOPPED",
        "after": "running, pid 7",
    }
    text = incident.render(incident.build_model([_result(actions=[action])]))["chat"]
    assert "restart redis: STOPPED -> running, pid 7\n" in text + "\n"


def test_each_action_is_one_change_line_for_the_pager() -> None:
    msgs = incident.render(incident.build_model([_result(), _result(host="cache2", actions=[])]))
    assert msgs["changes"] == ["cache1: restart redis: restarted (STOPPED -> RUNNING)"]


def test_a_renotification_reaches_chat_and_ticket_never_the_pager() -> None:
    assert incident.sink_action("email", {"root": "r"}, "renotify", "escalate") == "update"
    assert incident.sink_action("slack", None, "renotify", "escalate") == "create"
    assert incident.sink_action("ticket", {"id": "T"}, "renotify", "escalate") == "update"
    assert incident.sink_action("pagerduty", {"dedup_key": "k"}, "renotify", "escalate") == "skip"
    assert incident.sink_action("email", {"root": "r"}, "renotify", "escalate", acked=True) == "skip"
