"""compose_service's pure logic: container state, service summary and error wording."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins import load_plugin

cs = load_plugin("compose_service")


def _attrs(number: int = 1, **state: Any) -> dict[str, Any]:
    base = {"Status": "running", "Running": True, "StartedAt": "2026-01-01T10:00:00.123456789Z"}
    return {
        "Id": f"{number:064x}",
        "Name": f"/pivotal-flow-backend-{number}",
        "RestartCount": 0,
        "State": {**base, **state},
        "Config": {"Labels": {cs.LABEL_NUMBER: str(number)}},
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({}, "running"),
        ({"Running": False, "Status": "exited", "ExitCode": 3}, "exited (exit code 3)"),
        ({"Running": False, "Status": "exited", "ExitCode": 137, "OOMKilled": True}, "oom_killed"),
        ({"Restarting": True, "Status": "restarting"}, "restarting"),
        ({"Paused": True, "Status": "paused"}, "paused"),
        ({"Running": False, "Status": "created"}, "created"),
    ],
)
def test_instance_state_names_each_container_state(state: dict[str, Any], expected: str) -> None:
    assert cs.instance_state({**_attrs()["State"], **state}) == expected


def test_instance_reads_health_restart_count_and_number() -> None:
    attrs = _attrs(2, Health={"Status": "unhealthy"})
    attrs["RestartCount"] = 4
    inst = cs.instance(attrs)
    assert inst["number"] == 2 and inst["name"] == "pivotal-flow-backend-2"
    assert inst["health"] == "unhealthy" and inst["restart_count"] == 4
    assert inst["running"] is True and len(inst["id"]) == 12


def test_summary_is_running_only_when_every_replica_runs() -> None:
    up = cs.instance(_attrs(1))
    down = cs.instance(_attrs(2, Running=False, Status="exited", ExitCode=1))
    assert cs.summary([up])["running"] is True
    mixed = cs.summary([up, down])
    assert mixed["running"] is False and mixed["state"] == "exited (exit code 1)"
    assert mixed["pid"] == f"{up['id']}@2026-01-01T10:00:00", "the pid follows replica 1's run"
    assert cs.summary([]) == {"running": False, "state": "not_found", "pid": None}
    assert cs.summary([down])["pid"] is None


def test_describe_lists_every_replica() -> None:
    one = cs.instance(_attrs(1, Health={"Status": "healthy"}))
    two = cs.instance(_attrs(2, Running=False, Status="exited", ExitCode=137, OOMKilled=True))
    text = cs.describe("pivotal-flow", "backend", [one, two])
    assert text.startswith("compose service 'backend' (2 replica(s))")
    assert "pivotal-flow-backend-1 running, healthy" in text
    assert "pivotal-flow-backend-2 oom_killed" in text
    assert "no container" in cs.describe("pivotal-flow", "backend", [])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileNotFoundError(2, "No such file or directory"), "is not running (the socket does not"),
        (ConnectionRefusedError(111, "Connection refused"), "is not running (connection refused)"),
        (PermissionError(13, "Permission denied"), "permission denied"),
        (TimeoutError("timed out"), "did not answer in time"),
        (ValueError("weird\nmultiline"), "cannot be reached: ValueError: weird multiline"),
    ],
)
def test_describe_error_is_one_actionable_line(error: BaseException, expected: str) -> None:
    text = cs.describe_error(error, "unix:///run/docker.sock")
    assert expected in text and "\n" not in text
    assert "unix:///run/docker.sock" in text
