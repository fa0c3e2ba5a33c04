"""compose_service's pure logic: container state, service summary and error wording."""

from __future__ import annotations

import json
import struct
import sys
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


# --- community.docker's API client ------------------------------------------------------------


def test_module_is_built_on_community_docker_without_the_docker_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # any `import docker` now raises
    module = load_plugin("compose_service")
    from ansible_collections.community.docker.plugins.module_utils.common_api import (
        AnsibleDockerClient,
    )

    assert issubclass(module.ComposeDockerClient, AnsibleDockerClient)
    assert not {"docker_host", "timeout", "tls"} & set(module.ARGUMENT_SPEC), (
        "connection options come from community.docker's common arguments"
    )


def test_client_failures_raise_instead_of_failing_the_task() -> None:
    client = object.__new__(cs.ComposeDockerClient)
    with pytest.raises(cs.EngineUnreachable, match="Error connecting") as caught:
        client.fail("Error connecting: boom", exception="tb")
    assert caught.value.kwargs == {"exception": "tb"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Error connecting: Error while fetching server API version: ('Connection aborted.', "
            "FileNotFoundError(2, 'No such file or directory'))",
            "is not running (the socket does not exist)",
        ),
        (
            "Error connecting: Error while fetching server API version: ('Connection aborted.', "
            "PermissionError(13, 'Permission denied'))",
            "permission denied on the Docker engine at unix:///run/docker.sock socket",
        ),
        (
            "TLS config error: Path to a certificate and key files must be provided",
            "cannot be reached: TLS config error: Path to a certificate",
        ),
    ],
)
def test_client_connect_errors_become_one_line(message: str, expected: str) -> None:
    text = cs.describe_error(cs.EngineUnreachable(message), "unix:///run/docker.sock")
    assert expected in text and "EngineUnreachable" not in text and "\n" not in text


class FakeEngine:
    """The few API calls compose_service makes, answered from memory (pure unit test)."""

    timeout = 60

    def __init__(self, containers: list[dict[str, Any]], after_restart: dict[str, Any]) -> None:
        self.containers = {c["Id"]: c for c in containers}
        self.after_restart = after_restart
        self.calls: list[tuple[str, Any]] = []

    def get_json(self, pathfmt: str, *args: str, params: Any = None) -> Any:
        self.calls.append((pathfmt.format(*args), params))
        if pathfmt == "/containers/json":
            return [{"Id": i, "Labels": c["Config"]["Labels"]} for i, c in self.containers.items()]
        if args[0] not in self.containers:
            raise cs.NotFound("gone")
        return self.containers[args[0]]

    def post_call(self, pathfmt: str, *args: str, params: Any = None, timeout: Any = None) -> None:
        self.calls.append((pathfmt.format(*args), {"params": params, "timeout": timeout}))
        if args[0] not in self.containers:
            raise cs.NotFound("gone")
        state = {**self.containers[args[0]]["State"], **self.after_restart}
        self.containers[args[0]] = {**self.containers[args[0]], "State": state}


def _params(**extra: Any) -> dict[str, Any]:
    return {"stop_timeout": 2, "health_timeout": 5, "stable_seconds": 0, **extra}


def test_containers_are_listed_by_compose_labels_without_one_offs() -> None:
    oneoff = _attrs(3)
    oneoff["Config"]["Labels"][cs.LABEL_ONEOFF] = "True"
    engine = FakeEngine([_attrs(2), _attrs(1), oneoff], {})
    found = cs.inspect_all(engine, cs.list_containers(engine, "pivotal-flow", "backend"))
    assert [cs.name_of(a) for a in found] == ["pivotal-flow-backend-1", "pivotal-flow-backend-2"]
    path, params = engine.calls[0]
    assert path == "/containers/json" and params["all"] == 1
    assert json.loads(params["filters"]) == {
        "label": [f"{cs.LABEL_PROJECT}=pivotal-flow", f"{cs.LABEL_SERVICE}=backend"]
    }


def test_restart_goes_through_the_restart_endpoint_with_the_stop_timeout() -> None:
    engine = FakeEngine([_attrs(1)], {"StartedAt": "2026-01-01T11:00:00Z"})
    step = cs.restart_one(engine, _attrs(1), _params(), check_mode=False)
    restart = next(c for c in engine.calls if c[0].endswith("/restart"))
    assert restart[1] == {"params": {"t": 2}, "timeout": 62}
    assert step["ok"] and step["started_after"] == "2026-01-01T11:00:00Z"
    assert "running for" in step["detail"] and "no healthcheck" in step["detail"]


