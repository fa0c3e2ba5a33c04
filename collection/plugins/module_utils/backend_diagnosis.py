# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""RB-01's investigation in one module execution (backend_diagnose): the service manager's view
of the backend, the host's resources, PostgreSQL and Redis, then /health and the API sample, all
at once, each in its own thread with its own timeout.

Every check is the building block its own module runs (supervisor_rpc / compose, host_checks,
dependency_checks, http_probe): the results keep those modules' shapes, so the decisions
(backend_decisions.assess) read them unchanged. One module execution instead of five is the
point: on ansible-core 2.19 each costs 0.5-0.8 s of controller CPU, the checks themselves
milliseconds. ``timeline`` says, per check, when it started (seconds from the module's start),
how long it took and what it saw: the report shows them as the investigation's sub-steps.
"""

from __future__ import annotations

import threading
import time
from functools import partial

from ansible_collections.pivotal.flow_ops.plugins.module_utils import node_signals, port_owner, service_state, supervisor_rpc
from ansible_collections.pivotal.flow_ops.plugins.module_utils.backend_timeline import STEPS, timeline
from ansible_collections.pivotal.flow_ops.plugins.module_utils.dependency_checks import (
    ModuleFailure,
    check_postgresql,
    check_redis,
    failed,
    run_concurrently,
    summarize,
    validate as validate_dependencies,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.host_checks import HostCheckError, check_host
from ansible_collections.pivotal.flow_ops.plugins.module_utils.http_probe import ProbeError, Target
from ansible_collections.pivotal.flow_ops.plugins.module_utils.http_probe import check as http_check

# statvfs on a hung network mount blocks: the host's reads get a bound too.
RESOURCES_TIMEOUT_S = 5.0
HEALTH_SLACK_S = 2.0
# http_health states in which something accepted the TCP connection on the port.
ANSWERED = ("healthy", "unhealthy", "hung")
NOT_SAMPLED = {"changed": False, "skipped": True}
# /health states that earn one more probe before they count (see retry_health).
RETRIED = ("hung", "timeout")


# --- the checks, each run in its own thread -----------------------------------------------

def manager_connection(params: dict) -> dict:
    """The connection of the manager ``params["manager"]`` names: ``compose`` for Docker
    Compose, ``supervisor`` for supervisord. A caller may pass both (the role does: one
    inventory, either manager); the other one is ignored. Raises ModuleFailure when the chosen
    one lacks its endpoint."""
    if params["manager"] == service_state.COMPOSE:
        chosen = dict(params.get("compose") or {})
        if not chosen.get("project"):
            raise ModuleFailure("compose.project is required with manager=compose")
        return chosen
    chosen = dict(params.get("supervisor") or {})
    if not chosen.get("server_url"):
        raise ModuleFailure("supervisor.server_url is required with manager=supervisord")
    return chosen


def _compose():  # type: ignore[no-untyped-def]
    """module_utils/compose, imported only for a Compose-managed backend: it imports the Docker
    SDK (~70 ms of CPU per host), which a supervisord-managed fleet never needs."""
    from ansible_collections.pivotal.flow_ops.plugins.module_utils import compose  # pylint: disable=import-outside-toplevel

    return compose


def manager_status(params: dict) -> dict:
    """{status: service_manager_status, warnings, failure}: ``failure`` is what fails the task
    (credentials refused, an unknown program, no Docker SDK), as the status modules do."""
    name = params["service"]
    if params["manager"] == service_state.COMPOSE:
        compose = _compose()
        if not compose.HAS_DOCKER:
            return {"failure": "the Docker SDK for Python (docker) is required on the target for compose"}
        raw = compose.run(dict(manager_connection(params), service=name, log_lines=params["log_lines"]))
        return {"status": service_state.compose_status(raw, name), "warnings": [], "failure": None}
    sup = manager_connection(params)
    rpc = {"name": name, "server_url": sup.get("server_url") or "", "username": sup.get("username"),
           "password": sup.get("password"), "log_lines": params["log_lines"]}
    try:
        raw, warnings = supervisor_rpc.read_program(rpc)
    except supervisor_rpc.ModuleFailure as exc:
        return {"failure": exc.msg}
    return {"status": service_state.supervisor_status(raw, name), "warnings": warnings, "failure": None}


class Handoff:
    """The service manager's answer, handed from its check to the one that needs its pid and
    log tail (node_signals), which meanwhile reads the metrics."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self.value: dict | None = None

    def put(self, value: dict | None) -> None:
        self.value = value
        self._ready.set()

    def get(self, timeout: float) -> dict | None:
        self._ready.wait(max(timeout, 0.0))
        return self.value


def status_handed_off(handoff: Handoff, params: dict) -> dict:
    result = None
    try:
        result = manager_status(params)
        return result
    finally:
        handoff.put(result)


def node_after_status(handoff: Handoff, params: dict) -> dict:
    """node_signals' reading: the metrics at once, then the process and the log tail once the
    service manager has named them (or has not answered within manager_timeout)."""
    started = time.monotonic()
    node = params["node"]
    metrics, error = node_signals.fetch_metrics(node["metrics_url"], node["timeout"])
    manager = handoff.get(params["manager_timeout"] - (time.monotonic() - started)) or {}
    status = manager.get("status") or {}
    return node_signals.signals(metrics, error, status.get("pid"), status.get("logs") or [],
                                node["cpu_sample_seconds"])


def node_timeout(params: dict) -> float:
    """The node check's bound: the longer of its metrics read and the wait for the service
    manager, then the CPU sample."""
    node = params["node"]
    return max(node["timeout"], params["manager_timeout"]) + node["cpu_sample_seconds"] + HEALTH_SLACK_S


def resources(params: dict) -> dict:
    try:
        out = check_host(params)
    except HostCheckError as exc:
        return {"failure": "resources: %s" % exc}
    out.pop("changed", None)
    return out


def health_then_sample(params: dict) -> dict:
    """/health, then, only when it is healthy, the API sample: a hung backend would otherwise cost
    every sample its whole timeout."""
    started = time.monotonic()
    try:
        health = http_check(_probe(params["health_url"], params["health_timeout"], 1, False))
        if retry_health(health):
            first = health
            health = http_check(_probe(params["health_url"], params["health_timeout"], 1, False))
            health["retried"] = {"state": first["state"], "reason": first.get("reason")}
        probe = dict(NOT_SAMPLED)
        sample_at = round(time.monotonic() - started, 3)
        if params.get("probe_url") and health["healthy"]:
            probe = http_check(_probe(params["probe_url"], params["health_timeout"], params["probe_samples"], False))
    except ProbeError as exc:
        return {"failure": str(exc)}
    return {"health": health, "probe": probe, "sample_at_s": sample_at}


def retry_health(health: dict) -> bool:
    """Probe /health once more before the backend counts as hung or unreachable? Only when the
    probe ran out of time (connected with no answer, or no connection): on a loaded controller
    (a 50-host diagnosis on 2 cores, every fork starting every check at the same instant) a
    healthy backend's answer can miss one probe's timeout, while a hung backend misses both. A
    refused connection or an HTTP error is an answer, and is not retried."""
    return health.get("state") in RETRIED


def _probe(url: str, timeout: float, samples: int, owner: bool) -> dict:
    return {"url": url, "timeout": timeout, "samples": samples, "expect_status": [200], "wait_timeout": 0.0,
            "interval": 0.5, "soak_seconds": 0.0, "validate_certs": True, "port_owner": owner}


# --- what stands in for a check that did not come back ------------------------------------

def late(params: dict):  # type: ignore[no-untyped-def]
    """on_timeout for run_concurrently: each check's own "no answer" result."""
    def stand_in(name: str, timeout: float) -> dict:
        words = "no result within %g s" % timeout
        if name == "service_status":
            return {"status": unreachable_status(params, words), "warnings": [], "failure": None}
        if name == "host_resources":
            finding = {"check": "host_resources", "status": "unknown", "detail": words + " (a hung mount?)"}
            return {"disks": [], "memory": None, "load": None, "findings": [finding], "status": "unknown"}
        if name == "health_endpoint":
            health = {"changed": False, "url": params["health_url"], "healthy": False, "state": "timeout",
                      "status": None, "reason": words, "body": None, "latency_ms": None, "samples": {},
                      "listener": None}
            return {"health": health, "probe": dict(NOT_SAMPLED), "sample_at_s": timeout}
        if name == "node_signals":
            return {"metrics": {}, "metrics_error": words, "process": {}, "logs": node_signals.log_signals([])}
        return failed("%s: timeout (%s; name lookup hung?)" % (name.split("_", 1)[-1], words), "timeout")
    return stand_in


def crashed(params: dict):  # type: ignore[no-untyped-def]
    """on_error for run_concurrently: a bug in a dependency check is that check's error; in
    any other it fails the task (a diagnosis missing its service state must not pass for one)."""
    def stand_in(name: str, msg: str) -> dict:
        return failed(msg) if name.startswith("dependency_") else {"failure": msg}
    return stand_in


def unreachable_status(params: dict, words: str) -> dict:
    if params["manager"] == service_state.COMPOSE:
        return service_state.compose_status(_compose().unreachable("Docker engine: " + words), params["service"])
    return service_state.supervisor_status({"reachable": False, "msg": "supervisord: " + words}, params["service"])


# --- the plan and the result ----------------------------------------------------------------

def plan_for(params: dict) -> dict:
    """{check: (function, params, timeout)}: the checks this call runs."""
    samples = params["probe_samples"] if params.get("probe_url") else 0
    handoff = Handoff()
    plan = {
        "service_status": (partial(status_handed_off, handoff), params, params["manager_timeout"]),
        # One probe, its retry (retry_health), then the samples.
        "health_endpoint": (health_then_sample, params,
                            params["health_timeout"] * (2 + samples) + HEALTH_SLACK_S),
    }
    if params.get("resources") is not None:
        plan["host_resources"] = (resources, params["resources"], RESOURCES_TIMEOUT_S)
    if params.get("postgres") is not None:
        plan["dependency_postgresql"] = (check_postgresql, params["postgres"], params["postgres"]["connect_timeout"])
    if params.get("redis") is not None:
        plan["dependency_redis"] = (check_redis, params["redis"], params["redis"]["timeout"])
    if params.get("node") is not None:
        plan["node_signals"] = (partial(node_after_status, handoff), params, node_timeout(params))
    return plan


def validate(params: dict) -> None:
    validate_dependencies(params)
    if params["health_timeout"] <= 0 or params["manager_timeout"] <= 0:
        raise ModuleFailure("health_timeout and manager_timeout must be > 0")
    if params.get("probe_url") and params["probe_samples"] < 1:
        raise ModuleFailure("probe_samples must be >= 1")
    if params["log_lines"] < 0:
        raise ModuleFailure("log_lines must be >= 0")
    node = params.get("node")
    if node is not None and (node["timeout"] <= 0 or node["cpu_sample_seconds"] < 0):
        raise ModuleFailure("node.timeout must be > 0 and node.cpu_sample_seconds >= 0")
    manager_connection(params)


def diagnose(params: dict) -> tuple[dict, list[str]]:
    """The module's result and its warnings; raises ModuleFailure to fail the task."""
    started = time.monotonic()
    validate(params)
    ran = run_concurrently(plan_for(params), late(params), crashed(params))
    for name, _step in STEPS:
        failure = (ran.get(name) or ({}, 0))[0].get("failure")
        if failure:
            raise ModuleFailure(failure)
    manager, chain = ran["service_status"][0], ran["health_endpoint"][0]
    chain["health"]["listener"] = listener(manager["status"], chain["health"], params["health_url"])
    deps = {name.split("_", 1)[1]: result for name, (result, _at) in ran.items() if name.startswith("dependency_")}
    dep_elapsed = max([d.get("elapsed_s", 0.0) for d in deps.values()] or [0.0])
    result = {
        "changed": False,
        "status": manager["status"],
        "resources": ran["host_resources"][0] if "host_resources" in ran else None,
        "dependencies": summarize(deps, dep_elapsed),
        "health": chain["health"],
        "probe": chain["probe"],
        "node": node_result(ran),
        "timeline": timeline(ran),
        "elapsed_s": round(time.monotonic() - started, 3),
    }
    return result, list(manager.get("warnings") or [])


def node_result(ran: dict) -> dict | None:
    """node_signals' result (metrics, metrics_error, process, logs), or None when not asked."""
    if "node_signals" not in ran:
        return None
    return {key: value for key, value in ran["node_signals"][0].items() if key != "elapsed_s"}


def listener(status: dict, health: dict, url: str):  # type: ignore[no-untyped-def]
    """The process holding the health port (http_health's port_owner), read only when it tells
    something: the manager says the backend is not running while the port answers (another
    process squats it). Reading every process's fds costs CPU a healthy fleet should not pay."""
    if not status.get("reachable") or status.get("running") or health.get("state") not in ANSWERED:
        return None
    return port_owner.owner(Target(url, True).port)
