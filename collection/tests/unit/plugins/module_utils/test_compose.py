"""module_utils/compose: container state, service summary, error wording, the engine connection
(the Docker SDK with community.docker's option names) and the calls compose_service_info makes."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import compose as cs
from ansible_collections.pivotal.flow_ops.plugins.module_utils import compose_restart as cr


def attrs(number: int = 1, **state: Any) -> dict[str, Any]:
    base = {"Status": "running", "Running": True, "StartedAt": "2026-01-01T10:00:00.123456789Z"}
    return {
        "Id": f"{number:064x}",
        "Name": f"/pivotal-flow-backend-{number}",
        "RestartCount": 0,
        "State": {**base, **state},
        "Config": {"Labels": {cs.LABEL_NUMBER: str(number)}},
    }


class FakeEngine:
    """The Docker SDK APIClient calls the collection makes, answered from memory."""

    timeout = 60

    def __init__(self, found: list[dict[str, Any]], after_restart: dict[str, Any] | None = None):
        self.by_id = {c["Id"]: c for c in found}
        self.after_restart = after_restart or {}
        self.log_bodies: dict[str, bytes] = {}
        self.calls: list[tuple[str, Any]] = []
        self.closed = False

    def containers(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(("containers", kwargs))
        wanted = dict(label.split("=", 1) for label in kwargs["filters"]["label"])
        return [
            {"Id": i, "Labels": c["Config"]["Labels"]}
            for i, c in self.by_id.items()
            if all(c["Config"]["Labels"].get(k) == v for k, v in wanted.items())
        ]

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.calls.append(("inspect", container_id))
        if container_id not in self.by_id:
            raise cs.NotFound("gone")
        return self.by_id[container_id]

    def restart(self, container_id: str, timeout: int) -> None:
        self.calls.append(("restart", (container_id, timeout)))
        if container_id not in self.by_id:
            raise cs.NotFound("gone")
        state = {**self.by_id[container_id]["State"], **self.after_restart}
        self.by_id[container_id] = {**self.by_id[container_id], "State": state}

    def logs(self, container_id: str, **kwargs: Any) -> bytes:
        self.calls.append(("logs", kwargs))
        if container_id not in self.log_bodies:
            raise cs.APIError("the log driver cannot read")
        return self.log_bodies[container_id]

    def close(self) -> None:
        self.closed = True


def labelled(
    number: int, project: str = "pivotal-flow", service: str = "backend"
) -> dict[str, Any]:
    found = attrs(number)
    found["Config"]["Labels"].update({cs.LABEL_PROJECT: project, cs.LABEL_SERVICE: service})
    return found


def params(**extra: Any) -> dict[str, Any]:
    base = {"project": "pivotal-flow", "service": "backend", "log_lines": 5,
            "docker_host": "unix:///run/docker.sock", "api_version": "auto", "timeout": 60,
            "tls": False, "validate_certs": False, "ca_path": None, "client_cert": None,
            "client_key": None}  # fmt: skip
    return {**base, **extra}


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
    assert cs.instance_state({**attrs()["State"], **state}) == expected


def test_instance_reads_health_restart_count_and_number() -> None:
    found = attrs(2, Health={"Status": "unhealthy"})
    found["RestartCount"] = 4
    inst = cs.instance(found)
    assert inst["number"] == 2 and inst["name"] == "pivotal-flow-backend-2"
    assert inst["health"] == "unhealthy" and inst["restart_count"] == 4
    assert inst["running"] is True and len(inst["id"]) == 12


def test_summary_is_running_only_when_every_replica_runs() -> None:
    up = cs.instance(attrs(1))
    down = cs.instance(attrs(2, Running=False, Status="exited", ExitCode=1))
    assert cs.summary([up])["running"] is True
    mixed = cs.summary([up, down])
    assert mixed["running"] is False and mixed["state"] == "exited (exit code 1)"
    assert mixed["pid"] == f"{up['id']}@2026-01-01T10:00:00", "the pid follows replica 1's run"
    assert cs.summary([]) == {"running": False, "state": "not_found", "pid": None}
    assert cs.summary([down])["pid"] is None


def test_describe_lists_every_replica() -> None:
    one = cs.instance(attrs(1, Health={"Status": "healthy"}))
    two = cs.instance(attrs(2, Running=False, Status="exited", ExitCode=137, OOMKilled=True))
    two["restart_count"] = 3
    text = cs.describe("pivotal-flow", "backend", [one, two])
    assert text.startswith("compose service 'backend' (2 replica(s))")
    assert "pivotal-flow-backend-1 running, healthy" in text
    assert "pivotal-flow-backend-2 oom_killed, 3 engine restarts" in text
    assert "no container" in cs.describe("pivotal-flow", "backend", [])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileNotFoundError(2, "No such file or directory"), "is not running (the socket does not"),
        (ConnectionRefusedError(111, "Connection refused"), "is not running (connection refused)"),
        (PermissionError(13, "Permission denied"), "permission denied"),
        (TimeoutError("timed out"), "did not answer in time"),
        (ValueError("weird\nmultiline"), "cannot be reached: ValueError: weird multiline"),
        (
            # What docker.APIClient raises when it cannot ask the engine for its API version.
            cs.DockerException(
                "Error while fetching server API version: ('Connection aborted.', "
                "FileNotFoundError(2, 'No such file or directory'))"
            ),
            "is not running (the socket does not exist)",
        ),
        (
            cs.DockerException(
                "Error while fetching server API version: ('Connection aborted.', "
                "PermissionError(13, 'Permission denied'))"
            ),
            "permission denied on the Docker engine at unix:///run/docker.sock socket",
        ),
    ],
)
def test_describe_error_is_one_actionable_line(error: BaseException, expected: str) -> None:
    text = cs.describe_error(error, "unix:///run/docker.sock")
    assert expected in text and "\n" not in text
    assert "unix:///run/docker.sock" in text


# --- the connection ---------------------------------------------------------------------------


def test_plain_connection_has_no_tls() -> None:
    assert cs.tls_options(params(), "/nonexistent") is None


def test_tls_without_verification_takes_the_given_files() -> None:
    options = cs.tls_options(params(tls=True, client_cert="/c.pem", client_key="/k.pem"), None)
    assert options == {"verify": False, "client_cert": ("/c.pem", "/k.pem")}


def test_validate_certs_implies_tls_and_docker_cert_path_fills_the_gaps(tmp_path: Any) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    options = cs.tls_options(params(validate_certs=True, ca_path="/mine/ca.pem"), str(tmp_path))
    assert options == {
        "verify": True,
        "ca_cert": "/mine/ca.pem",
        "client_cert": (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")),
    }


def test_connect_passes_community_docker_options_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    class Client:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

    monkeypatch.setattr(cs.docker, "APIClient", Client)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    cs.connect(params(docker_host="tcp://engine:2376", api_version="1.41", timeout=7))
    assert seen == {"base_url": "tcp://engine:2376", "version": "1.41", "timeout": 7, "tls": False}
    cs.connect(params(tls=True))
    assert isinstance(seen["tls"], cs.TLSConfig) and seen["tls"].verify is False


def test_connection_options_keep_community_docker_names_and_environment() -> None:
    spec = cs.CONNECTION_SPEC
    assert spec["docker_host"]["fallback"][1] == ["DOCKER_HOST"]
    assert spec["validate_certs"]["aliases"] == ["tls_verify"]
    assert "ca_cert" in spec["ca_path"]["aliases"]
    assert set(cs.INFO_SPEC) == {"project", "service", "log_lines", *spec}


def test_the_module_utils_import_without_the_docker_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sanity import test and a target without the SDK: the module then fails with
    missing_required_lib, it does not crash on import."""
    monkeypatch.setitem(sys.modules, "docker", None)  # any `import docker` now raises
    spec = importlib.util.spec_from_file_location("compose_without_sdk", cs.__file__)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.HAS_DOCKER is False and "import docker" in module.DOCKER_IMPORT_ERROR
    assert issubclass(module.NotFound, module.DockerException)


