# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP probes the way an on-call engineer sends them: one GET classified as healthy,
unhealthy, hung, refused, timeout or error; a health gate and a soak built on it. Shared by
http_health (the probe module, whose whole check is ``check`` here), backend_diagnose (RB-01's
investigation runs that check) and supervisor_program (whose restart gates on the service's
health while it watches the process it started)."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import base64
import http.client
import json
import math
import socket
import ssl
import time
from urllib.parse import unquote, urlsplit

from ansible_collections.pivotal.flow_ops.plugins.module_utils.port_owner import owner

BODY_READ_MAX = 64 * 1024
BODY_TEXT_MAX = 2048
USER_AGENT = "pflow-ops-http-health/0.1"


class ProbeError(Exception):
    """A bad URL or parameter: the caller fails its task with this message."""


class Target:
    def __init__(self, url: str, validate_certs: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeError(f"url {url!r}: expected http://host[:port]/path or https://...")
        try:
            port = parts.port
        except ValueError as exc:
            raise ProbeError(f"url {url!r}: {exc}") from exc
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
    except socket.timeout:  # not TimeoutError on target Pythons before 3.10
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
    except socket.timeout:  # as above
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


def _percentile(sorted_values: list[float], q: float):
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
        self.last = None  # type: dict | None
        self.last_failure = None  # type: dict | None

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


def run_gate(prober: Prober, wait_timeout: float, interval: float, watch=None) -> dict:
    """Probe every ``interval`` until one probe is healthy or ``wait_timeout`` passed.

    ``watch`` (optional) is called after every failed probe; it returns None while the process
    behind the endpoint lives and a sentence once it is gone, which ends the gate at once
    (``gone`` carries it): waiting out the timeout on a dead process tells nobody anything.
    """
    started = time.monotonic()
    deadline = started + wait_timeout
    attempts, passed, gone = 0, False, None
    while True:
        attempt_at = time.monotonic()
        attempts += 1
        if prober()["state"] == "healthy":
            passed = True
            break
        gone = watch() if watch is not None else None
        if gone or attempt_at + interval >= deadline:
            break
        _sleep_until(attempt_at + interval)
    return {"waited_s": round(time.monotonic() - started, 3), "attempts": attempts, "passed": passed,
            "gone": gone}


def run_soak(prober: Prober, seconds: float, interval: float, probes: list, watch=None) -> dict:
    """Probe every ``interval`` for ``seconds``; ``watch`` as in run_gate, checked after each
    probe (a soak that outlives its process is no soak)."""
    started = time.monotonic()
    count, failures, first_failure, gone = 0, 0, None, None
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
        gone = watch() if watch is not None else None
        if gone:
            break
        _sleep_until(started + count * interval)
    return {"seconds": seconds, "probes": count, "failures": failures, "first_failure": first_failure,
            "gone": gone}


def validate(params: dict) -> None:
    if params["timeout"] <= 0:
        raise ProbeError("timeout must be > 0")
    if params["samples"] < 1:
        raise ProbeError("samples must be >= 1")
    if params["wait_timeout"] < 0 or params["soak_seconds"] < 0:
        raise ProbeError("wait_timeout and soak_seconds must be >= 0")
    if (params["wait_timeout"] > 0 or params["soak_seconds"] > 0) and params["interval"] < 0.01:
        raise ProbeError("interval must be >= 0.01 when wait_timeout or soak_seconds is set")
    if not params["expect_status"]:
        raise ProbeError("expect_status must list at least one status")


def check(params: dict) -> dict:
    """http_health's whole check (gate, samples, soak, the decisive probe, the port's owner);
    the module's result. Raises ProbeError on bad parameters."""
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
            result["soak"] = {"seconds": 0.0, "probes": 0, "failures": 0, "first_failure": None, "gone": None}
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
        listener=(owner(target.port)
                  if params.get("port_owner") and decisive["state"] not in ("refused", "timeout", "error")
                  else None),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    return result
