"""The AWX maintenance schedules (awx/vars/main.yml) are what the awx.awx.schedule_rrule lookup
makes of their arguments, valid rrules, and mean the catalogue cron.

AWX validates rrules only on its server; these are its rules (awx/api/serializers, schedules:
DTSTART with a timezone, one DTSTART, an RRULE with INTERVAL, no SECONDLY, no BYDAY with a
numeric prefix, COUNT <= 999, not both COUNT and UNTIL, no EXDATE/RDATE, dateutil parses it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.awx.awx.plugins.lookup.schedule_rrule import LookupModule
from croniter import croniter_range
from dateutil.rrule import rrulestr

ROOT = Path(__file__).resolve().parents[2]
SCHEDULES: dict[str, dict[str, Any]] = yaml.safe_load(
    (ROOT / "awx" / "vars" / "main.yml").read_text()
)["pflow_awx_schedules"]


def _schedules() -> dict[str, str]:
    return {job: schedule["rrule"] for job, schedule in SCHEDULES.items()}


def _maintenance() -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = yaml.safe_load((ROOT / "catalogue.yml").read_text())["maintenance"]
    return jobs


def awx_rrule_errors(value: str) -> list[str]:
    """AWX's SchedulePreviewSerializer.validate_rrule, as a list of its error messages."""
    errors: list[str] = []
    dtstarts = re.findall(r".*?(DTSTART(;[^:]+)?\:[0-9]+T[0-9]+Z?)", value)
    naive = re.findall(r".*?(DTSTART:[0-9]+T[0-9]+) ", value)
    rules = re.findall(r".*?(RULE\:[^\s]*)", value)
    if not dtstarts:
        errors.append("Valid DTSTART required in rrule")
    if naive:
        errors.append("DTSTART cannot be a naive datetime")
    if len(dtstarts) > 1:
        errors.append("Multiple DTSTART is not supported")
    if "rrule:" not in value.lower():
        errors.append("One or more rule required in rrule")
    if "exdate:" in value.lower() or "rdate:" in value.lower():
        errors.append("EXDATE/RDATE not allowed in rrule")
    for rule in rules:
        if "interval" not in rule.lower():
            errors.append(f"INTERVAL required in rrule: {rule}")
        elif "secondly" in rule.lower():
            errors.append(f"SECONDLY is not supported: {rule}")
        if re.match(r".*?BYDAY[\:\=][0-9]+[a-zA-Z]{2}", rule):
            errors.append(f"BYDAY with numeric prefix not supported: {rule}")
        if "COUNT" in rule and "UNTIL" in rule:
            errors.append(f"RRULE may not contain both COUNT and UNTIL: {rule}")
        count = re.match(r".*?COUNT\=([0-9]+)", rule)
        if count and int(count.group(1)) > 999:
            errors.append(f"COUNT > 999 is unsupported: {rule}")
    try:
        rrulestr(value, forceset=True)
    except (ValueError, TypeError) as exc:
        errors.append(f"rrule parsing failed validation: {exc}")
    return errors


def cron_times(expr: str, start: datetime, end: datetime) -> list[datetime]:
    """Every minute in [start, end) a 5-field cron expression fires (UTC), read by croniter
    rather than a parser of our own (issue 17)."""
    return [t for t in croniter_range(start, end, expr) if t < end]


def test_every_maintenance_job_has_exactly_one_schedule() -> None:
    assert set(_schedules()) == {job["id"] for job in _maintenance()}


@pytest.mark.parametrize("job", _maintenance(), ids=lambda j: j["id"])
def test_rrule_is_what_the_awx_schedule_rrule_lookup_returns(job: dict[str, Any]) -> None:
    """The installed awx.awx collection's own lookup code, offline (pytz and dateutil only).
    In a playbook it cannot run on ansible-core 2.19: it returns a string, not a list."""
    arguments = dict(SCHEDULES[job["id"]]["lookup"])
    frequency = arguments.pop("frequency")
    assert arguments["timezone"] == "UTC"  # the catalogue's crons are UTC
    assert LookupModule().run([frequency], None, **arguments) == _schedules()[job["id"]]


@pytest.mark.parametrize("job", _maintenance(), ids=lambda j: j["id"])
def test_schedule_passes_awx_rrule_validation(job: dict[str, Any]) -> None:
    rule = _schedules()[job["id"]]
    assert awx_rrule_errors(rule) == []
    assert "DTSTART;TZID=" in rule or re.search(r"DTSTART:[0-9]+T[0-9]+Z", rule)
    parsed = rrulestr(rule)
    assert parsed[0].tzinfo is not None  # type: ignore[index]


@pytest.mark.parametrize("job", _maintenance(), ids=lambda j: j["id"])
def test_schedule_fires_exactly_when_the_catalogue_cron_does(job: dict[str, Any]) -> None:
    rule = rrulestr(_schedules()[job["id"]])
    # Five weeks from the first Monday after the schedules start, in UTC as the catalogue says.
    start = datetime(2026, 3, 2, tzinfo=UTC)
    end = start + timedelta(weeks=5)
    expected = cron_times(job["schedule"], start, end)
    actual = rule.between(start, end, inc=True)  # type: ignore[union-attr]
    assert expected, f"cron {job['schedule']} never fires in the window"
    assert [t.astimezone(UTC) for t in actual] == expected


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("DTSTART:20260104T030000 RRULE:FREQ=WEEKLY;INTERVAL=1", "naive"),
        ("RRULE:FREQ=DAILY;INTERVAL=1", "Valid DTSTART"),
        ("DTSTART:20260104T030000Z RRULE:FREQ=WEEKLY;BYDAY=SU", "INTERVAL required"),
        ("DTSTART:20260104T030000Z RRULE:FREQ=SECONDLY;INTERVAL=5", "SECONDLY"),
        ("DTSTART:20260104T030000Z RRULE:FREQ=DAILY;INTERVAL=1;COUNT=1000", "COUNT > 999"),
        ("DTSTART:20260104T030000Z RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=1SU", "numeric prefix"),
        (
            "DTSTART:20260104T030000Z RRULE:FREQ=DAILY;INTERVAL=1;COUNT=2;UNTIL=20270101T000000Z",
            "COUNT and UNTIL",
        ),
        ("DTSTART:20260104T030000Z RRULE:FREQ=REGULARLY;INTERVAL=1", "parsing failed"),
    ],
)
# dateutil deprecates COUNT with UNTIL; AWX rejects it before parsing, and so do we.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_validator_rejects_what_awx_rejects(rule: str, error: str) -> None:
    assert any(error in message for message in awx_rrule_errors(rule))


def test_the_cron_reader_knows_sunday_and_steps() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)  # a Sunday
    assert cron_times("0 3 * * 0", start, start + timedelta(days=7)) == [start.replace(hour=3)]
    assert cron_times("0 3 * * 7", start, start + timedelta(days=7)) == [start.replace(hour=3)]
    assert len(cron_times("*/15 4 * * *", start, start + timedelta(days=1))) == 4
