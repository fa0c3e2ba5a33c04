"""Detached helper holding the sessions of a database fault open after `sandbox break` returns.

Run as ``python -m pflow_ops.sandbox.db_load FAULT SANDBOX_DIR [--count N]``; it reads the app
role's password from the sandbox state (never from its command line) and appends one line per
event to ``<sandbox>/loaders/db-FAULT.events`` ("ready", "cancelled", "update committed", ...),
so the fault module knows when the fault is in place and tests can see what the sessions lived
through. It exits when its sessions are gone or on SIGTERM (`sandbox heal` / `down`).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg2
from psycopg2.extensions import connection as PgConnection

from pflow_ops.sandbox import render
from pflow_ops.sandbox.layout import Layout, load_state

# What the sessions look like in pg_stat_activity: application sessions, not the tool's own.
APP_NAMES = {
    "db-long-query": "pivotal-flow-reports",
    "db-idle-in-tx": "pivotal-flow-worker",
    "db-connections": "pivotal-flow-worker",
    "backend-db-slow": "pivotal-flow-batch",
}
SLOW_LOCK_SECONDS = 1.5
"""backend-db-slow: how long each exclusive lock on items is held (above RB-01's p95 limit)."""
BLOCKED_APP = "pivotal-flow-api"
LOCKED_ROW = 1


def events_file(root: Path, fault: str) -> Path:
    return root / "loaders" / f"{fault}.events"


class Helper:
    def __init__(self, root: Path, fault: str) -> None:
        layout = Layout(root, os.geteuid() == 0)
        state = load_state(layout)
        if state is None:
            raise SystemExit(f"no sandbox state under {root}")
        self.dsn = render.pg_dsn(state, render.PG_APP_USER, state.app_password)
        self.events = events_file(root, fault)
        self.fault = fault

    def event(self, text: str) -> None:
        with self.events.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    def connect(self, app: str) -> PgConnection:
        conn = psycopg2.connect(self.dsn, connect_timeout=5, application_name=app)
        conn.autocommit = True
        return conn


def _alive(conn: PgConnection) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except psycopg2.Error:
        return False


def long_query(helper: Helper) -> None:
    conn = helper.connect(APP_NAMES["db-long-query"])
    helper.event("ready")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(3600) /* nightly revenue report */")
    except psycopg2.errors.QueryCanceled:
        helper.event("cancelled")
    except psycopg2.Error:
        helper.event("terminated")
        return
    # A cancelled report leaves its session idle, as a real pool would.
    while _alive(conn):
        time.sleep(2.0)
    helper.event("terminated")


def idle_in_tx(helper: Helper) -> None:
    holder = helper.connect(APP_NAMES["db-idle-in-tx"])
    holder.autocommit = False
    with holder.cursor() as cur:
        # The forgotten transaction: took a row lock, then the worker went off to call an API.
        cur.execute("SELECT id FROM items WHERE id = %s FOR UPDATE", (LOCKED_ROW,))
    blocked = helper.connect(BLOCKED_APP)
    done = threading.Event()

    def update() -> None:
        try:
            with blocked.cursor() as cur:
                cur.execute("UPDATE items SET updated_at = now() WHERE id = %s", (LOCKED_ROW,))
            helper.event("update committed")
        except psycopg2.Error as exc:
            helper.event(f"update failed: {' '.join(str(exc).split())}")
        done.set()

    threading.Thread(target=update, daemon=True).start()
    _wait_blocked(helper)
    helper.event("ready")
    done.wait()
    while not holder.closed and _holder_alive(holder):
        time.sleep(1.0)
    helper.event("holder ended")


def _holder_alive(conn: PgConnection) -> bool:
    # Poll the socket without sending a query: a terminated session shows up as an error here.
    try:
        conn.poll()
        return True
    except psycopg2.Error:
        return False


def _wait_blocked(helper: Helper, timeout: float = 10.0) -> None:
    probe = helper.connect("pivotal-flow-probe")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with probe.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = %s AND wait_event_type = 'Lock'",
                    (BLOCKED_APP,),
                )
                row = cur.fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    finally:
        probe.close()


def db_slow(helper: Helper) -> None:
    """A batch job that keeps locking items: every read of the table waits up to
    SLOW_LOCK_SECONDS, so the backend is slow while its own process is fine."""
    conn = helper.connect(APP_NAMES["backend-db-slow"])
    helper.event("ready")
    while True:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            cur.execute("SELECT pg_sleep(%s)", (SLOW_LOCK_SECONDS,))
            cur.execute("COMMIT")
        time.sleep(0.02)


def connections(helper: Helper, count: int) -> None:
    conns = [helper.connect(APP_NAMES["db-connections"]) for _ in range(count)]
    helper.event(f"ready {len(conns)}")
    while True:
        time.sleep(2.0)
        if not any(_holder_alive(c) for c in conns):
            helper.event("all sessions ended")
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pflow_ops.sandbox.db_load")
    parser.add_argument("fault", choices=sorted(APP_NAMES))
    parser.add_argument("sandbox_dir", type=Path)
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args(argv)
    helper = Helper(args.sandbox_dir, args.fault)
    try:
        if args.fault == "db-long-query":
            long_query(helper)
        elif args.fault == "db-idle-in-tx":
            idle_in_tx(helper)
        elif args.fault == "backend-db-slow":
            db_slow(helper)
        else:
            connections(helper, args.count)
    except psycopg2.Error as exc:
        helper.event(f"error: {' '.join(str(exc).split())}")
        return 1
    # Stay until heal stops us, so the loader bookkeeping always finds a live process.
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
