"""RB-02 sandbox faults: each leaves PostgreSQL in a state the database runbook must find and fix.

Faults that need open sessions (a long query, a forgotten transaction, a full pool) run them in
a detached helper (:mod:`pflow_ops.sandbox.db_load`, started through :mod:`loaders`), so they
outlive `sandbox break`. Faults made of objects (a never-analysed table, an invalid index) are
plain SQL, run as the app role so the objects belong to the application, as in production.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
from psycopg2.extensions import connection as PgConnection

from pflow_ops.sandbox import db_load, loaders, postgres, render
from pflow_ops.sandbox.control import Context
from pflow_ops.sandbox.errors import SandboxError

STALE_TABLE = "sandbox_events"
STALE_ROWS = 20000
INDEX_TABLE = "sandbox_accounts"
INVALID_INDEX = "sandbox_accounts_email_key"
# Slots left free by db-connections: the monitoring role is not a superuser, so on PostgreSQL 15
# (no reserved_connections) it needs spare non-reserved slots to diagnose and remediate.
SPARE_SLOTS = 3

FAULTS: dict[str, str] = {
    "db-long-query": "a report query (pg_sleep 3600) by the app role runs past the runaway limit",
    "db-idle-in-tx": "a worker holds a row lock idle in transaction; an API update waits on it",
    "db-connections": f"idle app sessions fill the pool up to {SPARE_SLOTS} free usable slots",
    "db-stale-stats": f"{STALE_TABLE}: {STALE_ROWS} rows never analysed, autovacuum off on it",
    "db-invalid-index": (
        f"{INVALID_INDEX}: invalid unique index (failed CREATE INDEX CONCURRENTLY) plus a "
        "_ccnew leftover; the duplicates are cleaned up since, so a rebuild succeeds"
    ),
}


def wait_event(ctx: Context, fault: str, prefix: str, timeout: float = 15.0) -> str:
    return wait_helper_event(ctx.layout.root, fault, prefix, timeout)


def wait_helper_event(root: Path, fault: str, prefix: str, timeout: float = 15.0) -> str:
    """The first line of the load helper's events file that starts with ``prefix``."""
    path = db_load.events_file(root, fault)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for line in lines:
            if line.startswith(prefix):
                return line
            if line.startswith("error"):
                raise SandboxError(f"{fault}: load helper failed: {line}")
        time.sleep(0.05)
    raise SandboxError(f"{fault}: the load helper was not ready within {timeout:g}s")


def _spawn(ctx: Context, fault: str, *args: str) -> int:
    db_load.events_file(ctx.layout.root, fault).unlink(missing_ok=True)
    argv = loaders.python_module("pflow_ops.sandbox.db_load", fault, str(ctx.layout.root), *args)
    return loaders.spawn(ctx.layout, fault, argv)


def _app_db(ctx: Context) -> PgConnection:
    conn = postgres.superuser(ctx.state, render.PG_DATABASE)
    with conn.cursor() as cur:
        cur.execute(f'SET ROLE "{render.PG_APP_USER}"')
    return conn


def _long_query(ctx: Context) -> str:
    ctx.running_pid("postgres")
    pid = _spawn(ctx, "db-long-query")
    wait_event(ctx, "db-long-query", "ready")
    time.sleep(0.3)  # the query is sent right after "ready"
    return f"started a pg_sleep(3600) report query as {render.PG_APP_USER} (helper pid {pid})"


def _idle_in_tx(ctx: Context) -> str:
    ctx.running_pid("postgres")
    pid = _spawn(ctx, "db-idle-in-tx")
    wait_event(ctx, "db-idle-in-tx", "ready")
    return (
        f"a {db_load.APP_NAMES['db-idle-in-tx']} session holds items row {db_load.LOCKED_ROW} "
        f"FOR UPDATE idle in transaction; a {db_load.BLOCKED_APP} UPDATE waits (helper pid {pid})"
    )


