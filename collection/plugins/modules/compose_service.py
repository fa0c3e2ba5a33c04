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
  - With I(state=info) it is a diagnostic. It reports each replica's state (running, exited with its
    exit code, restarting, OOM-killed), health status when the container has a healthcheck, restart
    count, start time and the tail of its logs. It changes nothing and does not fail when the engine
    cannot be reached or the project does not exist (it returns C(reachable=false) and the reason).
  - With I(state=restarted) it restarts the replicas one at a time (rolling) and, after each one,
    waits until it is C(healthy) (containers with a healthcheck) or has stayed running for
    I(stable_seconds) (containers without one). It stops at the first replica that does not come
    back, leaving the others untouched. In check mode it only reports what it would restart.
  - Needs the C(docker) Python SDK on the host the module runs on.
author:
  - pflow-ops team
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - docker (Python SDK) >= 7.0
options:
  project:
    description: Compose project name (the C(com.docker.compose.project) label).
    type: str
    required: true
  service:
    description: Compose service name (the C(com.docker.compose.service) label).
    type: str
    required: true
  docker_host:
    description: Docker API endpoint, C(unix:///path/to/docker.sock) or C(tcp://host:port).
    type: str
    default: unix:///var/run/docker.sock
  state:
    description:
      - C(info) only reports. C(restarted) restarts every replica, one at a time, with a health gate
        after each.
    type: str
    choices: [info, restarted]
    default: info
  log_lines:
    description: Lines of each replica's log to return (read before any action). C(0) disables.
    type: int
    default: 50
  stop_timeout:
    description: Seconds each container gets to stop on SIGTERM before the engine kills it.
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
  api_timeout:
    description: Timeout of each Docker API call, in seconds.
    type: float
    default: 30
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
    state: {description: As RV(state), for this replica., type: str}
    running: {description: Whether the container is running., type: bool}
    exit_code: {description: Exit code of the last run., type: int}
    oom_killed: {description: Whether the kernel OOM killer ended the last run., type: bool}
    health: {description: Healthcheck status (healthy, unhealthy, starting), null without one., type: str}
    restart_count: {description: Restarts done by the engine's restart policy., type: int}
    started_at: {description: Start time of the current or last run (RFC 3339)., type: str}
detail:
  description: One sentence on the service and each replica, for the report.
  type: str
  returned: always
  sample: "compose service 'backend' (2 replica(s)): pivotal-flow-backend-1 running, healthy; [...]-2 oom_killed"
logs:
  description: The last I(log_lines) lines of each replica, prefixed C(<container name> | ) when several.
  type: list
  elements: str
  returned: always
restarted:
  description: One entry per replica restarted (or that would be in check mode), in order.
  type: list
  elements: dict
  returned: when state is restarted
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
  returned: when state is restarted
instances_after:
  description: The replicas after the restart, same shape as RV(instances); empty in check mode.
  type: list
  elements: dict
  returned: when state is restarted
msg:
  description: Why the engine or the project could not be reached, or why the restart stopped.
  type: str
  returned: always
"""

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import docker
    import docker.errors

    HAS_DOCKER = True
except ImportError:  # pragma: no cover - reported through missing_required_lib
    HAS_DOCKER = False

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
POLL_S = 0.25


def describe_error(exc: BaseException, docker_host: str) -> str:
    """One line a human can act on, for an engine that cannot be reached or refuses us."""
    text = f"{type(exc).__name__}: {exc}"
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
        "name": str(attrs.get("Name", "")).lstrip("/"),
        "number": int(labels.get(LABEL_NUMBER) or 0),
        "state": instance_state(st),
        "running": bool(st.get("Running")) and not st.get("Restarting") and not st.get("Paused"),
        "exit_code": st.get("ExitCode"),
        "oom_killed": bool(st.get("OOMKilled")),
        "health": health.get("Status"),
        "restart_count": int(attrs.get("RestartCount") or 0),
        "started_at": st.get("StartedAt"),
    }


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


def _containers(client: Any, project: str, service: str | None) -> list[Any]:
    wanted = [f"{LABEL_PROJECT}={project}"]
    if service is not None:
        wanted.append(f"{LABEL_SERVICE}={service}")
    found = client.containers.list(all=True, filters={"label": wanted})
    found = [c for c in found if c.labels.get(LABEL_ONEOFF, "False") != "True"]
    return sorted(found, key=lambda c: int(c.labels.get(LABEL_NUMBER) or 0))


def _logs(containers: list[Any], lines: int) -> list[str]:
    if lines <= 0:
        return []
    out: list[str] = []
    for c in containers:
        try:
            text = c.logs(tail=lines).decode("utf-8", errors="replace")
        except docker.errors.DockerException:
            continue
        prefix = f"{c.name} | " if len(containers) > 1 else ""
        out += [prefix + line for line in text.splitlines()]
    return out


def _gate(container: Any, params: dict[str, Any]) -> tuple[bool, str, float]:
    """Wait for a restarted replica: healthy (with a healthcheck) or running long enough."""
    start = time.monotonic()
    deadline = start + params["health_timeout"]
    has_check = bool(((container.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test"))
    while True:
        container.reload()
        now = instance(container.attrs)
        waited = round(time.monotonic() - start, 2)
        if not now["running"] and now["state"] != "restarting":
            return False, f"{now['name']} stopped again: {now['state']}", waited
        if has_check and now["health"] == "healthy":
            return True, f"{now['name']} healthy after {waited} s", waited
        if not has_check and waited >= params["stable_seconds"]:
            return True, f"{now['name']} running for {waited} s (no healthcheck)", waited
        if time.monotonic() >= deadline:
            health = now["health"] or now["state"]
            return False, f"{now['name']} not healthy within {params['health_timeout']:g} s ({health})", waited
        time.sleep(POLL_S)


def _restart_one(container: Any, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    before = instance(container.attrs)
    step = {"name": before["name"], "started_before": before["started_at"], "started_after": None,
            "waited_s": 0.0}
    if check_mode:
        return {**step, "ok": True, "detail": f"would restart {before['name']} ({before['state']})"}
    try:
        container.restart(timeout=params["stop_timeout"])
    except docker.errors.NotFound:
        return {**step, "ok": False, "detail": f"container {before['name']} no longer exists (recreate it)"}
    except docker.errors.APIError as exc:
        return {**step, "ok": False, "detail": f"the engine refused to restart {before['name']}: {exc.explanation}"}
    try:
        ok, detail, waited = _gate(container, params)
    except docker.errors.NotFound:
        ok, detail, waited = False, f"container {before['name']} was removed while starting", 0.0
    return {**step, "ok": ok, "detail": detail, "waited_s": waited, "done": True,
            "started_after": container.attrs.get("State", {}).get("StartedAt")}


def _rolling_restart(containers: list[Any], params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for container in containers:
        steps.append(_restart_one(container, params, check_mode))
        if not steps[-1]["ok"]:
            break
    ok = bool(steps) and all(s["ok"] for s in steps) and len(steps) == len(containers)
    after: list[dict[str, Any]] = []
    if not check_mode:
        for c in containers:
            try:
                c.reload()
                after.append(instance(c.attrs))
            except docker.errors.NotFound:
                continue
    msg = "" if ok else next((s["detail"] for s in steps if not s["ok"]), "")
    changed = bool(steps) if check_mode else any(s.pop("done", False) for s in steps)
    return {"changed": changed, "restarted": steps, "ok": ok, "instances_after": after, "msg": msg}


def inspect(client: Any, params: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    project, service = params["project"], params["service"]
    containers = _containers(client, project, service)
    if not containers and not _containers(client, project, None):
        msg = (f"Compose project '{project}' not found on {params['docker_host']} "
               f"(no container labelled {LABEL_PROJECT}={project})")
        return {"reachable": False, "found": False, "msg": msg, "logs": [], "instances": [],
                **summary([]), "detail": msg}, []
    instances = [instance(c.attrs) for c in containers]
    # No container left means nothing to restart: only `compose up` can recreate it, so the
    # callers must escalate, exactly as for an engine they cannot reach.
    gone = (f"no container of service '{service}' in Compose project '{project}' "
            f"(removed?): recreate it with `docker compose up -d {service}`")
    result = {"reachable": bool(instances), "found": bool(instances), "instances": instances,
              "logs": _logs(containers, params["log_lines"]), **summary(instances),
              "detail": describe(project, service, instances), "msg": "" if instances else gone}
    return result, containers


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    client = None
    try:
        client = docker.DockerClient(base_url=params["docker_host"], timeout=params["api_timeout"])
        client.ping()
        result, containers = inspect(client, params)
        if params["state"] == "restarted":
            if not containers:
                result.update(changed=False, ok=False, restarted=[], instances_after=[])
            else:
                result.update(_rolling_restart(containers, params, module.check_mode))
        return result
    except docker.errors.DockerException as exc:
        msg = describe_error(exc, params["docker_host"])
    except OSError as exc:
        msg = describe_error(exc, params["docker_host"])
    finally:
        if client is not None:
            client.close()
    unreachable = {"reachable": False, "found": False, "running": False, "state": "unreachable",
                   "pid": None, "instances": [], "logs": [], "msg": msg, "detail": msg}
    if params["state"] == "restarted":
        unreachable.update(ok=False, restarted=[], instances_after=[])
    return unreachable


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "project": {"type": "str", "required": True},
            "service": {"type": "str", "required": True},
            "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
            "state": {"type": "str", "choices": ["info", "restarted"], "default": "info"},
            "log_lines": {"type": "int", "default": 50},
            "stop_timeout": {"type": "int", "default": 10},
            "health_timeout": {"type": "float", "default": 60},
            "stable_seconds": {"type": "float", "default": 3},
            "api_timeout": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"))
    result = run(module)
    result.setdefault("changed", False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
