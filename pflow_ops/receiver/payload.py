"""The Alertmanager webhook payload, version 4, checked strictly before anything acts on it.

A payload that is not JSON, not version 4 or not shaped like one is refused whole (the caller
answers 400 or 422). Inside a well-formed payload, an alert's labels are data: a strange
alertname or fingerprint does not refuse the payload, it is journaled and ignored by the policy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_VERSION = "4"
STATUSES = ("firing", "resolved")
# Alertmanager fingerprints are 16 hex digits; `pflow-ops alert --fingerprint` takes up to 32.
FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")


class PayloadError(ValueError):
    """The body is not an acceptable version 4 payload."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: str = ""
    ends_at: str = ""
    generator_url: str = ""
    fingerprint: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    def to_record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts_at,
            "endsAt": self.ends_at,
            "generatorURL": self.generator_url,
        }


@dataclass(frozen=True)
class Notification:
    status: str
    alerts: tuple[Alert, ...]
    group_key: str = ""
    receiver: str = ""
    # Alerts Alertmanager left out of this notification (its receiver's max_alerts): they were
    # never seen here, so the count is journaled and exposed rather than lost.
    truncated_alerts: int = 0


def _bad(message: str) -> PayloadError:
    return PayloadError(400, "bad_schema", message)


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad(f"{where} must be an object of strings")
    return dict(value)


def _opt_str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{where}.{key} must be a string")
    return value


def _alert(raw: Any, index: int) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object")
    status = raw.get("status")
    if status not in STATUSES:
        raise _bad(f"{where}.status must be firing or resolved")
    labels = _str_map(raw.get("labels"), f"{where}.labels")
    return Alert(
        status=str(status),
        labels=labels,
        annotations=_str_map(raw.get("annotations"), f"{where}.annotations"),
        starts_at=_opt_str(raw, "startsAt", where),
        ends_at=_opt_str(raw, "endsAt", where),
        generator_url=_opt_str(raw, "generatorURL", where),
        fingerprint=_opt_str(raw, "fingerprint", where),
    )


def _truncated(data: dict[str, Any]) -> int:
    """``truncatedAlerts``: a count Alertmanager always sends (0 when nothing was left out);
    older versions and other senders omit it. Anything but a non-negative integer is refused."""
    value = data.get("truncatedAlerts", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad("truncatedAlerts must be a non-negative integer")
    return value


def decode(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(400, "bad_encoding", "body is not UTF-8") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and Python's integer-digits limit; RecursionError a
        # deeply nested document. Neither may take the receiver down.
        raise PayloadError(400, "bad_json", "body is not valid JSON") from None


def parse(body: bytes) -> Notification:
    """The notification in ``body``, or PayloadError with the HTTP status to answer."""
    data = decode(body)
    if not isinstance(data, dict):
        raise _bad("payload must be a JSON object")
    if "version" not in data:
        raise _bad("payload has no version")
    if data["version"] != SUPPORTED_VERSION:
        raise PayloadError(
            422, "bad_version", f"payload version must be {SUPPORTED_VERSION!r} (Alertmanager)"
        )
    status = data.get("status")
    if status not in STATUSES:
        raise _bad("status must be firing or resolved")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise _bad("alerts must be a list")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        _str_map(data.get(key), key)
    return Notification(
        status=str(status),
        alerts=tuple(_alert(raw, i) for i, raw in enumerate(alerts)),
        group_key=_opt_str(data, "groupKey", "payload"),
        receiver=_opt_str(data, "receiver", "payload"),
        truncated_alerts=_truncated(data),
    )