def test_nothing_imports_community_docker() -> None:
    from pathlib import Path

    plugins = Path(cs.__file__).parents[1]
    users = [p.name for p in plugins.rglob("*.py") if "community.docker.plugins" in p.read_text()]
    assert users == [], "community.docker's module_utils and doc fragments are private since 5.0"


# --- what compose_service_info reads ----------------------------------------------------------


def test_containers_are_listed_by_compose_labels_without_one_offs() -> None:
    oneoff = labelled(3)
    oneoff["Config"]["Labels"][cs.LABEL_ONEOFF] = "True"
    fake = FakeEngine([labelled(2), labelled(1), oneoff, labelled(4, service="redis")])
    found = cs.inspect_all(fake, cs.list_containers(fake, "pivotal-flow", "backend"))
    assert [cs.name_of(a) for a in found] == ["pivotal-flow-backend-1", "pivotal-flow-backend-2"]
    assert fake.calls[0] == (
        "containers",
        {"all": True, "filters": {"label": [f"{cs.LABEL_PROJECT}=pivotal-flow",
                                            f"{cs.LABEL_SERVICE}=backend"]}},
    )  # fmt: skip


def test_log_tail_is_prefixed_per_replica_and_skips_unreadable_logs() -> None:
    one, two, three = labelled(1), labelled(2), labelled(3)
    fake = FakeEngine([one, two, three])
    fake.log_bodies = {one["Id"]: b"listening on 3000\nwarn: slow query\n", two["Id"]: b"raw\n"}
    assert cs.logs(fake, [one, two, three], 20) == [
        "pivotal-flow-backend-1 | listening on 3000",
        "pivotal-flow-backend-1 | warn: slow query",
        "pivotal-flow-backend-2 | raw",
    ]
    assert fake.calls[0] == (
        "logs",
        {"stdout": True, "stderr": True, "timestamps": False, "tail": 20},
    )
    assert cs.logs(fake, [one], 0) == []
    assert cs.logs(fake, [one], 5) == ["listening on 3000", "warn: slow query"], "no prefix"


