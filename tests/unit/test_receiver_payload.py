"""Alertmanager webhook payload (version 4) validation: what is refused, with which status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.loadtest import alert, notification
from pflow_ops.receiver import payload


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_a_real_alertmanager_payload_parses() -> None:
    note = payload.parse(body(notification(alert("BackendServiceDown", "0123456789abcdef"))))
    assert note.status == "firing"
    assert note.receiver == "pflow-ops"
    [a] = note.alerts
    assert (a.alertname, a.fingerprint, a.status) == (
        "BackendServiceDown",
        "0123456789abcdef",
        "firing",
    )
    assert a.to_record()["labels"] == {"alertname": "BackendServiceDown"}


def test_labels_with_tricks_are_accepted_as_data() -> None:
    nasty = {"job": "$(rm -rf /)", "path": "../../etc/passwd", "tmpl": "{{ 7*7 }}", "nl": "a\nb"}
    note = payload.parse(body(notification(alert("BackendServiceDown", "ab", labels=nasty))))
    assert note.alerts[0].labels["job"] == "$(rm -rf /)"


def _with(**changes: Any) -> dict[str, Any]:
    data = notification(alert("BackendServiceDown", "ab"))
    data.update(changes)
    return data


def _alert_with(**changes: Any) -> dict[str, Any]:
    data = notification(alert("BackendServiceDown", "ab"))
    data["alerts"][0].update(changes)
    return data


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"\xff\xfe{not utf-8", 400, "bad_encoding"),
        (b"{", 400, "bad_json"),
        (b"", 400, "bad_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "bad_json"),
        (b'{"version": "4", "n": ' + b"9" * 10_000 + b"}", 400, "bad_json"),
        (body([1, 2]), 400, "bad_schema"),
        (body({"status": "firing", "alerts": []}), 400, "bad_schema"),
        (body(_with(version="3")), 422, "bad_version"),
        (body(_with(version=4)), 422, "bad_version"),
        (body(_with(status="exploded")), 400, "bad_schema"),
        (body(_with(alerts={"a": 1})), 400, "bad_schema"),
        (body(_with(alerts=["x"])), 400, "bad_schema"),
        (body(_with(commonLabels={"a": 1})), 400, "bad_schema"),
        (body(_alert_with(status="pending")), 400, "bad_schema"),
        (body(_alert_with(labels={"alertname": ["BackendServiceDown"]})), 400, "bad_schema"),
        (body(_alert_with(labels="alertname=BackendServiceDown")), 400, "bad_schema"),
        (body(_alert_with(fingerprint=123)), 400, "bad_schema"),
        (body(_alert_with(annotations={"summary": None})), 400, "bad_schema"),
    ],
)
def test_refused_payloads(raw: bytes, status: int, reason: str) -> None:
    with pytest.raises(payload.PayloadError) as info:
        payload.parse(raw)
    assert (info.value.status, info.value.reason) == (status, reason)


def test_empty_alert_list_is_a_valid_notification() -> None:
    assert payload.parse(body(_with(alerts=[]))).alerts == ()


# Alertmanager 0.27's webhook body, as it sends it (notify/webhook: max_alerts: 1 left 3 out).
ALERTMANAGER_BODY = b"""{"receiver":"pflow-ops","status":"firing","alerts":[{"status":"firing",
"labels":{"alertname":"BackendServiceDown","env":"local","severity":"critical"},
"annotations":{"summary":"backend down"},"startsAt":"2026-12-05T07:00:00.000Z",
"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=up",
"fingerprint":"5d3fb1b3a43e56c2"}],"groupLabels":{"alertname":"BackendServiceDown"},
"commonLabels":{"alertname":"BackendServiceDown","env":"local","severity":"critical"},
"commonAnnotations":{"summary":"backend down"},"externalURL":"http://alertmanager:9093",
"version":"4","groupKey":"{}:{alertname=\\"BackendServiceDown\\"}","truncatedAlerts":3}"""


def test_truncated_alerts_is_read_from_a_real_alertmanager_body() -> None:
    note = payload.parse(ALERTMANAGER_BODY)
    assert note.truncated_alerts == 3
    assert len(note.alerts) == 1


def test_truncated_alerts_is_zero_when_absent_or_zero() -> None:
    absent = _with()
    del absent["truncatedAlerts"]
    assert payload.parse(body(absent)).truncated_alerts == 0
    assert payload.parse(body(_with(truncatedAlerts=0))).truncated_alerts == 0
    big = 2**63  # Go's uint64: whatever Alertmanager counts, it is a number, not an error
    assert payload.parse(body(_with(truncatedAlerts=big))).truncated_alerts == big


@pytest.mark.parametrize("value", [-1, 1.5, 2.0, "3", True, None, [3], {"n": 3}])
def test_truncated_alerts_must_be_a_non_negative_integer(value: Any) -> None:
    with pytest.raises(payload.PayloadError) as info:
        payload.parse(body(_with(truncatedAlerts=value)))
    assert (info.value.status, info.value.reason) == (400, "bad_schema")
    assert "truncatedAlerts" in str(info.value)
