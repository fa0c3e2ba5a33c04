#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: alert_status
short_description: Wait until a Prometheus alert has resolved, in Prometheus and in Alertmanager
version_added: 0.3.0
description:
  - The closed loop of an alert-driven recovery. A runbook that restarted a service has not
    finished until the alert that started it stops firing.
  - Asks Prometheus (C(GET /api/v1/alerts)), where the rule is evaluated, and Alertmanager
    (C(GET /api/v2/alerts)), which pages people, whether the alert is still active.
  - An alert is active in Prometheus while it is C(pending) or C(firing) with the name
    I(alertname) and every label of I(matchers). It is active in Alertmanager while an alert
    with that I(fingerprint) (or, without one, that name and those labels) is not resolved.
  - It polls every I(interval) until neither source reports the alert or I(wait_timeout) passed.
    The verdict is C(resolved), C(firing) (still active at the deadline) or C(unknown) (a source
    could not be read at the deadline). A still-firing alert is a result, not a task failure.
  - With I(wait_timeout=0) it looks once. Read-only; in check mode it looks once too, since a
    dry run fixed nothing to wait for.
seealso:
  - module: pivotal.flow_ops.alert_input
    description: The alert a run starts from.
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only. Looks once instead of waiting.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  alertname:
    description: The alert's name, as in the rule file and the runbook catalogue.
    type: str
    required: true
  fingerprint:
    description:
      - Alertmanager's fingerprint of the alert that started the run (hex digits). When set,
        Alertmanager is asked about that alert only.
    type: str
  matchers:
    description: 'Labels the alert must carry too (exact values), e.g. C({env: prod}).'
    type: dict
    default: {}
  prometheus_url:
    description: Base URL of Prometheus. At least one of I(prometheus_url) and I(alertmanager_url).
    type: str
  alertmanager_url:
    description: Base URL of Alertmanager.
    type: str
  bearer_token:
    description: Sent as C(Authorization Bearer) to both, for an authenticating proxy.
    type: str
  wait_timeout:
    description: Seconds to wait for the alert to resolve; 0 looks once.
    type: float
    default: 0
  interval:
    description: Seconds between two looks.
    type: float
    default: 2
  request_timeout:
    description: Seconds per HTTP request.
    type: float
    default: 5
  validate_certs:
    description: Verify the servers' TLS certificates.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Wait for BackendServiceDown to resolve
  pivotal.flow_ops.alert_status:
    alertname: BackendServiceDown
    prometheus_url: http://prometheus.internal:9090
    alertmanager_url: http://alertmanager.internal:9093
    wait_timeout: 600
  register: loop
"""

RETURN = r"""
state:
  description: C(resolved), C(firing) or C(unknown).
  returned: always
  type: str
  sample: resolved
waited_s:
  description: Seconds from the first look to the verdict.
  returned: always
  type: float
looks:
  description: How many times the sources were asked.
  returned: always
  type: int
active:
  description: The alerts still active at the verdict, per source (labels and state).
  returned: always
  type: list
  elements: dict
errors:
  description: The last error per source that could not be read, if any.
  returned: always
  type: dict
detail:
  description: One line for the report.
  returned: always
  type: str
"""

import json
import re
import time
from typing import Any
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

_FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")


class SourceError(Exception):
    """A source that could not be read (down, refused, bad answer)."""


def _get_json(url: str, params: dict[str, Any]) -> Any:
    headers = {"Accept": "application/json"}
    if params["bearer_token"]:
        headers["Authorization"] = "Bearer " + params["bearer_token"]
    try:
        resp = open_url(
            url,
            method="GET",
            headers=headers,
            timeout=params["request_timeout"],
            validate_certs=params["validate_certs"],
        )
        return json.loads(resp.read())
    except Exception as exc:  # urllib, socket and JSON errors all mean "cannot read it"
        raise SourceError(f"{url.split('?')[0]}: {exc}") from None


def _labels_match(labels: dict[str, Any], name: str, matchers: dict[str, Any]) -> bool:
    if labels.get("alertname") != name:
        return False
    return all(str(labels.get(k)) == str(v) for k, v in matchers.items())


def prometheus_active(payload: Any, name: str, matchers: dict[str, Any]) -> list[dict[str, Any]]:
    """Pending or firing alerts of that name and labels, from Prometheus' /api/v1/alerts."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        raise SourceError("Prometheus answered without status=success")
    alerts = (payload.get("data") or {}).get("alerts") or []
    return [
        {"source": "prometheus", "state": a.get("state"), "labels": a.get("labels") or {}}
        for a in alerts
        if a.get("state") in ("pending", "firing")
        and _labels_match(a.get("labels") or {}, name, matchers)
    ]


