"""PostgreSQL: one-time initdb, the sandbox configuration, and the idempotent bootstrap SQL."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from pflow_ops.sandbox import render
from pflow_ops.sandbox.errors import SandboxError
from pflow_ops.sandbox.layout import PRIVILEGED_PG_BASE, Layout, SandboxState
from pflow_ops.sandbox.tools import uid_gid

INCLUDE_FILE = "pflow_sandbox.conf"
SEED_ROWS = 300


def _owned_dir(path: Path, uid: int, gid: int) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    path.chmod(0o700)


def _write_owned(path: Path, text: str, uid: int, gid: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.chown(path, uid, gid)
    path.chmod(0o600)


def prepare_dirs(layout: Layout, state: SandboxState) -> None:
    uid, gid = uid_gid(state.service_user)
    if layout.privileged:
        PRIVILEGED_PG_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
    _owned_dir(layout.pg_parent, uid, gid)
    _owned_dir(layout.pg_socket_dir, uid, gid)


def _check_version(layout: Layout, state: SandboxState) -> bool:
    """True when an initialised data dir exists for this major version; False when none exists."""
    marker = layout.pg_data / "PG_VERSION"
    if not marker.is_file():
        if layout.pg_data.exists():
            shutil.rmtree(layout.pg_data)  # a half-finished initdb: start over
        return False
    have = marker.read_text().strip()
    if have != state.pg_version.split(".")[0]:
        raise SandboxError(
            f"{layout.pg_data} holds PostgreSQL {have} data but the binaries are "
            f"{state.pg_version}; run `pflow-ops sandbox down --purge` to start afresh"
        )
    return True


def initdb(layout: Layout, state: SandboxState) -> bool:
    """Create the cluster once; returns whether it did. The superuser gets a password (TCP only)."""
    if _check_version(layout, state):
        return False
    uid, gid = uid_gid(state.service_user)
    pwfile = layout.pg_parent / ".initdb-pw"
    _write_owned(pwfile, state.superuser_password + "\n", uid, gid)
    argv = [
        str(Path(state.pg_bin_dir) / "initdb"),
        "-D", str(layout.pg_data),
        "-U", render.PG_SUPERUSER,
        f"--pwfile={pwfile}",
        "--auth-local=peer",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ]  # fmt: skip
    privileged = state.service_user is not None
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=layout.pg_parent,
            user=uid if privileged else None,
            group=gid if privileged else None,
            extra_groups=[] if privileged else None,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            timeout=120,
            check=False,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxError(f"initdb failed (exit {proc.returncode}): {last}")
    return True


def configure(layout: Layout, state: SandboxState) -> None:
    """(Re)write our settings and pg_hba; the stock postgresql.conf only gains one include line."""
    uid, gid = uid_gid(state.service_user)
    _write_owned(layout.pg_data / INCLUDE_FILE, render.postgresql_conf(layout, state), uid, gid)
    _write_owned(layout.pg_data / "pg_hba.conf", render.pg_hba_conf(), uid, gid)
    main_conf = layout.pg_data / "postgresql.conf"
    text = main_conf.read_text(encoding="utf-8")
    include = f"include '{INCLUDE_FILE}'"
    if include not in text:
        _write_owned(main_conf, f"{text.rstrip()}\n\n{include}\n", uid, gid)


def connect(state: SandboxState, user: str, password: str, database: str) -> PgConnection:
    dsn = render.pg_dsn(state, user, password, database)
    conn = psycopg2.connect(dsn, connect_timeout=2, application_name="pflow-ops-sandbox")
    conn.autocommit = True
    return conn


def superuser(state: SandboxState, database: str = "postgres") -> PgConnection:
    return connect(state, render.PG_SUPERUSER, state.superuser_password, database)


def _ensure_role(conn: PgConnection, name: str, password: str) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        query = sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name))
        cur.execute(query, (password,))


def _ensure_database(conn: PgConnection) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (render.PG_DATABASE,))
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(render.PG_DATABASE), sql.Identifier(render.PG_APP_USER)
                )
            )


ITEMS_DDL = """
CREATE TABLE IF NOT EXISTS items (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL,
    price_cents integer     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
)
"""

ITEMS_SEED = """
INSERT INTO items (id, name, description, price_cents)
SELECT g, 'item-' || g, 'Sandbox item number ' || g, (g * 137) %% 10000 + 99
FROM generate_series(1, %s) AS g
ON CONFLICT (id) DO NOTHING
"""


def _app_schema(conn: PgConnection) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # Owned by the app role, as a migration run by the service would leave it.
        cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(render.PG_APP_USER)))
        cur.execute(ITEMS_DDL)
        cur.execute(ITEMS_SEED, (SEED_ROWS,))
        cur.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), max(id)) FROM items")
        cur.execute("RESET ROLE")


def bootstrap(state: SandboxState) -> None:
    """Roles, database, extension, seeded table. Safe to run on every `up`."""
    try:
        _bootstrap(state)
    except psycopg2.Error as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise SandboxError(f"PostgreSQL bootstrap failed: {detail}") from None


def _bootstrap(state: SandboxState) -> None:
    conn = superuser(state)
    try:
        _ensure_role(conn, render.PG_APP_USER, state.app_password)
        _ensure_role(conn, render.PG_MONITOR_USER, state.monitor_password)
        with conn.cursor() as cur:
            grant = sql.SQL("GRANT pg_monitor, pg_signal_backend TO {}")
            cur.execute(grant.format(sql.Identifier(render.PG_MONITOR_USER)))
        _ensure_database(conn)
    finally:
        conn.close()
    conn = superuser(state, render.PG_DATABASE)
    try:
        _app_schema(conn)
    finally:
        conn.close()


def accepts_queries(state: SandboxState) -> bool:
    try:
        conn = superuser(state)
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except psycopg2.Error:
        return False
    finally:
        conn.close()