def _connections(ctx: Context) -> str:
    ctx.running_pid("postgres")
    conn = postgres.superuser(ctx.state)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int,"
                " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            )
            usable, used = cur.fetchone() or (0, 0)
    finally:
        conn.close()
    count = int(usable) - int(used) - SPARE_SLOTS + 1  # our own superuser session just closed
    if count <= 0:
        raise SandboxError(f"db-connections: only {usable - used} slots free, nothing to fill")
    _spawn(ctx, "db-connections", "--count", str(count))
    wait_event(ctx, "db-connections", "ready")
    return (
        f"opened {count} idle {render.PG_APP_USER} sessions: {SPARE_SLOTS} of {usable} slots free"
    )


def _stale_stats(ctx: Context) -> str:
    conn = _app_db(ctx)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {STALE_TABLE}")
            cur.execute(
                f"CREATE TABLE {STALE_TABLE} (id bigint PRIMARY KEY, kind text NOT NULL,"
                " payload text NOT NULL) WITH (autovacuum_enabled = false)"
            )
            cur.execute(
                f"INSERT INTO {STALE_TABLE} SELECT g, 'kind-' || (g %% 7), md5(g::text)"
                " FROM generate_series(1, %s) g",
                (STALE_ROWS,),
            )
    finally:
        conn.close()  # flushes the table statistics (n_mod_since_analyze)
    return f"created {STALE_TABLE} with {STALE_ROWS} rows never analysed (autovacuum off on it)"


def _invalid_index(ctx: Context) -> str:
    conn = _app_db(ctx)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {INDEX_TABLE}")
            cur.execute(f"CREATE TABLE {INDEX_TABLE} (id bigint PRIMARY KEY, email text NOT NULL)")
            cur.execute(
                f"INSERT INTO {INDEX_TABLE} SELECT g, 'user' || (g % 1995) || '@example.com'"
                " FROM generate_series(1, 2000) g"
            )
            for statement in (
                f"CREATE UNIQUE INDEX CONCURRENTLY {INVALID_INDEX} ON {INDEX_TABLE} (email)",
                f"REINDEX INDEX CONCURRENTLY {INVALID_INDEX}",  # leaves <index>_ccnew
            ):
                with contextlib.suppress(psycopg2.errors.UniqueViolation):
                    cur.execute(statement)
            cur.execute(
                f"DELETE FROM {INDEX_TABLE} a USING {INDEX_TABLE} b"
                " WHERE a.email = b.email AND a.id > b.id"
            )
    finally:
        conn.close()
    return f"left {INVALID_INDEX} invalid (and its _ccnew leftover); duplicates since removed"


BREAKERS: dict[str, Callable[[Context], str]] = {
    "db-long-query": _long_query,
    "db-idle-in-tx": _idle_in_tx,
    "db-connections": _connections,
    "db-stale-stats": _stale_stats,
    "db-invalid-index": _invalid_index,
}


def _drop_tables(ctx: Context) -> list[str]:
    try:
        conn = postgres.superuser(ctx.state, render.PG_DATABASE)
    except psycopg2.Error:
        return []  # PostgreSQL down: the start that heal does first will have reported it
    actions = []
    try:
        with conn.cursor() as cur:
            for table in (STALE_TABLE, INDEX_TABLE):
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                row = cur.fetchone()
                if row and row[0]:
                    cur.execute(f"DROP TABLE {table}")
                    actions.append(f"dropped {table}")
    finally:
        conn.close()
    return actions


def heal(ctx: Context) -> list[str]:
    """Stop the db load helpers (their sessions end with them) and drop the fault tables."""
    actions = loaders.stop(ctx.layout, prefix="db-")
    for fault in ("db-long-query", "db-idle-in-tx", "db-connections"):
        db_load.events_file(ctx.layout.root, fault).unlink(missing_ok=True)
    return actions + _drop_tables(ctx)