def test_run_describes_the_service_and_closes_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeEngine([labelled(1)])
    monkeypatch.setattr(cs, "connect", lambda p: fake)
    result = cs.run(params(log_lines=0))
    assert (result["reachable"], result["found"], result["running"]) == (True, True, True)
    assert result["state"] == "running" and result["msg"] == "" and fake.closed


def test_run_without_the_project_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cs, "connect", lambda p: FakeEngine([labelled(1, project="other")]))
    result = cs.run(params())
    assert result["reachable"] is False and result["state"] == "not_found"
    assert result["msg"].startswith("Compose project 'pivotal-flow' not found on unix://")


def test_run_without_the_service_says_how_to_recreate_it(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[Any] = []
    monkeypatch.setattr(cs, "connect", lambda p: FakeEngine([labelled(1, service="redis")]))
    result = cs.run(params(), lambda client, found: called.append(found) or {})
    assert result["reachable"] is False and result["found"] is False and called == []
    assert "recreate it with `docker compose up -d backend`" in result["msg"]


def test_run_reports_an_engine_it_cannot_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(p: Any) -> Any:
        raise cs.DockerException("Error while fetching server API version: Connection refused")

    monkeypatch.setattr(cs, "connect", refuse)
    result = cs.run(params())
    assert result["state"] == "unreachable" and result["reachable"] is False
    assert (
        result["msg"]
        == "Docker engine at unix:///run/docker.sock is not running (connection refused)"
    )


def test_run_reports_an_engine_that_fails_mid_way(monkeypatch: pytest.MonkeyPatch) -> None:
    class Dying(FakeEngine):
        def inspect_container(self, container_id: str) -> dict[str, Any]:
            raise ConnectionResetError(104, "Connection reset by peer")

    fake = Dying([labelled(1)])
    monkeypatch.setattr(cs, "connect", lambda p: fake)
    result = cs.run(params())
    assert result["state"] == "unreachable" and fake.closed
    assert "ConnectionResetError" in result["msg"]


# --- compose_service's rolling restart (module_utils/compose_restart) ---------------------------


def gate_params(**extra: Any) -> dict[str, Any]:
    return {"stop_timeout": 2, "health_timeout": 5, "stable_seconds": 0, **extra}


def test_restart_goes_through_the_sdk_with_the_stop_timeout() -> None:
    fake = FakeEngine([attrs(1)], {"StartedAt": "2026-01-01T11:00:00Z"})
    step = cr.restart_one(fake, attrs(1), gate_params(), check_mode=False)
    assert ("restart", (attrs(1)["Id"], 2)) in fake.calls
    assert step["ok"] and step["started_after"] == "2026-01-01T11:00:00Z"
    assert "running for" in step["detail"] and "no healthcheck" in step["detail"]


def test_a_replica_with_a_healthcheck_passes_when_healthy() -> None:
    checked = attrs(1)
    checked["Config"]["Healthcheck"] = {"Test": ["CMD", "true"]}
    fake = FakeEngine([checked], {"Health": {"Status": "healthy"}})
    step = cr.restart_one(fake, checked, gate_params(), check_mode=False)
    assert step["ok"] and "healthy after" in step["detail"]
    assert cr.has_healthcheck(checked) and not cr.has_healthcheck(attrs(1))
    checked["Config"]["Healthcheck"] = {"Test": ["NONE"]}
    assert not cr.has_healthcheck(checked)


def test_a_replica_that_stays_unhealthy_fails_at_the_deadline() -> None:
    checked = attrs(1)
    checked["Config"]["Healthcheck"] = {"Test": ["CMD", "false"]}
    fake = FakeEngine([checked], {"Health": {"Status": "starting"}})
    step = cr.restart_one(fake, checked, gate_params(health_timeout=0), check_mode=False)
    assert step["ok"] is False
    assert step["detail"] == "pivotal-flow-backend-1 not healthy within 0 s (starting)"


def test_rolling_restart_stops_at_the_first_replica_that_does_not_come_back() -> None:
    oom = {"Running": False, "Status": "exited", "ExitCode": 137, "OOMKilled": True}
    fake = FakeEngine([attrs(1), attrs(2)], oom)
    result = cr.rolling_restart(fake, [attrs(1), attrs(2)], gate_params(), check_mode=False)
    assert result["ok"] is False and result["changed"] is True
    assert [s["name"] for s in result["restarted"]] == ["pivotal-flow-backend-1"]
    assert result["msg"] == "pivotal-flow-backend-1 stopped again: oom_killed"
    restarts = [c for c in fake.calls if c[0] == "restart"]
    assert restarts == [("restart", (f"{1:064x}", 2))], "replica 2 is left untouched"
    assert [i["state"] for i in result["instances_after"]] == ["oom_killed", "running"]


def test_rolling_restart_in_check_mode_only_says_what_it_would_do() -> None:
    fake = FakeEngine([attrs(1), attrs(2)])
    result = cr.rolling_restart(fake, [attrs(1), attrs(2)], gate_params(), check_mode=True)
    assert result["changed"] is True and result["ok"] is True
    assert [s["detail"] for s in result["restarted"]] == [
        "would restart pivotal-flow-backend-1 (running)",
        "would restart pivotal-flow-backend-2 (running)",
    ]
    assert fake.calls == [] and result["instances_after"] == []


def test_a_container_gone_before_its_restart_is_one_line() -> None:
    result = cr.rolling_restart(FakeEngine([]), [attrs(1)], gate_params(), check_mode=False)
    assert result["ok"] is False and result["changed"] is False
    assert result["msg"] == "container pivotal-flow-backend-1 no longer exists (recreate it)"


def test_a_refused_restart_is_one_line() -> None:
    class Refusing(FakeEngine):
        def restart(self, container_id: str, timeout: int) -> None:
            raise cs.APIError("409 Conflict", explanation="container is marked for removal")

    result = cr.rolling_restart(Refusing([attrs(1)]), [attrs(1)], gate_params(), check_mode=False)
    assert result["ok"] is False and result["changed"] is False
    assert result["msg"] == (
        "the engine refused to restart pivotal-flow-backend-1: container is marked for removal"
    )


def test_a_container_removed_while_starting_stops_the_roll() -> None:
    class Vanishing(FakeEngine):
        def restart(self, container_id: str, timeout: int) -> None:
            super().restart(container_id, timeout)
            del self.by_id[container_id]

    fake = Vanishing([attrs(1), attrs(2)])
    result = cr.rolling_restart(fake, [attrs(1), attrs(2)], gate_params(), check_mode=False)
    assert result["ok"] is False and result["changed"] is True
    assert result["msg"] == "container pivotal-flow-backend-1 was removed while starting"
    assert [i["name"] for i in result["instances_after"]] == ["pivotal-flow-backend-2"]


# --- restart, HTTP gate and confirmation in one execution (compose_restart.restart_gated) -------


def gated_params(**extra: Any) -> dict[str, Any]:
    gate = {"gate_url": "http://127.0.0.1:3000/health", "gate_timeout": 5, "gate_interval": 0.1,
            "gate_probe_timeout": 1, "soak_seconds": 0}  # fmt: skip
    return params(**gate_params(**{**gate, **extra}))


def test_restart_gated_gates_a_held_roll_then_reads_the_service_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(cr, "http_check", lambda p: seen.append(p) or {"healthy": True})
    fake = FakeEngine([labelled(1)])
    result = cr.restart_gated(fake, [labelled(1)], gated_params(), check_mode=False)
    assert result["ok"] and result["http_gate"] == {"healthy": True}
    assert seen[0]["url"] == "http://127.0.0.1:3000/health" and seen[0]["wait_timeout"] == 5
    assert result["status_after"]["running"] is True and result["status_after"]["instances"]


def test_restart_gated_does_not_gate_a_roll_that_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cr, "http_check", lambda p: pytest.fail("gated a failed roll"))
    oom = {"Running": False, "Status": "exited", "ExitCode": 137, "OOMKilled": True}
    fake = FakeEngine([labelled(1)], oom)
    result = cr.restart_gated(fake, [labelled(1)], gated_params(), check_mode=False)
    assert result["ok"] is False and "http_gate" not in result
    assert result["status_after"]["running"] is False


def test_restart_gated_without_a_url_only_confirms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cr, "http_check", lambda p: pytest.fail("no URL, no gate"))
    fake = FakeEngine([labelled(1)])
    result = cr.restart_gated(fake, [labelled(1)], gated_params(gate_url=""), check_mode=False)
    assert "http_gate" not in result and result["status_after"]["found"] is True


def test_restart_gated_in_check_mode_neither_gates_nor_confirms() -> None:
    fake = FakeEngine([labelled(1)])
    result = cr.restart_gated(fake, [labelled(1)], gated_params(), check_mode=True)
    assert "http_gate" not in result and "status_after" not in result and fake.calls == []