def test_rolling_restart_stops_at_the_first_replica_that_does_not_come_back() -> None:
    oom = {"Running": False, "Status": "exited", "ExitCode": 137, "OOMKilled": True}
    engine = FakeEngine([_attrs(1), _attrs(2)], oom)
    result = cs.rolling_restart(engine, [_attrs(1), _attrs(2)], _params(), check_mode=False)
    assert result["ok"] is False and result["changed"] is True
    assert [s["name"] for s in result["restarted"]] == ["pivotal-flow-backend-1"]
    assert result["msg"] == "pivotal-flow-backend-1 stopped again: oom_killed"
    assert [c for c in engine.calls if c[0].endswith("/restart")] == [
        (f"/containers/{1:064x}/restart", {"params": {"t": 2}, "timeout": 62})
    ], "replica 2 is left untouched"
    assert [i["state"] for i in result["instances_after"]] == ["oom_killed", "running"]


def test_rolling_restart_in_check_mode_only_says_what_it_would_do() -> None:
    engine = FakeEngine([_attrs(1), _attrs(2)], {})
    result = cs.rolling_restart(engine, [_attrs(1), _attrs(2)], _params(), check_mode=True)
    assert result["changed"] is True and result["ok"] is True
    assert [s["detail"] for s in result["restarted"]] == [
        "would restart pivotal-flow-backend-1 (running)",
        "would restart pivotal-flow-backend-2 (running)",
    ]
    assert engine.calls == [] and result["instances_after"] == []


def test_a_container_gone_before_its_restart_is_one_line() -> None:
    engine = FakeEngine([], {})
    result = cs.rolling_restart(engine, [_attrs(1)], _params(), check_mode=False)
    assert result["ok"] is False and result["changed"] is False
    assert result["msg"] == "container pivotal-flow-backend-1 no longer exists (recreate it)"


def _frame(stream: int, text: str) -> bytes:
    data = text.encode()
    return struct.pack(">BxxxL", stream, len(data)) + data


class FakeResponse:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def raise_for_status(self) -> None:
        return None


def _log_client(bodies: dict[str, bytes]) -> Any:
    """A real ComposeDockerClient (community.docker's demultiplexer) with a canned transport."""
    client = object.__new__(cs.ComposeDockerClient)
    client.requests = []

    def _get(url: str, params: Any = None) -> FakeResponse:
        client.requests.append((url, params))
        return FakeResponse(bodies[url.split("/")[2]])

    client._url = lambda pathfmt, *args: pathfmt.format(*args)
    client._get = _get
    return client


def test_log_tail_is_demultiplexed_and_prefixed_per_replica() -> None:
    one, two = _attrs(1), _attrs(2)
    two["Config"]["Tty"] = True  # a TTY container's log is a raw stream
    client = _log_client(
        {
            one["Id"]: _frame(1, "listening on 3000\n") + _frame(2, "warn: slow query\n"),
            two["Id"]: b"raw tty line\n",
        }
    )
    lines = cs.logs(client, [one, two], 20)
    assert lines == [
        "pivotal-flow-backend-1 | listening on 3000",
        "pivotal-flow-backend-1 | warn: slow query",
        "pivotal-flow-backend-2 | raw tty line",
    ]
    assert client.requests[0][1] == {
        "stdout": 1, "stderr": 1, "timestamps": 0, "follow": 0, "tail": "20"
    }  # fmt: skip
    assert cs.logs(client, [one], 0) == []
    assert cs.logs(client, [one], 5) == ["listening on 3000", "warn: slow query"], "no prefix"


def test_a_container_removed_while_starting_stops_the_roll() -> None:
    class Vanishing(FakeEngine):
        def post_call(self, pathfmt: str, *args: str, **kwargs: Any) -> None:
            super().post_call(pathfmt, *args, **kwargs)
            del self.containers[args[0]]

    engine = Vanishing([_attrs(1), _attrs(2)], {})
    result = cs.rolling_restart(engine, [_attrs(1), _attrs(2)], _params(), check_mode=False)
    assert result["ok"] is False and result["changed"] is True
    assert result["msg"] == "container pivotal-flow-backend-1 was removed while starting"
    assert [i["name"] for i in result["instances_after"]] == ["pivotal-flow-backend-2"]
