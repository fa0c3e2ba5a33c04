"""A Python stand-in for the Pivotal Flow backend, kept only for the fleet tests.

The sandbox runs the Node.js reference backend (``node_backend/server.js``); this program serves
the same endpoints and is used only by tests/integration/fleet.py (the 20-backend fleet tests and
bench/fleet_diagnose.py), which measure RB-01 over many hosts rather than Node.js failure modes.

Run as ``python -m pflow_ops.sandbox.backend --port N --pg-dsn DSN --redis-url URL``.
Fault hooks are signals, so nothing on the HTTP surface can be abused: SIGUSR1 makes a share of
``/api/*`` requests fail with 500 (``/health`` keeps passing, as in real incidents), SIGUSR2
stops that, SIGTERM shuts down cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pflow_ops.sandbox.metrics import CONTENT_TYPE, Metrics
from pflow_ops.sandbox.pgpool import PgPool, PoolExhausted

LOG = logging.getLogger("pivotal-flow-backend")
DSN_ENV = "PFLOW_BACKEND_PG_DSN"
DB_ERRORS = (psycopg2.Error, PoolExhausted)
ITEM_COLUMNS = "id, name, description, price_cents, updated_at::text AS updated_at"


class DependencyDown(Exception):
    """PostgreSQL could not answer; the API turns this into a 503."""


class App:
    """Shared state of the service: pools, metrics, and the error-mode switch."""

    def __init__(self, pg_dsn: str, redis_url: str, error_rate: float, cache_ttl: int) -> None:
        self.started = time.time()
        self.metrics = Metrics(self.started)
        self.pool = PgPool(pg_dsn)
        # Fail fast: redis-py's default retries with back-off would stall /health for seconds.
        self.redis = redis.Redis.from_url(
            redis_url,
            socket_timeout=1,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self.error_rate = error_rate
        self.cache_ttl = cache_ttl
        self.error_mode = threading.Event()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run ``sql``, retrying once: a pooled connection may predate a database restart."""
        for attempt in (1, 2):
            try:
                with self.pool.connection() as conn, conn.cursor() as cur:
                    cur.execute(sql, params)
                    names = [col.name for col in cur.description or ()]
                    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            except DB_ERRORS as exc:
                if attempt == 2 or isinstance(exc, PoolExhausted):
                    raise DependencyDown(_one_line(exc)) from exc
        raise AssertionError("unreachable")

    def check(self, probe: Callable[[], object]) -> dict[str, Any]:
        start = time.perf_counter()
        error: str | None = None
        try:
            probe()
        except (DependencyDown, redis.RedisError, OSError) as exc:
            error = _one_line(exc)
        latency = round((time.perf_counter() - start) * 1000, 3)
        return {"ok": error is None, "latency_ms": latency, "error": error}

    def health(self) -> tuple[int, dict[str, Any]]:
        checks = {
            "postgres": self.check(lambda: self.query("SELECT 1")),
            "redis": self.check(self.redis.ping),
        }
        healthy = all(c["ok"] for c in checks.values())
        body = {
            "status": "ok" if healthy else "degraded",
            "checks": checks,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
        }
        return (200 if healthy else 503), body

    def item(self, item_id: int) -> dict[str, Any] | None:
        """Read-through cache: Redis first, PostgreSQL on a miss, then populate Redis."""
        key = f"item:{item_id}"
        try:
            cached = self.redis.get(key)
        except redis.RedisError:
            self.metrics.cache_lookup("error")
            cached = None
        else:
            self.metrics.cache_lookup("hit" if cached is not None else "miss")
        if isinstance(cached, str):
            loaded: dict[str, Any] = json.loads(cached)
            return loaded
        rows = self.query(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = %s", (item_id,))
        if not rows:
            return None
        # Serving from the database is the degraded-but-working path: a failed SETEX is fine.
        with contextlib.suppress(redis.RedisError):
            self.redis.setex(key, self.cache_ttl, json.dumps(rows[0]))
        return rows[0]

    def items(self, limit: int, offset: int) -> list[dict[str, Any]]:
        sql = f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id LIMIT %s OFFSET %s"
        return self.query(sql, (limit, offset))

    def injected_failure(self) -> bool:
        return self.error_mode.is_set() and random.random() < self.error_rate

    def close(self) -> None:
        self.pool.close()
        self.redis.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Server(ThreadingHTTPServer):
    daemon_threads = True
    app: App


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "pivotal-flow-backend/1.0"

    def do_GET(self) -> None:
        start = time.perf_counter()
        parts = urlsplit(self.path)
        route, status, body, ctype = self._dispatch(parts.path, parse_qs(parts.query))
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        elapsed = time.perf_counter() - start
        self.server.app.metrics.observe("GET", route, status, elapsed)
        LOG.info("GET %s %d %.1fms", self.path, status, elapsed * 1000)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # do_GET logs one line per request itself, with status and latency

    def _dispatch(self, path: str, query: dict[str, list[str]]) -> tuple[str, int, str, str]:
        app = self.server.app
        if path == "/health":
            status, health = app.health()
            return "/health", status, json.dumps(health), "application/json"
        if path == "/metrics":
            return "/metrics", 200, app.metrics.render(), CONTENT_TYPE
        if path == "/api/items" or path.startswith("/api/items/"):
            route = "/api/items" if path == "/api/items" else "/api/items/:id"
            status, data = self._api(path, query)
            return route, status, json.dumps(data), "application/json"
        return "unmatched", 404, json.dumps({"error": "not found"}), "application/json"

    def _api(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        app = self.server.app
        if app.injected_failure():
            return 500, {"error": "internal server error"}
        try:
            if path == "/api/items":
                limit = min(max(_int_arg(query, "limit", 20), 1), 100)
                return 200, {"items": app.items(limit, max(_int_arg(query, "offset", 0), 0))}
            raw_id = path.removeprefix("/api/items/")
            if not raw_id.isdigit():
                return 404, {"error": "not found"}
            item = app.item(int(raw_id))
        except DependencyDown as exc:
            return 503, {"error": f"database unavailable: {exc}"}
        return (200, item) if item is not None else (404, {"error": "not found"})


def _int_arg(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    try:
        return int(values[0]) if values else default
    except ValueError:
        return default


def _install_signals(server: Server) -> None:
    app = server.app

    def later(fn: Callable[[], None]) -> None:
        # Handlers run between bytecodes of the main thread; do the work (logging takes locks,
        # shutdown() blocks until serve_forever returns) on a fresh thread instead.
        threading.Thread(target=fn, daemon=True).start()

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        app.error_mode.set()
        share = 100 * app.error_rate
        later(lambda: LOG.warning("error mode ON: %.0f%% of /api requests fail", share))

    def on_usr2(signum: int, frame: FrameType | None) -> None:
        app.error_mode.clear()
        later(lambda: LOG.warning("error mode OFF"))

    def on_term(signum: int, frame: FrameType | None) -> None:
        later(lambda: LOG.info("received %s, shutting down", signal.Signals(signum).name))
        later(server.shutdown)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pflow_ops.sandbox.backend")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--pg-dsn", default=os.environ.get(DSN_ENV), help=f"default: ${DSN_ENV}")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--error-rate", type=float, default=0.5, help="share failing on SIGUSR1")
    parser.add_argument("--cache-ttl", type=int, default=60, help="seconds")
    args = parser.parse_args(argv)
    if not args.pg_dsn:
        parser.error(f"--pg-dsn or ${DSN_ENV} is required")
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error("--error-rate must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        server = Server((args.host, args.port), Handler)
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", args.host, args.port, exc.strerror)
        return 2
    server.app = App(args.pg_dsn, args.redis_url, args.error_rate, args.cache_ttl)
    _install_signals(server)
    LOG.info("listening on http://%s:%d (pid %d)", args.host, args.port, os.getpid())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.app.close()
        LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
