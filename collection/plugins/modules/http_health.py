#!/usr/bin/python
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402  (ansible-test requires DOCUMENTATION/EXAMPLES/RETURN before any import)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_health
short_description: Probe an HTTP endpoint and classify how it is (un)healthy
version_added: 0.1.0
description:
  - Sends C(GET) requests the way an on-call engineer would and classifies each probe as
    C(healthy) (expected status), C(unhealthy) (other status), C(hung) (TCP connected, no answer
    within I(timeout)), C(refused) (connection refused), C(timeout) (TCP connect timed out) or
    C(error) (DNS failure, connection reset, TLS error, ...).
  - The TCP connection is opened first and the HTTP request sent on it, so that "nothing listens"
    and "listens but does not answer" are told apart.
  - Order of the phases. An optional health gate (I(wait_timeout) > 0) probes every I(interval)
    until one probe is healthy. Then I(samples) probes are sent back to back. Then an optional soak
    (I(soak_seconds) > 0) probes every I(interval) for that long. When the gate does not pass, the
    samples and the soak are skipped.
  - The verdict is healthy only when the gate passed (if any) and every sample and soak probe was
    healthy. An unhealthy endpoint is a result, not a task failure; the task fails only on bad
    parameters.
  - Read-only; it runs for real in check mode and always reports C(changed=false).
