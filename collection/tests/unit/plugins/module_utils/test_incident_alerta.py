"""The Alerta incident sink's decisions, a test per branch: which calls a document makes, the
request bodies, the answer checks (success, retry), the handle, and the failure line."""

from __future__ import annotations

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_alerta as alerta

ALERT = "1b25c3a2-6cf0-48c7-8943-f0e28f82561a"
MESSAGES = {
    "runbook": "RB-03",
    "severity": "critical",
    "ticket_title": "[pflow-ops] prod RB-03 escalate: redis (INC-42)",
    "ticket": "Outcome: escalate\nEscalation path: L2",
    "subject": "[pflow-ops] prod RB-03 recovered: redis (INC-42)",
}


def test_alerta_is_a_ticket_sink_that_never_resolves_on_escalate() -> None:
    assert incident.FAMILY["alerta"] == "ticket"
    assert incident.sink_action("alerta", None, "documented", "escalate") == "create"
    assert incident.sink_action("alerta", {"id": ALERT}, "documented", "escalate") == "update"
    assert incident.sink_action("alerta", {"id": ALERT}, "resolved", "recovered") == "resolve"


@pytest.mark.parametrize(
    ("action", "handle", "check_mode", "expected"),
    [
        ("create", {}, False, ["create", "note"]),
        ("update", {"id": ALERT}, False, ["note"]),
        ("resolve", {"id": ALERT}, False, ["note", "close"]),
        # The create failed last time (no id): create again, never note on nothing.
        ("update", {}, False, ["create", "note"]),
        ("resolve", None, False, ["create", "note", "close"]),
        ("skip", {"id": ALERT}, False, []),
        ("trigger", {"id": ALERT}, False, []),  # a pager action: not Alerta's
        ("create", {}, True, []),  # a dry run sends nothing
    ],
)
def test_calls(action: str, handle: object, check_mode: bool, expected: list[str]) -> None:
    assert alerta.calls(action, handle, check_mode) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("critical", "critical"),
        ("error", "major"),
        ("High", "major"),
        ("medium", "warning"),
        ("info", "informational"),
        ("", "major"),
        ("nonsense", "major"),
    ],
)
def test_severity(word: str, expected: str) -> None:
    assert alerta.severity(word) == expected


def test_the_alert_is_keyed_by_the_incident_and_carries_the_run() -> None:
    results = [{"service": "redis"}, {"service": "redis"}, {"service": "backend"}, "junk"]
    body = alerta.alert_body(
        "INC-42", MESSAGES, results, {"environment": "Staging"}, "run-1", "prod"
    )
    assert body["resource"] == "INC-42" and body["event"] == "RB-03"
    assert body["environment"] == "Staging" and body["severity"] == "critical"
    assert body["service"] == ["redis", "backend"]
    assert body["text"] == MESSAGES["ticket_title"]
    assert body["attributes"] == {"incidentKey": "INC-42", "runId": "run-1", "pflowEnv": "prod"}
    assert "env:prod" in body["tags"]


def test_the_alert_defaults_and_a_given_severity() -> None:
    body = alerta.alert_body("INC-1", {}, None, None, sev="medium")
    assert body["environment"] == "Production" and body["event"] == "pflow-ops"
    assert body["service"] == ["pflow-ops"] and body["severity"] == "warning"
    assert body["attributes"]["pflowEnv"] == "default"


def test_a_note_names_the_run_and_a_long_text_is_cut() -> None:
    note = alerta.note_body(MESSAGES, "run-2", "documented", "escalate")
    assert note["text"].startswith("run run-2, documented, escalate\nOutcome: escalate")
    long = alerta.note_body({"ticket": "x" * 10000})["text"]
    assert len(long) == alerta.TEXT_MAX and long.endswith("...(truncated)")
    assert alerta.note_body(None)["text"] == "run -, -, -\n"


def test_the_close_body() -> None:
    assert alerta.close_body(MESSAGES) == {"status": "closed", "text": MESSAGES["subject"]}
    assert alerta.close_body(None) == {"status": "closed", "text": "resolved"}


@pytest.mark.parametrize(
    "result",
    [
        {"status": 201, "json": {"status": "error", "id": ALERT}},
        {"status": 201, "json": {"status": "ok"}},
        {"status": 201, "json": {"status": "ok", "id": "../../admin"}},
        {"status": 201, "json": {"status": "ok", "id": 7}},
        {"status": 201, "json": "ok"},
        None,
    ],
)
def test_an_unusable_create_answer_is_refused(result: object) -> None:
    with pytest.raises(alerta.AlertaError):
        alerta.alert_id(result)


def test_the_alert_id_of_a_create() -> None:
    assert alerta.alert_id({"status": 201, "json": {"status": "ok", "id": ALERT}}) == ALERT


@pytest.mark.parametrize(
    ("result", "ok", "done"),
    [
        ({"status": 201, "json": {"status": "ok"}}, True, True),
        ({"status": 200, "json": {"status": "ok"}}, True, True),
        ({"status": 200, "json": {"status": "error"}}, False, True),  # a refusal in a 2xx
        ({"status": 401, "json": {"status": "error"}}, False, True),  # a wrong key: no retry
        ({"status": 404, "json": {}}, False, True),
        ({"status": 503, "json": {}}, False, False),  # retried
        ({"status": -1, "msg": "refused"}, False, False),  # connection refused: retried
        (None, False, False),
    ],
)
def test_answers(result: object, ok: bool, done: bool) -> None:
    assert alerta.response_ok(result) is ok
    assert alerta.response_done(result) is done


@pytest.mark.parametrize(
    ("old", "created", "notes", "closed", "expected"),
    [
        ({}, ALERT, 1, False, {"id": ALERT, "notes": 1}),
        ({"id": ALERT, "notes": 2}, "", 1, False, {"id": ALERT, "notes": 3}),
        ({"id": ALERT, "notes": "2"}, "", 1, True, {"id": ALERT, "notes": 3, "closed": True}),
        (
            {"id": ALERT, "notes": 3, "closed": True},
            "",
            1,
            False,
            {"id": ALERT, "notes": 4, "closed": True},
        ),
        ({}, "", 0, False, {}),  # nothing opened: nothing to keep
        (None, ALERT, 0, False, {"id": ALERT, "notes": 0}),  # opened, the note failed
    ],
)
def test_handle(old: object, created: str, notes: int, closed: bool, expected: object) -> None:
    assert alerta.handle(old, created, notes, closed) == expected


def test_sent() -> None:
    assert alerta.sent(["create", "note"], ALERT) == {
        "status": "ok",
        "detail": "create, note: alert " + ALERT,
    }
    assert alerta.sent(["note"]) == {"status": "ok", "detail": "note"}
    assert alerta.sent([], ALERT)["status"] == "skipped"


def test_the_failure_line_masks_the_key_alerta_echoes() -> None:
    result = {"status": 401, "json": {"message": "API key parameter 'k3y-wrong-123' is invalid"}}
    line = alerta.failure("alerta", "Open the incident's alert in Alerta", result, "k3y-wrong-123")
    assert "k3y-wrong-123" not in line
    assert line.startswith("alerta: Open the incident's alert in Alerta failed (HTTP 401)")
