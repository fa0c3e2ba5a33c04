# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""A Docker Compose service's containers as the Docker engine sees them, for compose_service_info
and compose_service: found by the labels Compose puts on them, described per replica.

Built on the Docker SDK for Python (``docker``), the maintained client community.docker itself
used before it vendored one; community.docker's own client is private since 5.0, so nothing here
imports that collection. Compose itself is not needed: projects made by Compose v1 and v2 carry the
same labels.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from ansible_collections.pivotal.flow_ops.plugins.module_utils.compose_spec import CONNECTION_SPEC

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    from docker.tls import TLSConfig

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # the modules fail with missing_required_lib('docker')
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):  # type: ignore[no-redef]
        """Stand-in so this file imports without the SDK (the module then fails cleanly)."""

    class APIError(DockerException):  # type: ignore[no-redef]
        """Stand-in, as above."""

    class NotFound(APIError):  # type: ignore[no-redef]
        """Stand-in, as above."""


LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
# What a call to the engine may raise once the client exists: the SDK's own errors, and the
# transport's (requests' errors are OSErrors; a socket we may not open is a PermissionError).
ENGINE_ERRORS = (DockerException, OSError)

INFO_SPEC: dict[str, Any] = {
    "project": {"type": "str", "required": True},
    "service": {"type": "str", "required": True},
    "log_lines": {"type": "int", "default": 50},
    **CONNECTION_SPEC,
}


def tls_options(params: dict[str, Any], cert_dir: str | None) -> dict[str, Any] | None:
    """TLSConfig's keyword arguments, or None for a plain connection. As community.docker:
    validate_certs implies TLS, and DOCKER_CERT_PATH (``cert_dir``) supplies the files not given."""
    if not (params["tls"] or params["validate_certs"]):
        return None
    paths = {"ca_path": "ca.pem", "client_cert": "cert.pem", "client_key": "key.pem"}
    found = {key: params.get(key) for key in paths}
    for key, name in paths.items():
        if not found[key] and cert_dir and os.path.isfile(os.path.join(cert_dir, name)):
            found[key] = os.path.join(cert_dir, name)
    options: dict[str, Any] = {"verify": bool(params["validate_certs"])}
    if found["ca_path"]:
        options["ca_cert"] = found["ca_path"]
    if found["client_cert"] or found["client_key"]:
        options["client_cert"] = (found["client_cert"], found["client_key"])
    return options


def connect(params: dict[str, Any]) -> Any:
    """An SDK APIClient on the engine. Raises DockerException when the engine cannot be reached
    (the client asks for the API version at once unless one is given) or the TLS files are wrong."""
    tls = tls_options(params, os.environ.get("DOCKER_CERT_PATH"))
    return docker.APIClient(
        base_url=params["docker_host"],
        version=params["api_version"],
        timeout=params["timeout"],
        tls=TLSConfig(**tls) if tls is not None else False,
    )


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


def summary(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Service-level running/state/pid from its replicas."""
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
    found = client.containers(all=True, filters=label_filters(project, service))
    return [c for c in found if (c.get("Labels") or {}).get(LABEL_ONEOFF, "False") != "True"]


def inspect_container(client: Any, container_id: str) -> dict[str, Any]:
    """GET /containers/{id}/json: State (OOMKilled, Health, StartedAt), RestartCount, Config."""
    return dict(client.inspect_container(container_id))


def inspect_all(client: Any, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed containers' inspect data by container number; one removed meanwhile is skipped."""
    out = []
    for summary_ in listed:
        try:
            out.append(inspect_container(client, summary_["Id"]))
        except NotFound:
            continue
    return sorted(out, key=lambda a: int(((a.get("Config") or {}).get("Labels") or {}).get(LABEL_NUMBER) or 0))


def logs(client: Any, containers: list[dict[str, Any]], lines: int) -> list[str]:
    """The last ``lines`` lines of each replica's stdout and stderr (the SDK demultiplexes them
    unless the container has a TTY), prefixed by the container name when there are several."""
    if lines <= 0:
        return []
    out: list[str] = []
    for attrs in containers:
        try:
            raw = client.logs(attrs["Id"], stdout=True, stderr=True, timestamps=False, tail=lines)
        except DockerException:
            continue
        prefix = f"{name_of(attrs)} | " if len(containers) > 1 else ""
        out += [prefix + line for line in bytes(raw).decode("utf-8", errors="replace").splitlines()]
    return out


def inspect(client: Any, params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The service's description (compose_service_info's result) and its containers' inspect data."""
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


def unreachable(msg: str) -> dict[str, Any]:
    """The description of a service whose engine cannot be reached."""
    return {"reachable": False, "found": False, "running": False, "state": "unreachable",
            "pid": None, "instances": [], "logs": [], "msg": msg, "detail": msg}


def run(params: dict[str, Any], action: Any = None) -> dict[str, Any]:
    """Connect, describe the service and, when it has containers, ``action(client, containers)``
    (the rolling restart) adds its result. An engine that is down, refuses us or whose TLS files
    are wrong is a finding (RV(reachable=false) and one line), not a failed task: the callers
    report it and escalate."""
    # pylint runs without the SDK, so it cannot infer docker.errors.DockerException as an exception
    # class; at run time ENGINE_ERRORS holds the SDK's exception class and OSError.
    try:
        client = connect(params)
    except ENGINE_ERRORS as exc:  # pylint: disable=catching-non-exception
        return unreachable(describe_error(exc, params["docker_host"]))
    try:
        result, containers = inspect(client, params)
        if action is not None and containers:
            result.update(action(client, containers))
        return result
    except ENGINE_ERRORS as exc:  # pylint: disable=catching-non-exception
        return unreachable(describe_error(exc, params["docker_host"]))
    finally:
        client.close()
