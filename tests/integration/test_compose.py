"""RB-01 and the ``compose`` service manager against a real Docker engine: the sandbox runs as
containers of the Compose project ``pivotal-flow`` (see docker_engine.py) and the runbook finds
them by their Compose labels, as it would find a production deployment's."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.integration.docker_engine import ComposeStack

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.docker_engine"]

RESTART_PLAYBOOK = """\
- name: Restart one compose service through the service manager
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Restart the service
      ansible.builtin.include_role:
        name: pivotal.flow_ops.service_manager
        tasks_from: restart.yml
      vars:
        service_manager_type: compose
        service_manager_name: "{{ service }}"
        service_manager_compose_project: "{{ pflow_compose_project }}"
        service_manager_docker_host: "{{ pflow_docker_host }}"
        service_manager_stop_timeout: 2
        service_manager_health_timeout: 20
    - name: Show the result
      ansible.builtin.debug:
        msg: "RESULT ok={{ service_manager_restarted.ok }} {{ service_manager_restarted.detail }}"
"""


def _checks(data: dict[str, Any], status: str) -> set[str]:
    return {f["check"] for f in data["findings"] if f["status"] == status}


def _detail(data: dict[str, Any], check: str) -> str:
    return str(next(f for f in data["findings"] if f["check"] == check)["detail"])


def _time(stamp: str) -> datetime:
    # Docker prints nanoseconds; datetime takes microseconds.
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}+00:00")


def test_stopped_backend_container_is_recovered(compose: ComposeStack) -> None:
    assert compose.cli("sandbox", "break", "backend-crash").rc == 0
    assert compose.health() is None
    ((before_id, _),) = compose.runs("backend")
    run = compose.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered" and data["changed"] >= 1
    assert compose.health() == 200
    assert "exited" in _detail(data, "service_status")
    restart = next(a for a in data["actions"] if a["action"] == "restart")
    assert restart["result"].startswith(f"restarted: container {before_id[:12]} exited")
    assert f"-> container {before_id[:12]} (started " in restart["result"]
    assert "pid" not in restart["result"], "a container id is not a pid"
    assert compose.container("backend").id == before_id, "restarted, not recreated"
    assert data["logs"]["localhost"], "the container's log tail is in the report"

    again = compose.recover()
    assert again.rc == 0 and again.json["outcome"] == "healthy" and again.json["changed"] == 0


def test_running_backend_failing_health_is_restarted(compose: ComposeStack) -> None:
    assert compose.cli("sandbox", "break", "backend-hang").rc == 0
    before = compose.runs("backend")
    assert compose.container("backend").attrs["State"]["Running"]
    run = compose.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered"
    assert "service_status" in _checks(data, "ok"), "the container itself was running"
    assert "hung" in _detail(data, "health_endpoint")
    assert compose.runs("backend") != before and compose.health() == 200


def test_oom_killed_backend_is_reported_as_such_and_restarted(compose: ComposeStack) -> None:
    broke = compose.cli("sandbox", "break", "backend-oom")
    assert broke.rc == 0 and "OOMKilled=True" in broke.stdout, broke.stdout + broke.stderr
    run = compose.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert "oom_killed" in _detail(data, "service_status")
    assert data["outcome"] == "recovered" and compose.health() == 200


def test_blocked_event_loop_in_the_container_is_restarted(compose: ComposeStack) -> None:
    broke = compose.cli("sandbox", "break", "backend-eventloop-block")
    assert broke.rc == 0, broke.stderr
    before = compose.runs("backend")
    assert compose.health(timeout=1) is None, "the port accepts but nothing answers"
    container = compose.container("backend")
    container.reload()
    assert container.attrs["State"]["Running"], "the process still runs"
    run = compose.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered"
    assert "hung" in _detail(data, "health_endpoint")
    assert compose.runs("backend") != before and compose.health() == 200


@pytest.mark.parametrize(
    ("fault", "log_line"),
    [
        ("backend-heap-leak", "Reached heap limit"),
        ("backend-unhandled-rejection", "UnhandledPromiseRejection"),
    ],
)
def test_node_fault_exits_the_container_and_rb01_restarts_it(
    compose: ComposeStack, fault: str, log_line: str
) -> None:
    broke = compose.cli("sandbox", "break", fault)
    assert broke.rc == 0 and "exited" in broke.stdout, broke.stdout + broke.stderr
    container = compose.container("backend")
    container.reload()
    assert not container.attrs["State"]["Running"]
    assert log_line in container.logs(tail=300).decode(errors="replace")
    run = compose.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered" and compose.health() == 200


def test_slow_database_escalates_to_rb02_without_restarting_the_container(
    compose: ComposeStack,
) -> None:
    broke = compose.cli("sandbox", "break", "backend-db-slow")
    assert broke.rc == 0, broke.stderr
    before = compose.runs("backend")
    assert compose.health() == 200, "/health's SELECT 1 does not touch the locked table"
    run = compose.recover()
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert data["escalation"]["next_runbooks"] == ["RB-02"]
    assert data["actions"] == [] and data["changed"] == 0
    assert compose.runs("backend") == before


def test_two_replicas_are_restarted_one_at_a_time(compose: ComposeStack) -> None:
    second = compose.add_backend_replica()
    compose.container("backend").reload()
    deadline = time.monotonic() + 30
    while second.attrs["State"].get("Health", {}).get("Status") != "healthy":
        assert time.monotonic() < deadline, "replica 2 never became healthy"
        time.sleep(0.2)
        second.reload()
    assert compose.cli("sandbox", "break", "backend-crash").rc == 0
    since = int(time.time()) - 1
    run = compose.recover()
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered"
    assert "2 replica(s)" in _detail(data, "service_status")
    first, second = compose.containers("backend")
    assert first.attrs["State"]["Running"] and second.attrs["State"]["Running"]
    # The engine's own health_status events: its health log keeps only the last 5 probes, which
    # a slow second start (a Node.js process, a loaded machine) can push past.
    events = first.client.api.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"container": first.id}
    )
    started = _time(first.attrs["State"]["StartedAt"])
    healthy_at = min(
        datetime.fromtimestamp(int(event["timeNano"]) / 1e9, tz=UTC)
        for event in events
        if event.get("status") == "health_status: healthy"
        and int(event["timeNano"]) / 1e9 >= started.timestamp()
    )
    assert _time(second.attrs["State"]["StartedAt"]) > healthy_at, (
        "replica 2 must start only after replica 1 passed its healthcheck"
    )


def test_rolling_restart_stops_at_the_first_replica_that_fails(
    compose: ComposeStack, tmp_path: Path
) -> None:
    compose.add_backend_replica()
    time.sleep(1)
    second_before = compose.runs("backend")[1]
    # The next start of a backend container exhausts its memory limit: replica 1 comes back
    # OOM-killed, so the roll must stop before touching replica 2.
    (compose.home / "sandbox" / "backend" / "oom-next-start").touch()
    playbook = tmp_path / "restart.yml"
    playbook.write_text(RESTART_PLAYBOOK)
    proc = compose.playbook(playbook, "-e", "service=backend")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "RESULT ok=False" in proc.stdout and "stopped again: oom_killed" in proc.stdout
    assert compose.runs("backend")[1] == second_before, "replica 2 was left untouched"


@pytest.mark.parametrize(
    ("fault", "runbook", "dependency"),
    [("db-down", "RB-02", "postgresql"), ("redis-down", "RB-03", "redis")],
)
def test_dependency_container_down_escalates_to_its_runbook(
    compose: ComposeStack, fault: str, runbook: str, dependency: str
) -> None:
    before = compose.runs("backend")
    assert compose.cli("sandbox", "break", fault).rc == 0
    run = compose.recover()
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate"), data["reason"]
    assert data["escalation"]["next_runbooks"] == [runbook]
    assert f"dependency_{dependency}" in _checks(data, "critical")
    assert data["changed"] == 0 and data["actions"] == []
    assert compose.runs("backend") == before, "the backend container must not be restarted"


def test_docker_daemon_down_escalates_with_one_clear_line(compose: ComposeStack) -> None:
    before = compose.runs("backend")
    socket = compose.engine.root / "gone.sock"
    run = compose.cli(
        "recover", "rb-01", "--env", "local", "-e", f"backend_docker_host=unix://{socket}"
    )
    assert run.rc == 4, run.stdout + run.stderr
    text = run.stdout + run.stderr
    assert f"Docker engine at unix://{socket} is not running" in text
    assert "Traceback" not in text
    assert compose.runs("backend") == before


def test_unknown_compose_project_escalates(compose: ComposeStack) -> None:
    run = compose.recover("-e", "backend_compose_project=no-such-project")
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate")
    assert "Compose project 'no-such-project' not found" in data["reason"]
    assert data["actions"] == []


def test_service_without_containers_escalates_without_spending_budget(
    compose: ComposeStack,
) -> None:
    """Every container of the service is gone: only `compose up` can recreate it."""
    run = compose.recover("-e", "backend_service_name=api")
    data = run.json
    assert (run.rc, data["outcome"]) == (4, "escalate")
    assert "no container of service 'api'" in data["reason"]
    assert "docker compose up -d api" in data["reason"]
    assert data["actions"] == [] and compose.budget_entries() == []


def test_check_mode_leaves_container_ids_and_start_times_unchanged(
    compose: ComposeStack,
) -> None:
    assert compose.cli("sandbox", "break", "backend-crash").rc == 0
    before = {s: compose.runs(s) for s in ("backend", "postgres", "redis")}
    run = compose.recover("--check")
    data = run.json
    assert (run.rc, data["outcome"], data["check"]) == (4, "escalate", True)
    [restart] = [a for a in data["actions"] if a["action"] == "restart"]
    assert restart["result"].startswith("would restart (check mode): container ")
    assert restart["before"].startswith("container ") and restart["after"].startswith("running")
    assert {s: compose.runs(s) for s in before} == before
    assert not compose.container("backend").attrs["State"]["Running"]
    assert compose.budget_entries() == []


def test_stopped_redis_container_is_restarted_by_the_service_manager(
    compose: ComposeStack, tmp_path: Path
) -> None:
    assert compose.cli("sandbox", "break", "redis-down").rc == 0
    playbook = tmp_path / "restart.yml"
    playbook.write_text(RESTART_PLAYBOOK)
    proc = compose.playbook(playbook, "-e", "service=redis")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "RESULT ok=True" in proc.stdout
    redis = compose.container("redis")
    assert redis.attrs["State"]["Running"] and redis.attrs["State"]["Health"]["Status"] == "healthy"
    assert compose.recover().json["outcome"] == "healthy"


@pytest.mark.parametrize(
    ("runbook", "fault", "service", "manager_var"),
    [
        ("rb-03", "redis-down", "redis", "cache_service_manager"),
        ("rb-02", "db-down", "postgres", "database_service_manager"),
    ],
)
def test_rb02_rb03_restart_their_stopped_container(
    compose: ComposeStack, runbook: str, fault: str, service: str, manager_var: str
) -> None:
    assert compose.cli("sandbox", "break", fault).rc == 0
    run = compose.cli(
        "recover", runbook, "--env", "local", "--output", "json",
        "-e", f"{manager_var}=compose", "-e", "service_manager_stop_timeout=2",
    )  # fmt: skip
    data = run.json
    assert run.rc == 0, run.stderr
    assert data["outcome"] == "recovered", data["reason"]
    assert "exited" in _detail(data, "service_status")
    container = compose.container(service)
    assert container.attrs["State"]["Running"]
    assert container.attrs["State"]["Health"]["Status"] == "healthy"
    assert compose.health() == 200


def test_sandbox_status_shows_the_containers(compose: ComposeStack) -> None:
    st = compose.cli("sandbox", "status", "--output", "json")
    assert st.rc == 0
    programs = st.json["programs"]
    assert {p["health"] for p in programs.values()} == {"healthy"}
    assert set(programs) == {f"pivotal-flow-{s}-1" for s in ("backend", "postgres", "redis")}
    assert compose.endpoints["docker"]["project"] == "pivotal-flow"
