#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_service
short_description: Inspect or rolling-restart the containers of one Docker Compose service
version_added: 0.2.0
description:
  - Finds a service's containers through the Docker API by the labels Compose puts on them
    (C(com.docker.compose.project), C(com.docker.compose.service)), so it works for projects created
    by Compose v1 or v2 and needs no Compose CLI on the target.
  - With O(state=info) it is a diagnostic. It reports each replica's state (running, exited with its
    exit code, restarting, OOM-killed), health status when the container has a healthcheck, restart
    count, start time and the tail of its logs. It changes nothing and does not fail when the engine
    cannot be reached or the project does not exist (it returns RV(reachable=false) and the reason).
  - With O(state=restarted) it restarts the replicas one at a time (rolling) and, after each one,
    waits until it is C(healthy) (containers with a healthcheck) or has stayed running for
    O(stable_seconds) (containers without one). It stops at the first replica that does not come
    back, leaving the others untouched. In check mode it only reports what it would restart.
  - It talks to the engine through community.docker's own API client
    (C(community.docker.plugins.module_utils.common_api)), so the target needs the C(requests) Python
    library but no Docker SDK for Python, and takes community.docker's connection options
    (O(docker_host), TLS, O(timeout), ...). An engine that is down, refuses the connection or whose
    socket we may not open is reported (RV(reachable=false), one line in RV(msg)), not failed.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - community.docker.docker.api_documentation
  - pivotal.flow_ops.action_groups.docker_group
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - the community.docker collection (its bundled API client; tested with 4.8.5)
  - Docker API >= 1.25
options:
  project:
    description: Compose project name (the C(com.docker.compose.project) label).
    type: str
    required: true
  service:
    description: Compose service name (the C(com.docker.compose.service) label).
    type: str
    required: true
  state:
    description:
      - C(info) only reports. C(restarted) restarts every replica, one at a time, with a health gate
        after each.
    type: str
    choices: [info, restarted]
    default: info
  log_lines:
    description: Lines of each replica's log (stdout and stderr) to return (read before any action). C(0) disables.
    type: int
    default: 50
  stop_timeout:
    description:
      - Seconds each container gets to stop on SIGTERM before the engine kills it.
      - The API call of each restart may take O(timeout) plus this long.
    type: int
    default: 10
  health_timeout:
    description: Seconds to wait for each restarted replica to become healthy (or stable).
    type: float
    default: 60
  stable_seconds:
    description: For containers without a healthcheck, how long a replica must stay running to pass.
    type: float
    default: 3
"""

EXAMPLES = r"""
- name: Read the backend containers' state and log tail
  pivotal.flow_ops.compose_service:
    project: pivotal-flow
    service: backend
  register: backend_containers

- name: Restart the backend replicas one at a time
  pivotal.flow_ops.compose_service:
    project: pivotal-flow
    service: backend
    docker_host: unix:///var/run/docker.sock
    state: restarted
    log_lines: 0
  register: backend_restart

- name: Read a remote engine's postgres containers over TLS (community.docker connection options)
  pivotal.flow_ops.compose_service:
    project: pivotal-flow
    service: postgres
    docker_host: tcp://docker.example.internal:2376
    validate_certs: true
    ca_path: /etc/pflow-ops/docker/ca.pem
    client_cert: /etc/pflow-ops/docker/cert.pem
    client_key: /etc/pflow-ops/docker/key.pem
    timeout: 30
  register: postgres_containers
"""

RETURN = r"""
reachable:
  description:
    - Whether the engine answered and the service has containers to act on. C(false) for an engine
      that is down or refuses us, a project or a service with no container; RV(msg) says which.
  type: bool
  returned: always
found:
  description: Whether the service has at least one container in the project.
  type: bool
  returned: always
running:
  description: Whether every replica is running.
  type: bool
  returned: always
state:
  description:
    - C(running), or the state of the first replica that is not running
      (C(exited (exit code N)), C(oom_killed), C(restarting), C(paused), C(created), C(dead)),
      C(not_found), or C(unreachable).
  type: str
  returned: always
  sample: exited (exit code 137)