def alertmanager_active(
    payload: Any, name: str, matchers: dict[str, Any], fingerprint: str | None
) -> list[dict[str, Any]]:
    """Unresolved alerts from Alertmanager's /api/v2/alerts (it lists only unresolved ones)."""
    if not isinstance(payload, list):
        raise SourceError("Alertmanager answered with something other than a list of alerts")
    out = []
    for a in payload:
        labels = a.get("labels") or {}
        hit = (
            a.get("fingerprint") == fingerprint
            if fingerprint
            else _labels_match(labels, name, matchers)
        )
        if hit:
            state = (a.get("status") or {}).get("state", "active")
            out.append({"source": "alertmanager", "state": state, "labels": labels})
    return out


def _look(params: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    name, matchers = params["alertname"], params["matchers"] or {}
    active: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    if params["prometheus_url"]:
        url = params["prometheus_url"].rstrip("/") + "/api/v1/alerts"
        try:
            active += prometheus_active(_get_json(url, params), name, matchers)
        except SourceError as exc:
            errors["prometheus"] = str(exc)
    if params["alertmanager_url"]:
        query = urlencode({"active": "true", "filter": f'alertname="{name}"'}, quote_via=quote)
        url = params["alertmanager_url"].rstrip("/") + "/api/v2/alerts?" + query
        try:
            active += alertmanager_active(
                _get_json(url, params), name, matchers, params["fingerprint"]
            )
        except SourceError as exc:
            errors["alertmanager"] = str(exc)
    return active, errors


def verdict(active: list[dict[str, Any]], errors: dict[str, str]) -> str:
    if active:
        return "firing"
    return "unknown" if errors else "resolved"


def _detail(
    state: str, params: dict[str, Any], waited: float, active: list[Any], errors: Any
) -> str:
    name = params["alertname"]
    if state == "resolved":
        sources = " and ".join(s for s in ("prometheus", "alertmanager") if params[f"{s}_url"])
        return f"{name} resolved in {sources} after {waited:.1f} s"
    if state == "firing":
        where = sorted({a["source"] for a in active})
        return f"{name} still active in {' and '.join(where)} after {waited:.1f} s"
    return f"{name}: could not read " + "; ".join(f"{k} ({v})" for k, v in sorted(errors.items()))


def run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    wait = 0.0 if module.check_mode else max(float(params["wait_timeout"]), 0.0)
    interval = max(float(params["interval"]), 0.1)
    started = time.monotonic()
    looks = 0
    while True:
        active, errors = _look(params)
        looks += 1
        state = verdict(active, errors)
        waited = time.monotonic() - started
        if state == "resolved" or waited + interval > wait:
            break
        time.sleep(interval)
    return {
        "changed": False,
        "state": state,
        "waited_s": round(waited, 3),
        "looks": looks,
        "active": active,
        "errors": errors,
        "detail": _detail(state, params, waited, active, errors),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "alertname": {"type": "str", "required": True},
            "fingerprint": {"type": "str"},
            "matchers": {"type": "dict", "default": {}},
            "prometheus_url": {"type": "str"},
            "alertmanager_url": {"type": "str"},
            "bearer_token": {"type": "str", "no_log": True},
            "wait_timeout": {"type": "float", "default": 0},
            "interval": {"type": "float", "default": 2},
            "request_timeout": {"type": "float", "default": 5},
            "validate_certs": {"type": "bool", "default": True},
        },
        required_one_of=[("prometheus_url", "alertmanager_url")],
        supports_check_mode=True,
    )
    fingerprint = module.params["fingerprint"]
    if fingerprint and not _FINGERPRINT.match(fingerprint):
        module.fail_json(msg=f"fingerprint must be up to 32 hex digits, got {fingerprint!r}")
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
