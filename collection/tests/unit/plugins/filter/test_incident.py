"""The incident filters: what the incident role calls, with the values Ansible hands them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pivotal.flow_ops.plugins.filter import incident

FILTERS = incident.FilterModule().filters()


def test_the_role_finds_every_filter() -> None:
    assert set(FILTERS) == {
        "incident_sinks",
        "incident_messages",
        "incident_sink_action",
        "incident_email_thread",
        "incident_ticket_id",
        "incident_loop_event",
    }


def test_bad_sink_configs_fail_the_task_with_one_line() -> None:
    assert FILTERS["incident_sinks"]([{"kind": "ticket"}]) == [{"kind": "ticket"}]
    with pytest.raises(AnsibleFilterError, match="kind"):
        FILTERS["incident_sinks"]([{"kind": "fax"}])


def test_messages_carry_the_outcome_and_runbook() -> None:
    out = FILTERS["incident_messages"](
        [{"runbook": "RB-01", "outcome": "escalate", "service": "backend", "host": "h"}],
        "documented",
        "k",
        "r1",
        "prod",
        "",
        "",
        {"RB-01": [{"level": "L1", "who": "On-call", "when": "now"}]},
        None,
    )
    assert out["outcome"] == "escalate" and out["runbook"] == "RB-01"
    assert "L1 On-call: now" in out["chat"]


def test_the_sink_action_reads_its_handle_from_the_record() -> None:
    record = {"handles": {"tracker": {"id": "T-1"}}, "ack": None, "resolved": False}
    sink = {"kind": "ticket", "name": "tracker"}
    assert FILTERS["incident_sink_action"](sink, record, "documented", "escalate") == "update"
    assert (
        FILTERS["incident_sink_action"]({"kind": "ticket"}, record, "documented", "escalate")
        == "create"
    )
    assert FILTERS["incident_sink_action"](sink, None, "resolved", "recovered") == "skip"
    with pytest.raises(AnsibleFilterError):
        FILTERS["incident_sink_action"]({"kind": "fax"}, record, "documented", "escalate")


def test_ticket_id_and_loop_event() -> None:
    assert FILTERS["incident_ticket_id"]({"id": 7}) == "7"
    with pytest.raises(AnsibleFilterError, match="ticket id"):
        FILTERS["incident_ticket_id"]({"id": "../x"})
    assert FILTERS["incident_loop_event"]("firing") == "still_firing"
    assert FILTERS["incident_email_thread"]("k")["root"].endswith("@pflow-ops.invalid>")
