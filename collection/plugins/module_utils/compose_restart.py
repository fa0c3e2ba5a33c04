# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""compose_service's rolling restart: one replica at a time, each gated on its healthcheck (or on
staying up without one); the first replica that does not come back stops the roll. Then, in the
same module execution, the service's HTTP health gate and soak (when asked) and the engine's view
of the service afterwards, which the service_manager role confirms the restart against."""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.pivotal.flow_ops.plugins.module_utils.compose import (
    APIError,
    NotFound,
    inspect,
    inspect_container,
    instance,
)
from ansible_collections.pivotal.flow_ops.plugins.module_utils.http_probe import check as http_check

POLL_S = 0.25


def has_healthcheck(attrs: dict[str, Any]) -> bool:
    test = ((attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test != ["NONE"]


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


def explanation(exc: APIError) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def restart_one(client: Any, attrs: dict[str, Any], params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    before = instance(attrs)
    step = {"name": before["name"], "started_before": before["started_at"], "started_after": None,
            "waited_s": 0.0}
    if check_mode:
        return {**step, "ok": True, "detail": f"would restart {before['name']} ({before['state']})"}
    try:
        # POST /containers/{id}/restart?t=: the SDK lets the call last the client's timeout plus
        # the stop timeout, as the engine may wait that long for the container to stop.
        client.restart(attrs["Id"], timeout=params["stop_timeout"])
    except NotFound:
        return {**step, "ok": False, "detail": f"container {before['name']} no longer exists (recreate it)"}
    except APIError as exc:
        return {**step, "ok": False, "detail": f"the engine refused to restart {before['name']}: {explanation(exc)}"}
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


# Lines of each replica's log read with the confirmation: what the restarted service wrote.
CONFIRM_LOG_LINES = 20


def http_gate(params: dict[str, Any]) -> dict[str, Any]:
    """http_health's gate and soak on the service's URL: the result that module returns."""
    return http_check({
        "url": params["gate_url"], "timeout": params["gate_probe_timeout"], "samples": 1,
        "expect_status": [200], "wait_timeout": params["gate_timeout"], "interval": params["gate_interval"],
        "soak_seconds": params["soak_seconds"], "validate_certs": True, "port_owner": False,
    })


def restart_gated(client: Any, containers: list[dict[str, Any]], params: dict[str, Any],
                  check_mode: bool) -> dict[str, Any]:
    """The rolling restart, then (for real runs) the HTTP gate and soak when the roll held and a
    gate URL is given, and the confirmation: compose_service_info's view of the service now."""
    result = rolling_restart(client, containers, params, check_mode)
    if check_mode:
        return result
    if params.get("gate_url") and result["ok"]:
        result["http_gate"] = http_gate(params)
    result["status_after"] = inspect(client, dict(params, log_lines=CONFIRM_LOG_LINES))[0]
    return result
