"""alert_status against stdlib HTTP servers that answer like Prometheus and Alertmanager."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.plugins import load_plugin

mod = load_plugin("alert_status")


class FakeMonitoring(ThreadingHTTPServer):
    """Prometheus (/api/v1/alerts) and Alertmanager (/api/v2/alerts) on one port; the test
    flips ``firing_until`` to make the alert resolve at a chosen time."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.firing_until = float("inf")
        self.labels = {"alertname": "RedisHighEvictions", "service": "cache", "env": "local"}
        self.fingerprint = "0a1b2c3d4e5f6789"
        self.am_queries: list[dict[str, list[str]]] = []
        self.broken = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def firing(self) -> bool:
        return time.monotonic() < self.firing_until


class Handler(BaseHTTPRequestHandler):
    server: FakeMonitoring

    def do_GET(self) -> None:
        srv = self.server
        parts = urlsplit(self.path)
        if srv.broken:
            self._send(500, "boom")
        elif parts.path == "/api/v1/alerts":
            alerts = [{"labels": srv.labels, "state": "firing"}] if srv.firing() else []
            self._send(200, {"status": "success", "data": {"alerts": alerts}})
        elif parts.path == "/api/v2/alerts":
            srv.am_queries.append(parse_qs(parts.query))
            alerts: list[dict[str, Any]] = []
            if srv.firing():
                alerts.append(
                    {
                        "labels": srv.labels,
                        "fingerprint": srv.fingerprint,
                        "status": {"state": "active"},
                    }
                )
            self._send(200, alerts)
        else:
            self._send(404, "no")

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def monitoring() -> Iterator[FakeMonitoring]:
    srv = FakeMonitoring()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


class FakeModule:
    def __init__(self, check_mode: bool = False, **params: Any) -> None:
        self.check_mode = check_mode
        self.params = {
            "alertname": "RedisHighEvictions",
            "fingerprint": None,
            "matchers": {},
            "prometheus_url": None,
            "alertmanager_url": None,
            "bearer_token": None,
            "wait_timeout": 0.0,
            "interval": 0.1,
            "request_timeout": 2.0,
            "validate_certs": True,
            **params,
        }


def test_resolves_once_both_sources_stop_reporting_the_alert(monitoring: FakeMonitoring) -> None:
    monitoring.firing_until = time.monotonic() + 0.5
    result = mod.run(
        FakeModule(prometheus_url=monitoring.url, alertmanager_url=monitoring.url, wait_timeout=10)
    )
    assert result["state"] == "resolved"
    assert result["looks"] >= 2
    assert 0.4 <= result["waited_s"] < 10
    assert "resolved in prometheus and alertmanager" in result["detail"]
    # Alertmanager is asked for that alert by name, server side.
    assert monitoring.am_queries[-1]["filter"] == ['alertname="RedisHighEvictions"']
    assert result["changed"] is False


def test_still_firing_at_the_deadline_is_a_result_not_a_failure(
    monitoring: FakeMonitoring,
) -> None:
    result = mod.run(FakeModule(prometheus_url=monitoring.url, wait_timeout=0.5, interval=0.1))
    assert result["state"] == "firing"
    assert result["active"][0]["source"] == "prometheus"
    assert "still active in prometheus" in result["detail"]


def test_check_mode_looks_once_without_waiting(monitoring: FakeMonitoring) -> None:
    result = mod.run(FakeModule(check_mode=True, prometheus_url=monitoring.url, wait_timeout=30))
    assert result["state"] == "firing"
    assert result["looks"] == 1


def test_matchers_and_fingerprint_select_the_alert(monitoring: FakeMonitoring) -> None:
    other_env = FakeModule(prometheus_url=monitoring.url, matchers={"env": "prod"})
    assert mod.run(other_env)["state"] == "resolved"
    same_env = FakeModule(prometheus_url=monitoring.url, matchers={"env": "local"})
    assert mod.run(same_env)["state"] == "firing"
    other_alert = FakeModule(alertmanager_url=monitoring.url, fingerprint="ffff")
    assert mod.run(other_alert)["state"] == "resolved"
    this_alert = FakeModule(alertmanager_url=monitoring.url, fingerprint=monitoring.fingerprint)
    assert mod.run(this_alert)["state"] == "firing"


def test_an_unreadable_source_is_unknown_never_resolved(monitoring: FakeMonitoring) -> None:
    monitoring.broken = True
    result = mod.run(FakeModule(prometheus_url=monitoring.url, alertmanager_url=monitoring.url))
    assert result["state"] == "unknown"
    assert set(result["errors"]) == {"prometheus", "alertmanager"}
    closed = FakeModule(prometheus_url="http://127.0.0.1:9", wait_timeout=0)
    assert mod.run(closed)["state"] == "unknown"


def test_pending_counts_as_active_and_other_names_do_not() -> None:
    payload = {
        "status": "success",
        "data": {
            "alerts": [
                {"labels": {"alertname": "RedisHighEvictions"}, "state": "pending"},
                {"labels": {"alertname": "CacheLowHitRate"}, "state": "firing"},
            ]
        },
    }
    active = mod.prometheus_active(payload, "RedisHighEvictions", {})
    assert [a["state"] for a in active] == ["pending"]
    with pytest.raises(mod.SourceError):
        mod.prometheus_active({"status": "error"}, "RedisHighEvictions", {})
    with pytest.raises(mod.SourceError):
        mod.alertmanager_active({"not": "a list"}, "RedisHighEvictions", {}, None)
