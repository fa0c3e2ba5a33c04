"""The reference backend with its dependencies unreachable: fast failures, fault signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pflow_ops.sandbox import backend
from pflow_ops.sandbox.net import http_get

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dead_deps() -> tuple[str, str]:
    return (
        f"postgresql://nobody:x@127.0.0.1:{_free_port()}/nothing",
        f"redis://127.0.0.1:{_free_port()}/0",
    )


@pytest.fixture
def server() -> Iterator[backend.Server]:
    dsn, redis_url = _dead_deps()
    srv = backend.Server(("127.0.0.1", 0), backend.Handler)
    srv.app = backend.App(dsn, redis_url, error_rate=1.0, cache_ttl=60)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        thread.join()
        srv.server_close()
        srv.app.close()


def test_health_fails_fast_and_names_both_dependencies(server: backend.Server) -> None:
    start = time.monotonic()
    result = http_get(server.server_port, "/health", timeout=5)
    assert time.monotonic() - start < 3
    assert result.status == 503
    body = result.json()
    assert body is not None and body["status"] == "degraded"
    assert body["pid"] == os.getpid() and body["uptime_s"] >= 0
    for name in ("postgres", "redis"):
        check = body["checks"][name]
        assert check["ok"] is False and check["error"] and check["latency_ms"] >= 0


def test_api_degrades_to_503_and_error_mode_to_500(server: backend.Server) -> None:
    port = server.server_port
    assert http_get(port, "/api/items/1").status == 503
    assert http_get(port, "/api/items/abc").status == 404
    assert http_get(port, "/nowhere").status == 404
    server.app.error_mode.set()
    assert {http_get(port, "/api/items/1").status for _ in range(5)} == {500}
    assert http_get(port, "/health").status == 503  # error mode leaves /health alone
    metrics = http_get(port, "/metrics")
    assert metrics.status == 200
    assert 'http_requests_total{method="GET",route="/api/items/:id",status="500"} 5' in metrics.body
    assert 'route="unmatched",status="404"' in metrics.body
    assert 'pivotal_cache_hit_rate{cache_type="redis"} 0' in metrics.body


def test_signals_toggle_error_mode_and_sigterm_exits_cleanly() -> None:
    dsn, redis_url = _dead_deps()
    port = _free_port()
    argv = [sys.executable, "-m", "pflow_ops.sandbox.backend", "--port", str(port)]
    argv += ["--redis-url", redis_url, "--error-rate", "1"]
    env = {**os.environ, backend.DSN_ENV: dsn, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while http_get(port, "/health", timeout=1).status is None:
            assert time.monotonic() < deadline, "backend did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        assert http_get(port, "/api/items/1").status == 500
        proc.send_signal(signal.SIGUSR2)
        time.sleep(0.2)
        assert http_get(port, "/api/items/1").status == 503
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        out = proc.communicate()[0].decode()
    assert "error mode ON" in out and "error mode OFF" in out and "stopped" in out
    assert "GET /api/items/1 500" in out


def test_a_dsn_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backend.DSN_ENV, raising=False)
    with pytest.raises(SystemExit) as exc:
        backend.parse_args(["--port", "1"])
    assert exc.value.code == 2