author:
  - pflow-ops team (@pivotal-flow)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only, so it probes for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: C(http://) or C(https://) URL to C(GET). Redirects are not followed.
    type: str
    required: true
  timeout:
    description: Seconds per probe, connect and response together.
    type: float
    default: 2
  expect_status:
    description: HTTP statuses that count as healthy.
    type: list
    elements: int
    default: [200]
  samples:
    description: Number of probes sent back to back to measure the error rate and latency.
    type: int
    default: 1
  wait_timeout:
    description: When > 0, probe every I(interval) until one probe is healthy or this many seconds passed.
    type: float
    default: 0
  interval:
    description: Seconds between the starts of two probes during the gate and the soak.
    type: float
    default: 0.5
  soak_seconds:
    description: When > 0, keep probing every I(interval) for this long; any failed probe makes the verdict unhealthy.
    type: float
    default: 0
  validate_certs:
    description: Verify the server's TLS certificate and hostname.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Check the backend health endpoint
  pivotal.flow_ops.http_health:
    url: http://127.0.0.1:8000/health
    samples: 5
  register: backend_health

- name: Wait for the backend to come back, then watch it for 10 seconds
  pivotal.flow_ops.http_health:
    url: http://127.0.0.1:8000/health
    wait_timeout: 30
    soak_seconds: 10
    interval: 1
  register: backend_verify
"""

RETURN = r"""
healthy:
  description: Final verdict.
  type: bool
  returned: always
state:
  description:
    - Classification of the decisive probe (the last failed probe when the verdict is unhealthy,
      else the last probe). One of healthy, unhealthy, hung, refused, timeout, error.
  type: str
  returned: always
  sample: hung
status:
  description: HTTP status of the decisive probe, null when it got no response.
  type: int
  returned: always
reason:
  description: Why the decisive probe failed, null when it was healthy.
  type: str
  returned: always
  sample: "no HTTP response within 2 s after connecting"
body:
  description:
    - Body of the decisive probe, parsed as JSON when possible, else its first 2 KB as text.
    - Null when the probe got no response.
  type: raw
  returned: always
latency_ms:
  description: Duration of the decisive probe (connect to end of body) in milliseconds.
  type: float
  returned: always
samples:
  description:
    - Statistics over every probe after the gate (the I(samples) burst and the soak probes).
    - Latency percentiles are over probes that got an HTTP response; null when none did.
  type: dict
  returned: always
  sample: {count: 5, failures: 1, error_rate: 0.2, p50_ms: 3.1, p95_ms: 9.8, max_ms: 9.8,
           statuses: {"200": 4, "503": 1}, states: {healthy: 4, unhealthy: 1}}
gate:
  description: The health gate; C(waited_s) is the time spent in it.
  type: dict
  returned: when wait_timeout > 0
  sample: {waited_s: 4.5, attempts: 10, passed: true}
soak:
  description:
    - The soak. C(first_failure) is null, or the seconds into the soak, the state and the status of
      the first failed probe.
  type: dict
  returned: when soak_seconds > 0
  sample: {seconds: 10.0, probes: 20, failures: 1, first_failure: {at_s: 3.5, state: refused, status: null}}
url:
  description: The probed URL.
  type: str
  returned: always
elapsed_s:
  description: Wall time of the whole check.
  type: float
  returned: always
"""

import base64
import http.client
import json
import math
import socket
import ssl
import time
from urllib.parse import unquote, urlsplit

from ansible.module_utils.basic import AnsibleModule

BODY_READ_MAX = 64 * 1024
BODY_TEXT_MAX = 2048
USER_AGENT = "pflow-ops-http-health/0.1"


class ModuleFailure(Exception):
    pass


class Target:
    def __init__(self, url: str, validate_certs: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModuleFailure(f"url {url!r}: expected http://host[:port]/path or https://...")
        try:
            port = parts.port
        except ValueError as exc:
            raise ModuleFailure(f"url {url!r}: {exc}") from exc
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": USER_AGENT,
                        "Accept": "application/json, */*", "Connection": "close"}
        if parts.username is not None:
            creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(creds).decode("ascii")
        self.ssl_context = None
        if self.https:
            self.ssl_context = ssl.create_default_context()
            if not validate_certs:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def probe(target: Target, timeout: float) -> dict:
    """One GET. Returns {state, status, reason, latency_ms, body} and never raises."""
    started = time.monotonic()
    out: dict = {"state": "error", "status": None, "reason": None, "latency_ms": None, "body": None}
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except socket.timeout:  # noqa: UP041 - not TimeoutError on target Pythons before 3.10
        out.update(state="timeout", reason=f"TCP connect timed out after {timeout:g} s")
    except ConnectionRefusedError:
        out.update(state="refused", reason=f"connection refused on {target.host}:{target.port}")
    except socket.gaierror as exc:
        out.update(reason=f"DNS lookup of {target.host} failed: {exc.strerror or exc}")
    except OSError as exc:
        out.update(reason=f"connect failed: {exc.strerror or exc}")
    else:
        _request(target, sock, started, timeout, out)
    out["latency_ms"] = _ms(time.monotonic() - started)
    return out


def _request(target: Target, sock: socket.socket, started: float, timeout: float, out: dict) -> None:
    conn = http.client.HTTPConnection(target.host, target.port)
    try:
        sock.settimeout(max(timeout - (time.monotonic() - started), 0.001))
        if target.ssl_context is not None:
            sock = target.ssl_context.wrap_socket(sock, server_hostname=target.host)
        conn.sock = sock  # already connected: HTTPConnection will not connect again
        conn.request("GET", target.path, headers=target.headers)
        response = conn.getresponse()
        raw = response.read(BODY_READ_MAX)
    except socket.timeout:  # noqa: UP041 - as above
        out.update(state="hung", reason=f"no HTTP response within {timeout:g} s after connecting")
    except ssl.SSLError as exc:
        out.update(reason=f"TLS error: {exc.reason or exc}")
    except http.client.RemoteDisconnected:  # a ConnectionResetError too: test it first
        out.update(reason="server closed the connection without a response")
    except ConnectionResetError:
        out.update(reason="connection reset by peer")
    except (OSError, http.client.HTTPException) as exc:
        out.update(reason=f"{type(exc).__name__}: {exc}")
    else:
        out.update(status=response.status, body=_body(raw))
    finally:
        conn.close()
        sock.close()


def _body(raw: bytes) -> object:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text[:BODY_TEXT_MAX]


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[max(math.ceil(q * len(sorted_values)) - 1, 0)]


def summarize(probes: list[dict]) -> dict:
    latencies = sorted(p["latency_ms"] for p in probes if p["status"] is not None)
    statuses: dict[str, int] = {}
    states: dict[str, int] = {}
    for p in probes:
        states[p["state"]] = states.get(p["state"], 0) + 1
        if p["status"] is not None:
            statuses[str(p["status"])] = statuses.get(str(p["status"]), 0) + 1
    failures = sum(1 for p in probes if p["state"] != "healthy")
    return {
        "count": len(probes),
        "failures": failures,
        "error_rate": round(failures / len(probes), 4) if probes else None,
        "p50_ms": _percentile(latencies, 0.5),
        "p95_ms": _percentile(latencies, 0.95),
        "max_ms": latencies[-1] if latencies else None,
        "statuses": statuses,
        "states": states,
    }


class Prober:
    def __init__(self, target: Target, timeout: float, expect: list[int]) -> None:
        self.target, self.timeout, self.expect = target, timeout, set(expect)
        self.last: dict | None = None
        self.last_failure: dict | None = None

    def __call__(self) -> dict:
        result = probe(self.target, self.timeout)
        if result["status"] is not None:
            if result["status"] in self.expect:
                result["state"] = "healthy"
            else:
                result.update(state="unhealthy", reason=f"HTTP {result['status']}, expected "
                              f"{', '.join(str(s) for s in sorted(self.expect))}")
        self.last = result
        if result["state"] != "healthy":
            self.last_failure = result
        return result


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run_gate(prober: Prober, wait_timeout: float, interval: float) -> dict:
    started = time.monotonic()
    deadline = started + wait_timeout
    attempts, passed = 0, False
    while True:
        attempt_at = time.monotonic()
        attempts += 1
        if prober()["state"] == "healthy":
            passed = True
            break
        if attempt_at + interval >= deadline:
            break
        _sleep_until(attempt_at + interval)
    return {"waited_s": round(time.monotonic() - started, 3), "attempts": attempts, "passed": passed}


def run_soak(prober: Prober, seconds: float, interval: float, probes: list[dict]) -> dict:
    started = time.monotonic()
    count, failures, first_failure = 0, 0, None
    while True:
        at = time.monotonic() - started
        if at >= seconds:
            break
        result = prober()
        probes.append(result)
        count += 1
        if result["state"] != "healthy":
            failures += 1
            if first_failure is None:
                first_failure = {"at_s": round(at, 3), "state": result["state"], "status": result["status"]}
        _sleep_until(started + count * interval)
    return {"seconds": seconds, "probes": count, "failures": failures, "first_failure": first_failure}


def validate(params: dict) -> None:
    if params["timeout"] <= 0:
        raise ModuleFailure("timeout must be > 0")
    if params["samples"] < 1:
        raise ModuleFailure("samples must be >= 1")
    if params["wait_timeout"] < 0 or params["soak_seconds"] < 0:
        raise ModuleFailure("wait_timeout and soak_seconds must be >= 0")
    if (params["wait_timeout"] > 0 or params["soak_seconds"] > 0) and params["interval"] < 0.01:
        raise ModuleFailure("interval must be >= 0.01 when wait_timeout or soak_seconds is set")
    if not params["expect_status"]:
        raise ModuleFailure("expect_status must list at least one status")


def run_module(params: dict) -> dict:
    started = time.monotonic()
    validate(params)
    target = Target(params["url"], params["validate_certs"])
    prober = Prober(target, params["timeout"], params["expect_status"])
    result: dict = {"changed": False, "url": params["url"]}
    probes: list[dict] = []
    gate_ok = True
    if params["wait_timeout"] > 0:
        result["gate"] = run_gate(prober, params["wait_timeout"], params["interval"])
        gate_ok = result["gate"]["passed"]
    if gate_ok:
        for _sample in range(params["samples"]):
            probes.append(prober())
    if params["soak_seconds"] > 0:
        if gate_ok:
            result["soak"] = run_soak(prober, params["soak_seconds"], params["interval"], probes)
        else:
            result["soak"] = {"seconds": 0.0, "probes": 0, "failures": 0, "first_failure": None}
    healthy = gate_ok and all(p["state"] == "healthy" for p in probes)
    decisive = prober.last if healthy else prober.last_failure
    if decisive is None:  # at least one probe always runs
        raise AssertionError("no probe ran")
    result.update(
        healthy=healthy,
        state=decisive["state"],
        status=decisive["status"],
        reason=decisive["reason"],
        body=decisive["body"],
        latency_ms=decisive["latency_ms"],
        samples=summarize(probes),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            timeout=dict(type="float", default=2.0),
            expect_status=dict(type="list", elements="int", default=[200]),
            samples=dict(type="int", default=1),
            wait_timeout=dict(type="float", default=0.0),
            interval=dict(type="float", default=0.5),
            soak_seconds=dict(type="float", default=0.0),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        result = run_module(module.params)
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
