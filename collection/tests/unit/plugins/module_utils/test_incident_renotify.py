"""The re-notification decision (issue 16): which escalation level of an unacknowledged incident
is due now, or nothing and why. One test per branch of incident_renotify.decide."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_renotify as rn

T0 = "2026-12-05T10:00:00Z"
PATH = [
    {"level": "L1", "who": "On-call engineer", "when": "Immediately", "after_minutes": 0},
    {"level": "L2", "who": "Backend team lead", "when": "within 15 minutes", "after_minutes": 15},
    {"level": "L3", "who": "Platform architect", "when": "beyond 30 minutes", "after_minutes": 30},
]
ESCALATION = {"RB-03": PATH}
EMAIL = [{"kind": "email", "to": ["oncall@example.test"]}]


def at(minutes: float) -> datetime.datetime:
    return rn.parse_time(T0) + datetime.timedelta(minutes=minutes)


def _event(minutes: float, event: str = "documented", outcome: str = "escalate", **extra: Any) -> dict[str, Any]:
    return {"at": rn.time_text(at(minutes)), "run_id": "r", "event": event, "outcome": outcome,
            "sinks": [], **extra}


def record(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    base = incident.new_record("INC-1", T0)
    base.update(runbook="RB-03", env="prod", events=list(events) or [_event(0)])
    base.update(fields)
    return base


def decide(rec: dict[str, Any], minutes: float, sinks: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = rn.decide(rec, ESCALATION, EMAIL if sinks is None else sinks, at(minutes))
    return out


def test_nothing_is_due_before_the_first_levels_time() -> None:
    out = decide(record(), 14.9)
    assert out["status"] == rn.WAIT and out["level"] == {}
    assert out["reason"] == "L2 Backend team lead is due at 2026-12-05T10:15:00Z"


def test_a_level_is_due_once_its_minutes_have_passed() -> None:
    out = decide(record(), 15)
    assert out["status"] == rn.DUE and out["level"]["level"] == "L2"
    assert out["since"] == T0 and out["minutes"] == 15


def test_a_level_already_notified_is_never_sent_twice() -> None:
    out = decide(record(_event(0), _event(15, "renotify", "", level="L2")), 29)
    assert out["status"] == rn.WAIT and "L3" in out["reason"]
    assert decide(record(_event(0), _event(15, "renotify", "", level="L2")), 30)["level"]["level"] == "L3"


def test_every_level_notified_is_the_end() -> None:
    rec = record(_event(0), _event(15, "renotify", "", level="L2"), _event(30, "renotify", "", level="L3"))
    out = decide(rec, 600)
    assert out["status"] == rn.NONE and out["reason"] == "every level of the path was notified (last L3)"


def test_a_missed_schedule_sends_only_the_highest_due_level_and_never_the_lower_after() -> None:
    assert decide(record(), 45)["level"]["level"] == "L3"
    rec = record(_event(0), _event(45, "renotify", "", level="L3"))
    assert decide(rec, 60)["status"] == rn.NONE


def test_an_acknowledged_incident_is_never_renotified() -> None:
    out = decide(record(ack={"by": "ana", "at": T0}), 60)
    assert out == {"status": rn.NONE, "reason": f"acknowledged by ana at {T0}", "level": {}, "since": "",
                   "minutes": 0}


def test_a_resolved_incident_is_never_renotified() -> None:
    assert decide(record(resolved=True), 60)["reason"] == "resolved"


def test_a_configured_pager_escalates_by_itself() -> None:
    out = decide(record(), 60, sinks=[*EMAIL, {"kind": "pagerduty", "name": "pd"}])
    assert out["status"] == rn.NONE and "pager is configured (pd)" in out["reason"]


def test_an_incident_that_never_needed_a_human_is_not_renotified() -> None:
    out = decide(record(_event(0, outcome="recovered")), 60)
    assert out["status"] == rn.NONE and out["reason"].startswith("not escalated")


def test_the_alert_still_firing_after_a_recovery_starts_the_clock() -> None:
    rec = record(_event(0, outcome="recovered"), _event(5, "still_firing", "recovered"))
    assert decide(rec, 19)["status"] == rn.WAIT
    assert decide(rec, 20)["level"]["level"] == "L2"


def test_an_incident_back_after_its_resolution_starts_a_new_episode() -> None:
    rec = record(_event(0), _event(15, "renotify", "", level="L2"), _event(20, "resolved", "recovered"),
                 _event(100))
    assert decide(rec, 114)["status"] == rn.WAIT
    out = decide(rec, 115)
    assert out["level"]["level"] == "L2" and out["since"] == rn.time_text(at(100))


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"runbook": ""}, "names no runbook"),
        ({"runbook": "RB-99"}, "no escalation path for runbook RB-99"),
        ({"resolved": "no"}, "resolved flag"),
        ({"ack": "yes"}, "ack is neither"),
        ({"events": "x"}, "events are not a list"),
        ({"events": ["x"]}, "not one"),
        ({"events": [{"event": "documented", "outcome": "escalate", "at": "yesterday"}]}, "ISO 8601"),
        ({"events": [{"event": "documented", "outcome": "escalate", "at": "2026-13-45T10:00:00Z"}]},
         "not a valid time"),
        ({"events": [_event(0), _event(15, "renotify", "", level="L9")]}, "level 'L9', not on the path"),
    ],
)
def test_a_record_it_cannot_trust_notifies_nobody_and_says_why(fields: dict[str, Any], why: str) -> None:
    out = decide(record(**fields), 60)
    assert out["status"] == rn.INVALID and out["level"] == {}
    assert why in out["reason"] and out["reason"].startswith("not re-notified: ")


def test_something_that_is_not_a_record_notifies_nobody() -> None:
    assert rn.decide(["x"], ESCALATION, EMAIL, at(60))["status"] == rn.INVALID


@pytest.mark.parametrize(
    "path",
    [
        [],
        [{"level": "L2", "who": "x", "when": "w"}],
        [{"level": "L2", "who": "x", "when": "w", "after_minutes": "15"}],
        [{"level": "L2 {{ x }}", "who": "x", "when": "w", "after_minutes": 15}],
        [{"level": "L2", "who": "x", "after_minutes": 30}, {"level": "L3", "who": "y", "after_minutes": 15}],
        [{"level": "L2", "who": None, "after_minutes": 15}],
    ],
)
def test_an_escalation_path_it_cannot_trust_notifies_nobody(path: list[Any]) -> None:
    out = rn.decide(record(), {"RB-03": path}, EMAIL, at(60))
    assert out["status"] == rn.INVALID


@pytest.mark.parametrize("now", ["2026-12-05 10:30", datetime.datetime(2026, 12, 5, 10, 30), 5])
def test_a_now_without_its_zone_notifies_nobody(now: Any) -> None:
    assert rn.decide(record(), ESCALATION, EMAIL, now)["status"] == rn.INVALID


def test_sinks_that_are_not_a_list_notify_nobody() -> None:
    assert decide(record(), 60, sinks={"kind": "email"})["status"] == rn.INVALID


def test_now_as_text_with_an_offset_is_the_same_instant() -> None:
    assert rn.decide(record(), ESCALATION, EMAIL, "2026-12-05T11:15:00+01:00")["level"]["level"] == "L2"


def test_the_message_names_the_level_who_since_when_and_how_to_ack() -> None:
    rec = record()
    out = decide(rec, 15)
    msg = rn.render(rec, out, "prod", ESCALATION)
    assert msg["subject"] == "[pflow-ops] prod RB-03 escalate: unacknowledged, L2 Backend team lead (INC-1)"
    assert "Re-notification: escalation level L2, Backend team lead (due after 15 minutes)." in msg["chat"]
    assert f"Unacknowledged since {T0} (15 minutes)" in msg["chat"]
    assert "pflow-ops incident ack INC-1" in msg["ticket"]
    assert "  L3 Platform architect: beyond 30 minutes (after 30 minutes)" in msg["chat"]
    assert msg["outcome"] == "escalate" and msg["changes"] == []


def test_the_journal_appends_a_renotify_event_naming_the_level() -> None:
    rec = record()
    out = decide(rec, 15)
    sinks = [{"sink": "email", "kind": "email", "status": "ok", "handle": {"messages": 2}, "detail": "sent"}]
    journaled = rn.journal(rec, out, sinks, "2026-12-05T10:15:07Z", run_id="renotify-1")
    last = journaled["events"][-1]
    assert (last["event"], last["level"], last["run_id"]) == ("renotify", "L2", "renotify-1")
    assert journaled["runs"] == [] and journaled["handles"]["email"] == {"messages": 2}
    assert decide(journaled, 16)["status"] == rn.WAIT


def test_only_open_records_of_the_environment_are_listed() -> None:
    records = [record(), record(env="staging"), record(ack={"by": "a", "at": T0}), record(resolved=True),
               {"key": "old"}, "junk"]
    assert rn.open_records(records, "prod") == [records[0]]
    assert rn.unplaced(records) == ["old"]
