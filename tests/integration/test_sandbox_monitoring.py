"""`sandbox up --monitoring` with real Prometheus, Alertmanager and exporters.

One monitored sandbox serves the module, started through the CLI with ``--no-receiver``: the
test stands up its own webhook on the receiver port and checks what Alertmanager sends there.
The rules are the shipped ``monitoring/rules``. Timings are printed (``pytest -s``), never
asserted.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pflow_ops.sandbox.procs import all_pids, cmdline, cwd, is_alive
from tests.integration.conftest import ROOT, Stack, running_stack

pytestmark = pytest.mark.integration
T = TypeVar("T")
ALERT = "RedisConnectionFailure"
SELF_ALERT = "PflowOpsReceiverDown"
RULES = ROOT / "monitoring" / "rules"


def _get(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = resp.read().decode()
    return json.loads(body) if body.lstrip().startswith(("{", "[")) else body


def _until(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except OSError:
            result = None
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.25)


@dataclass
class Hook:
    """A stand-in receiver: records every POST (arrival time, Authorization, JSON body)."""

    posts: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def matching(self, status: str, after: float) -> tuple[float, str, dict[str, Any]] | None:
        for post in list(self.posts):
            arrived, _, body = post
            names = {a["labels"].get("alertname") for a in body.get("alerts", [])}
            if arrived >= after and body.get("status") == status and ALERT in names:
                return post
        return None


def _serve(hook: Hook, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hook.posts.append((time.monotonic(), self.headers.get("Authorization", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Monitored:
    stack: Stack
    rules_dir: Path

    @property
    def mon(self) -> dict[str, Any]:
        data: dict[str, Any] = self.stack.endpoints["monitoring"]
        return data

    def prom(self, path: str, **query: str) -> Any:
        qs = f"?{urllib.parse.urlencode(query)}" if query else ""
        return _get(f"{self.mon['prometheus_url']}{path}{qs}")

    def up(self) -> None:
        start = time.monotonic()
        run = self.stack.cli(
            "sandbox", "up", "--monitoring", "--no-receiver", "--rules-dir", str(self.rules_dir)
        )
        assert run.rc == 0, run.stderr
        print(f"\n[timing] sandbox up --monitoring: {time.monotonic() - start:.1f}s")


@pytest.fixture(scope="module")
def ms() -> Iterator[Monitored]:
    start = time.monotonic()
    up_args = ("--monitoring", "--no-receiver", "--rules-dir", str(RULES))
    with running_stack("pfo-mon-", *up_args) as stack:
        print(f"\n[timing] sandbox up --monitoring: {time.monotonic() - start:.1f}s")
        yield Monitored(stack, RULES)


def test_prometheus_scrapes_loads_rules_and_knows_alertmanager(ms: Monitored) -> None:
    def all_up() -> dict[str, str] | None:
        targets = ms.prom("/api/v1/targets")["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if set(health.values()) == {"up"} and len(health) == 3 else None

    assert _until(all_up, 30, "three scrape targets up") == {
        "pivotal-backend": "up", "postgres": "up", "redis": "up",
    }  # fmt: skip
    groups = ms.prom("/api/v1/rules")["data"]["groups"]
    # The time-compressed copies under the sandbox dir, not the source files.
    assert {Path(g["file"]).parent for g in groups} == {Path(ms.mon["rules_dir"])}
    rules = {r["name"]: r for group in groups for r in group["rules"]}
    assert rules[ALERT]["health"] == "ok"
    assert rules[ALERT]["duration"] == 3  # `for: 1m` / 20
    # The receiver's own rules, offsets compressed with their ranges.
    assert rules[SELF_ALERT]["health"] == "ok" and rules[SELF_ALERT]["duration"] == 6  # 2m / 20
    assert "offset 45s" in rules["PflowOpsRunNeedsHuman"]["query"]  # 15m / 20
    assert _get(f"{ms.mon['alertmanager_url']}/-/ready").strip() == "OK"
    # Found within Prometheus' discovery throttle (5 s) of the reload that added the rules.
    active = _until(
        lambda: ms.prom("/api/v1/alertmanagers")["data"]["activeAlertmanagers"] or None,
        30,
        "Prometheus to find Alertmanager",
    )
    assert [a["url"] for a in active] == [f"{ms.mon['alertmanager_url']}/api/v2/alerts"]


# The Node.js alerts' inputs: prom-client's lag and heap, the backend's heap-limit gauge and the
# scrape timeout Prometheus exports with extra-scrape-metrics.
NODE_SERIES = (
    "nodejs_eventloop_lag_p99_seconds",
    "nodejs_heap_size_used_bytes",
    "pivotal_nodejs_heap_size_limit_bytes",
    "scrape_duration_seconds",
    "scrape_timeout_seconds",
)


def test_the_node_alerts_evaluate_on_the_backends_real_metrics(ms: Monitored) -> None:
    def scraped() -> dict[str, float] | None:
        found = {}
        for name in NODE_SERIES:
            result = ms.prom("/api/v1/query", query=f'{name}{{job="pivotal-backend"}}')
            values = [float(r["value"][1]) for r in result["data"]["result"]]
            if len(values) != 1:
                return None
            found[name] = values[0]
        return found

    series = _until(scraped, 30, "the backend's Node.js series")
    assert series["scrape_timeout_seconds"] == 1.0  # the sandbox's 1 s scrape
    # A healthy backend: the heap well below the old generation's limit, a live event loop.
    old_generation = series["pivotal_nodejs_heap_size_limit_bytes"] - 48 * 1024 * 1024
    assert 0 < series["nodejs_heap_size_used_bytes"] < 0.9 * old_generation
    assert 0 <= series["nodejs_eventloop_lag_p99_seconds"] < 0.5
    rules = {
        r["name"]: r for group in ms.prom("/api/v1/rules")["data"]["groups"] for r in group["rules"]
    }
    for name in ("BackendEventLoopBlocked", "BackendEventLoopLag", "BackendHeapNearLimit"):
        assert rules[name]["health"] == "ok", rules[name]
        assert rules[name]["state"] == "inactive", rules[name]


def test_endpoints_and_status_describe_the_stack(ms: Monitored) -> None:
    mon = ms.mon
    assert mon["time_factor"] == 20 and "5m -> 15s" in mon["time_compression"]
    token = Path(mon["receiver_token_file"])
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) >= 32
    for copy in Path(mon["rules_dir"]).glob("*.rules.yml"):
        assert "time-compressed x20" in copy.read_text().splitlines()[1]
    status = ms.stack.status()
    assert status["monitoring"]["programs"] == {
        "postgres_exporter": "RUNNING", "redis_exporter": "RUNNING", "prometheus": "RUNNING",
        "alertmanager": "RUNNING", "receiver": "STOPPED", "traffic": "RUNNING",
    }  # fmt: skip
    assert status["healthy"] is True
    text = ms.stack.cli("sandbox", "status").stdout
    assert mon["prometheus_url"] in text and "time-compressed x20" in text


def test_redis_down_fires_and_notifies_the_receiver(ms: Monitored) -> None:
    hook = Hook()
    server = _serve(hook, int(ms.mon["receiver_url"].rsplit(":", 1)[1]))
    token = Path(ms.mon["receiver_token_file"]).read_text().strip()
    query = f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}'
    try:
        broke = time.monotonic()
        assert ms.stack.cli("sandbox", "break", "redis-down").rc == 0
        _until(lambda: ms.prom("/api/v1/query", query=query)["data"]["result"] or None, 60,
               f"{ALERT} firing in Prometheus")  # fmt: skip
        fired = time.monotonic()
        arrived, auth, body = _until(lambda: hook.matching("firing", broke), 60, "webhook POST")
        assert auth == f"Bearer {token}"
        assert body["version"] == "4" and body["receiver"] == "pflow-ops"
        print(f"\n[timing] break redis-down -> {ALERT} firing: {fired - broke:.1f}s; "
              f"-> webhook POST: {arrived - broke:.1f}s")  # fmt: skip
        healed = time.monotonic()
        assert ms.stack.cli("sandbox", "heal").rc == 0
        resolved, _, _ = _until(lambda: hook.matching("resolved", healed), 60, "resolved POST")
        print(f"[timing] heal -> resolved POST: {resolved - healed:.1f}s")
    finally:
        server.shutdown()
        server.server_close()


def test_a_receiver_self_alert_goes_to_humans_not_to_the_webhook(ms: Monitored) -> None:
    """`--no-receiver`: no receiver target, so PflowOpsReceiverDown fires (absent), and the
    sandbox Alertmanager keeps it on the receiver without integrations."""

    def routed() -> list[dict[str, Any]] | None:
        alerts = _get(f"{ms.mon['alertmanager_url']}/api/v2/alerts")
        found = [a for a in alerts if a["labels"].get("alertname") == SELF_ALERT]
        return found or None

    (alert,) = _until(routed, 60, f"{SELF_ALERT} in Alertmanager")
    assert alert["labels"]["pflow_ops_self"] == "true" and "runbook" not in alert["labels"]
    assert [r["name"] for r in alert["receivers"]] == ["sre"]


def _ours(home: Path, pids: set[int]) -> set[int]:
    found = {pid for pid in pids if is_alive(pid)}
    root = str(home / "sandbox")
    for pid in all_pids():
        if is_alive(pid) and (root in cmdline(pid) or cwd(pid).startswith(root)):
            found.add(pid)
    return found - {os.getpid()}


def _program_pids(ms: Monitored) -> set[int]:
    return {int(p["pid"]) for p in ms.stack.status()["programs"].values() if p["pid"]}


def test_down_after_supervisord_died_leaves_no_process(ms: Monitored) -> None:
    pids = _program_pids(ms)
    assert len(pids) == 8  # everything but the receiver
    supervisord = int((ms.stack.home / "sandbox" / "run" / "supervisord.pid").read_text())
    os.kill(supervisord, signal.SIGKILL)  # the monitoring programs are orphaned, still running
    assert len(_ours(ms.stack.home, pids)) >= 8
    assert ms.stack.cli("sandbox", "down").rc == 0
    assert _ours(ms.stack.home, pids) == set()


def test_up_again_then_down_purge(ms: Monitored) -> None:
    state = json.loads((ms.stack.home / "sandbox" / "state.json").read_text())
    port = state["monitoring"]["ports"]["prometheus"]  # `down` keeps the state, ports included
    ms.up()  # the same ports again, and the TSDB of the first run kept
    assert ms.mon["prometheus_url"] == f"http://127.0.0.1:{port}"
    data = ms.stack.home / "sandbox" / "monitoring" / "prometheus-data"
    assert any(data.iterdir())
    pids = _program_pids(ms)
    assert ms.stack.cli("sandbox", "down", "--purge").rc == 0
    assert _ours(ms.stack.home, pids) == set()
    assert not data.exists()
