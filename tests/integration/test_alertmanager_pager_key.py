"""The PagerDuty sink's dedup_key is the one Alertmanager's own PagerDuty notifier sends, checked
against a real Alertmanager (Debian's prometheus-alertmanager): one alert group goes to a
pflow-ops webhook route (``continue: true``, as in monitoring/alertmanager/production.example.yml)
and to a pager route whose ``pagerduty_configs`` URL is a local recording endpoint. The group key
the webhook carries, rewritten with the pager route's key (the sink's ``alertmanager_route_key``),
hashes to the dedup_key Alertmanager sent; without the route key it does not (another route, another
group key): that is why the option exists."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.sandbox.net import free_ports
from tests.plugins import load_plugin

saas = load_plugin("incident_saas", kind="module_utils")

pytestmark = pytest.mark.integration

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
PAGER_ROUTE = '{}/{severity=~"critical|high"}'


class _Recorder(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.posts.append((self.path, json.loads(body or b"{}")))
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "success", "dedup_key": "x"}')

    def log_message(self, *args: Any) -> None:
        pass


def _config(recorder: str) -> str:
    return f"""
route:
  receiver: chat
  group_by: [alertname, env, service]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - receiver: pflow-ops
      matchers: ['alertname=~"RedisConnectionFailure|BackendServiceDown"']
      continue: true
    - receiver: oncall-pager
      matchers: ['severity=~"critical|high"']
    - receiver: chat
receivers:
  - name: pflow-ops
    webhook_configs: [{{url: "{recorder}/pflow-ops", send_resolved: false}}]
  - name: oncall-pager
    pagerduty_configs: [{{routing_key: not-a-real-key, url: "{recorder}/v2/enqueue",
                          send_resolved: false}}]
  - name: chat
    webhook_configs: [{{url: "{recorder}/chat", send_resolved: false}}]
"""


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    posts: list[tuple[str, dict[str, Any]]] = []
    handler = type("Recorder", (_Recorder,), {"posts": posts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", posts
    finally:
        server.shutdown()
        server.server_close()


def test_the_pager_routes_dedup_key_is_derived_from_the_webhooks_group_key(
    tmp_path: Path, recorder: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, posts = recorder
    config = tmp_path / "alertmanager.yml"
    config.write_text(_config(url))
    (port,) = free_ports(1)
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        labels = {"alertname": "RedisConnectionFailure", "env": "prod", "service": "cache",
                  "severity": "critical", "instance": "redis-1:6379"}  # fmt: skip
        body = json.dumps([{"labels": labels}]).encode()
        deadline = time.monotonic() + 60
        while True:  # posted once Alertmanager listens
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v2/alerts",
                    body,
                    {"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=5) as resp:
                    assert resp.status == 200
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
                assert time.monotonic() < deadline, "Alertmanager did not take the alert"
                time.sleep(0.2)
        deadline = time.monotonic() + 60
        while {p for p, _ in posts} < {"/pflow-ops", "/v2/enqueue"}:
            assert time.monotonic() < deadline, f"notifications not received: {posts}"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

    (webhook,) = [b for p, b in posts if p == "/pflow-ops"]
    (page,) = [b for p, b in posts if p == "/v2/enqueue"]
    group_key = webhook["groupKey"]
    assert page["dedup_key"] == saas.dedup_key({}, group_key, "INC-1", PAGER_ROUTE)
    # Without the pager route's key the page would be another incident: that is the option's reason.
    assert page["dedup_key"] != saas.dedup_key({}, group_key, "INC-1")