pid:
  description:
    - Identity of the first replica's current run, C(<short id>@<started at>); changes on every
      restart. Null when that replica is not running.
  type: str
  returned: always
instances:
  description: One entry per replica, by container number, as found before any action.
  type: list
  elements: dict
  returned: always
  contains:
    id: {description: Short container id., type: str}
    name: {description: Container name., type: str}
    number: {description: Compose container number., type: int}
    state: {description: "As RV(state), for this replica.", type: str}
    running: {description: Whether the container is running., type: bool}
    exit_code: {description: Exit code of the last run., type: int}
    oom_killed: {description: Whether the kernel OOM killer ended the last run., type: bool}
    health: {description: "Healthcheck status (healthy, unhealthy, starting), null without one.", type: str}
    restart_count: {description: Restarts done by the engine's restart policy., type: int}
    started_at: {description: Start time of the current or last run (RFC 3339)., type: str}
detail:
  description: One sentence on the service and each replica, for the report.
  type: str
  returned: always
  sample: "compose service 'backend' (2 replica(s)): pivotal-flow-backend-1 running, healthy; [...]-2 oom_killed"
logs:
  description: The last O(log_lines) lines of each replica, prefixed C(<container name> | ) when several.
  type: list
  elements: str
  returned: always
restarted:
  description: One entry per replica restarted (or that would be in check mode), in order.
  type: list
  elements: dict
  returned: when O(state=restarted)
  contains:
    name: {description: Container name., type: str}
    ok: {description: Whether it passed its gate (always true in check mode)., type: bool}
    detail: {description: One sentence on what happened., type: str}
    started_before: {description: Start time before the restart., type: str}
    started_after: {description: Start time after the restart (null in check mode)., type: str}
    waited_s: {description: Seconds spent waiting for the gate., type: float}
ok:
  description: Whether every replica came back healthy (C(false) if one did not, or none exists).
  type: bool
  returned: when O(state=restarted)
instances_after:
  description: The replicas after the restart, same shape as RV(instances); empty in check mode.
  type: list
  elements: dict
  returned: when O(state=restarted)
msg:
  description: Why the engine or the project could not be reached, or why the restart stopped.
  type: str
  returned: always
"""

import time
from typing import Any

from ansible_collections.community.docker.plugins.module_utils._api.errors import (
    APIError,
    DockerException,
    NotFound,
)
from ansible_collections.community.docker.plugins.module_utils._api.utils.utils import convert_filters
from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient,
    RequestException,
)

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
POLL_S = 0.25
# What a call to the engine may raise once the client exists: the API's own errors, and the
# transport's (requests' errors are OSErrors too; a socket we may not open is a PermissionError).
ENGINE_ERRORS = (DockerException, RequestException, OSError)

ARGUMENT_SPEC: dict[str, Any] = {
    "project": {"type": "str", "required": True},
    "service": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["info", "restarted"], "default": "info"},
    "log_lines": {"type": "int", "default": 50},
    "stop_timeout": {"type": "int", "default": 10},
    "health_timeout": {"type": "float", "default": 60},
    "stable_seconds": {"type": "float", "default": 3},
}


class EngineUnreachable(Exception):
    """community.docker's client gave up (engine down, socket refused, TLS or API version)."""

    def __init__(self, msg: str, **kwargs: Any) -> None:
        super().__init__(msg)
        self.kwargs = kwargs


class ComposeDockerClient(AnsibleDockerClient):
    """community.docker's API client (docker_host, TLS, timeout options, vendored API code, no
    Docker SDK), except that where it would fail the task (its constructor asks the engine for its
    API version) it raises EngineUnreachable: an engine that is down must be a finding, not a
    failed task, so the caller can report it and escalate."""

    def __init__(self, **kwargs: Any) -> None:
        self.connect_error: EngineUnreachable | None = None
        try:
            super().__init__(**kwargs)
        except EngineUnreachable as exc:
            self.connect_error = exc

    def fail(self, msg: str, **kwargs: Any) -> None:
        raise EngineUnreachable(msg, **kwargs)


def describe_error(exc: BaseException, docker_host: str) -> str:
    """One line a human can act on, for an engine that cannot be reached or refuses us."""
    text = str(exc) if isinstance(exc, EngineUnreachable) else f"{type(exc).__name__}: {exc}"
    where = f"Docker engine at {docker_host}"
    if "PermissionError" in text or "Permission denied" in text:
        return f"permission denied on the {where} socket (run as root or in the docker group)"
    if "FileNotFoundError" in text or "No such file" in text:
        return f"{where} is not running (the socket does not exist)"
    if "ConnectionRefused" in text or "Connection refused" in text:
        return f"{where} is not running (connection refused)"
    if "timed out" in text.lower() or "Timeout" in text:
        return f"{where} did not answer in time"
    return f"{where} cannot be reached: {' '.join(text.split())[:300]}"


def instance_state(st: dict[str, Any]) -> str:
    """running / restarting / paused / oom_killed / exited (exit code N) / created / dead."""
    status = st.get("Status") or "unknown"
    if st.get("Restarting"):
        return "restarting"
    if st.get("Paused"):
        return "paused"
    if st.get("Running"):
        return "running"
    if st.get("OOMKilled"):
        return "oom_killed"
    if status == "exited":
        return f"exited (exit code {st.get('ExitCode')})"
    return str(status)


def instance(attrs: dict[str, Any]) -> dict[str, Any]:
    """The manager-neutral description of one container, from its inspect data."""
    st = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    health = st.get("Health") or {}
    return {
        "id": str(attrs.get("Id", ""))[:12],
        "name": name_of(attrs),
        "number": int(labels.get(LABEL_NUMBER) or 0),
        "state": instance_state(st),
        "running": bool(st.get("Running")) and not st.get("Restarting") and not st.get("Paused"),
        "exit_code": st.get("ExitCode"),
        "oom_killed": bool(st.get("OOMKilled")),
        "health": health.get("Status"),
        "restart_count": int(attrs.get("RestartCount") or 0),
        "started_at": st.get("StartedAt"),
    }


def name_of(attrs: dict[str, Any]) -> str:
    return str(attrs.get("Name", "")).lstrip("/")


def has_healthcheck(attrs: dict[str, Any]) -> bool:
    test = ((attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test != ["NONE"]


def summary(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Service-level running/state/pid/detail from its replicas."""
    if not instances:
        return {"running": False, "state": "not_found", "pid": None}
    down = [i for i in instances if not i["running"]]
    first = instances[0]
    # Seconds are enough to tell runs apart and keep the report readable.
    started = str(first["started_at"] or "")[:19]
    pid = f"{first['id']}@{started}" if first["running"] else None
    return {"running": not down, "state": down[0]["state"] if down else "running", "pid": pid}


def describe(project: str, service: str, instances: list[dict[str, Any]]) -> str:
    if not instances:
        return f"compose service '{service}': no container in project '{project}'"
    parts = []
    for i in instances:
        extra = f", {i['health']}" if i["health"] and i["running"] else ""
        extra += f", {i['restart_count']} engine restarts" if i["restart_count"] else ""
        extra += ", OOMKilled" if i["oom_killed"] and i["state"] != "oom_killed" else ""
        parts.append(f"{i['name']} {i['state']}{extra}")
    return f"compose service '{service}' ({len(instances)} replica(s)): " + "; ".join(parts)


def label_filters(project: str, service: str | None) -> dict[str, list[str]]:
    wanted = [f"{LABEL_PROJECT}={project}"]
    if service is not None:
        wanted.append(f"{LABEL_SERVICE}={service}")
    return {"label": wanted}


def list_containers(client: Any, project: str, service: str | None) -> list[dict[str, Any]]:
    """GET /containers/json by Compose labels (all states), without `compose run` one-offs."""
    params = {"all": 1, "limit": -1, "size": 0, "trunc_cmd": 0,
              "filters": convert_filters(label_filters(project, service))}
    found = client.get_json("/containers/json", params=params)
    return [c for c in found if (c.get("Labels") or {}).get(LABEL_ONEOFF, "False") != "True"]


def inspect_container(client: Any, container_id: str) -> dict[str, Any]:
    """GET /containers/{id}/json: State (OOMKilled, Health, StartedAt), RestartCount, Config."""
    return dict(client.get_json("/containers/{0}/json", container_id))


def inspect_all(client: Any, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed containers' inspect data by container number; one removed meanwhile is skipped."""
    out = []
    for summary_ in listed:
        try:
            out.append(inspect_container(client, summary_["Id"]))
        except NotFound:
            continue
    return sorted(out, key=lambda a: int(((a.get("Config") or {}).get("Labels") or {}).get(LABEL_NUMBER) or 0))


def container_log(client: Any, attrs: dict[str, Any], lines: int) -> str:
    """The last `lines` lines of stdout and stderr (GET /containers/{id}/logs), demultiplexed by
    community.docker's helper unless the container has a TTY (then the stream is raw)."""
    params = {"stdout": 1, "stderr": 1, "timestamps": 0, "follow": 0, "tail": str(lines)}
    res = client._get(client._url("/containers/{0}/logs", attrs["Id"]), params=params)
    tty = bool((attrs.get("Config") or {}).get("Tty"))
    return bytes(client._get_result_tty(False, res, tty)).decode("utf-8", errors="replace")


def logs(client: Any, containers: list[dict[str, Any]], lines: int) -> list[str]:
    if lines <= 0:
        return []
    out: list[str] = []
    for attrs in containers:
        try:
            text = container_log(client, attrs, lines)
        except DockerException:
            continue
        prefix = f"{name_of(attrs)} | " if len(containers) > 1 else ""
        out += [prefix + line for line in text.splitlines()]
    return out


def gate(client: Any, attrs: dict[str, Any], params: dict[str, Any]) -> tuple[bool, str, float, dict[str, Any]]:
    """Wait for a restarted replica: healthy (with a healthcheck) or running long enough."""
    start = time.monotonic()
    deadline = start + params["health_timeout"]
    has_check = has_healthcheck(attrs)
    while True:
        attrs = inspect_container(client, attrs["Id"])
        now = instance(attrs)
        waited = round(time.monotonic() - start, 2)
        if not now["running"] and now["state"] != "restarting":
            return False, f"{now['name']} stopped again: {now['state']}", waited, attrs
        if has_check and now["health"] == "healthy":
            return True, f"{now['name']} healthy after {waited} s", waited, attrs
        if not has_check and waited >= params["stable_seconds"]:
            return True, f"{now['name']} running for {waited} s (no healthcheck)", waited, attrs
        if time.monotonic() >= deadline:
            health = now["health"] or now["state"]
            detail = f"{now['name']} not healthy within {params['health_timeout']:g} s ({health})"
            return False, detail, waited, attrs
        time.sleep(POLL_S)


def restart_container(client: Any, container_id: str, stop_timeout: int) -> None:
    """POST /containers/{id}/restart?t=, as community.docker's docker_container restarts one: the
    call itself may last the stop timeout on top of the client's."""
    timeout = (client.timeout or 0) + stop_timeout
    client.post_call("/containers/{0}/restart", container_id, params={"t": stop_timeout}, timeout=timeout)


def restart_one(client: Any, attrs: dict[str, Any], params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    before = instance(attrs)
    step = {"name": before["name"], "started_before": before["started_at"], "started_after": None,
            "waited_s": 0.0}
    if check_mode:
        return {**step, "ok": True, "detail": f"would restart {before['name']} ({before['state']})"}
    try:
        restart_container(client, attrs["Id"], params["stop_timeout"])
    except NotFound:
        return {**step, "ok": False, "detail": f"container {before['name']} no longer exists (recreate it)"}
    except APIError as exc:
        return {**step, "ok": False, "detail": f"the engine refused to restart {before['name']}: {exc.explanation}"}
    try:
        ok, detail, waited, attrs = gate(client, attrs, params)
    except NotFound:
        ok, detail, waited = False, f"container {before['name']} was removed while starting", 0.0
    return {**step, "ok": ok, "detail": detail, "waited_s": waited, "done": True,
            "started_after": (attrs.get("State") or {}).get("StartedAt")}


def rolling_restart(client: Any, containers: list[dict[str, Any]], params: dict[str, Any],
                    check_mode: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for attrs in containers:
        steps.append(restart_one(client, attrs, params, check_mode))
        if not steps[-1]["ok"]:
            break
    ok = bool(steps) and all(s["ok"] for s in steps) and len(steps) == len(containers)
    after: list[dict[str, Any]] = []
    if not check_mode:
        for attrs in containers:
            try:
                after.append(instance(inspect_container(client, attrs["Id"])))
            except NotFound:
                continue
    msg = "" if ok else next((s["detail"] for s in steps if not s["ok"]), "")
    changed = bool(steps) if check_mode else any(s.pop("done", False) for s in steps)
    return {"changed": changed, "restarted": steps, "ok": ok, "instances_after": after, "msg": msg}


def inspect(client: Any, params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    project, service = params["project"], params["service"]
    containers = inspect_all(client, list_containers(client, project, service))
    if not containers and not list_containers(client, project, None):
        msg = (f"Compose project '{project}' not found on {params['docker_host']} "
               f"(no container labelled {LABEL_PROJECT}={project})")
        return {"reachable": False, "found": False, "msg": msg, "logs": [], "instances": [],
                **summary([]), "detail": msg}, []
    instances = [instance(attrs) for attrs in containers]
    # No container left means nothing to restart: only `compose up` can recreate it, so the
    # callers must escalate, exactly as for an engine they cannot reach.
    gone = (f"no container of service '{service}' in Compose project '{project}' "
            f"(removed?): recreate it with `docker compose up -d {service}`")
    result = {"reachable": bool(instances), "found": bool(instances), "instances": instances,
              "logs": logs(client, containers, params["log_lines"]), **summary(instances),
              "detail": describe(project, service, instances), "msg": "" if instances else gone}
    return result, containers


def unreachable(params: dict[str, Any], msg: str) -> dict[str, Any]:
    result = {"reachable": False, "found": False, "running": False, "state": "unreachable",
              "pid": None, "instances": [], "logs": [], "msg": msg, "detail": msg}
    if params["state"] == "restarted":
        result.update(ok=False, restarted=[], instances_after=[])
    return result


def run(client: ComposeDockerClient) -> dict[str, Any]:
    params = client.module.params
    if client.connect_error is not None:
        return unreachable(params, describe_error(client.connect_error, params["docker_host"]))
    try:
        result, containers = inspect(client, params)
        if params["state"] == "restarted":
            if not containers:
                result.update(changed=False, ok=False, restarted=[], instances_after=[])
            else:
                result.update(rolling_restart(client, containers, params, client.check_mode))
        return result
    # pylint runs without `requests`, so it sees community.docker's stand-in RequestException as
    # something it cannot infer; at run time it is requests' own exception class.
    except ENGINE_ERRORS as exc:  # pylint: disable=catching-non-exception
        return unreachable(params, describe_error(exc, params["docker_host"]))
    finally:
        client.close()


def main() -> None:
    client = ComposeDockerClient(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    error = client.connect_error
    if error is not None and error.kwargs.get("exception") is not None:
        # A Python library missing on the target (community.docker's client needs `requests`):
        # that is a broken controller setup, not an engine to report on.
        client.module.fail_json(msg=str(error))
    result = run(client)
    result.setdefault("changed", False)
    client.module.exit_json(**result)


if __name__ == "__main__":
    main()
