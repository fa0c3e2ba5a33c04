#!/usr/bin/env python3
"""RB-02 diagnosis cost against database size (issue #3 target: large <= 1.5 x empty).

Starts its own sandbox in a temporary PFLOW_OPS_HOME on free ports, then prints, each the median
of --repeat runs (and the minimum):
  empty  `pflow-ops diagnose rb-02 --env local` on the sandbox database as created
  large  the same after adding 10,000 tables (each with a primary key index) and 5,000
         distinct statements in pg_stat_statements (the sandbox keeps the default
         pg_stat_statements.max = 5000, so the view is full), once autovacuum has settled
  ratio  large / empty
and the same three figures for the diagnosis alone (pg_diagnose's own elapsed_s, without the
Ansible start-up that dominates the CLI figure). The sandbox is removed at the end.
Usage: .venv/bin/python bench/rb02_diagnose.py [--repeat N] [--tables N] [--statements N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pflow_ops.sandbox.net import free_ports  # noqa: E402

PFLOW = [sys.executable, "-m", "pflow_ops"]
BATCH = 500  # tables per transaction: each CREATE TABLE takes locks until commit


def cli(
    env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*PFLOW, *args], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    if proc.returncode not in ok:
        sys.exit(f"pflow-ops {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def diagnose(env: dict[str, str], repeat: int) -> tuple[list[float], list[float]]:
    """Wall time of the CLI, and pg_diagnose's own elapsed_s, per run."""
    walls, modules = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        # secure logging off so the module's elapsed_s reaches the events (the password option
        # stays masked: the module declares it no_log).
        proc = cli(
            env, "diagnose", "rb-02", "--env", "local", "--output", "json",
            "-e", "database_secure_logging=false", ok=(0, 4),
        )  # fmt: skip
        walls.append(time.perf_counter() - start)
        run_dir = Path(json.loads(proc.stdout)["report"]["json"]).parent
        modules.append(module_elapsed(run_dir))
    return walls, modules


def module_elapsed(run_dir: Path) -> float:
    """pg_diagnose's elapsed_s from the run's ansible-runner events."""
    for path in sorted((run_dir / "artifacts").rglob("job_events/*.json")):
        event = json.loads(path.read_text())
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task_action", "").endswith(
            "pg_diagnose"
        ):
            return float(data["res"].get("elapsed_s", 0.0))
    return float("nan")


def superuser(home: Path) -> psycopg2.extensions.connection:
    state = json.loads((home / "sandbox" / "state.json").read_text())
    pg = json.loads((home / "sandbox" / "endpoints.json").read_text())["postgres"]
    conn = psycopg2.connect(
        host=pg["host"],
        port=pg["port"],
        dbname=pg["database"],
        user="postgres",
        password=state["superuser_password"],
    )
    conn.autocommit = True
    return conn


def grow(home: Path, tables: int, statements: int) -> int:
    """Add the tables and the distinct statements; return the pg_stat_statements row count."""
    conn = superuser(home)
    with conn.cursor() as cur:
        for first in range(1, tables + 1, BATCH):
            last = min(first + BATCH - 1, tables)
            cur.execute(
                "DO $$ BEGIN FOR i IN %s..%s LOOP EXECUTE format("
                "'CREATE TABLE IF NOT EXISTS bench_t%%s (id bigint PRIMARY KEY, v text)', i);"
                " END LOOP; END $$",
                (first, last),
            )
        # One query shape per table: pg_stat_statements keeps each as its own entry.
        for i in range(1, statements + 1):
            cur.execute(f"SELECT count(*) FROM bench_t{(i - 1) % tables + 1} WHERE id > {i}")
        cur.execute("SELECT count(*) FROM pg_stat_statements")
        row = cur.fetchone()
        settle(cur)
    conn.close()
    return int(row[0]) if row else 0


def settle(cur: psycopg2.extensions.cursor, timeout: float = 180.0) -> None:
    """Measure the steady state of a big database, not the minute after 10,000 CREATE TABLEs:
    analyse the grown catalogs (autovacuum would, shortly) and wait for autovacuum to go idle."""
    cur.execute("ANALYZE pg_catalog.pg_class, pg_catalog.pg_attribute, pg_catalog.pg_index,"
                " pg_catalog.pg_depend, pg_catalog.pg_type, pg_catalog.pg_constraint")  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        )
        row = cur.fetchone()
        if not row or row[0] == 0:
            return
        time.sleep(1.0)


def line(name: str, values: list[float], unit: str = "s") -> str:
    return f"{name:6} median {statistics.median(values):7.3f} {unit}  min {min(values):7.3f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tables", type=int, default=10000)
    parser.add_argument("--statements", type=int, default=5000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pfo-bench-rb02-", dir="/tmp"))
    env = {**os.environ, "PFLOW_OPS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    backend, pg, rd = free_ports(3)
    ports = ["--backend-port", str(backend), "--postgres-port", str(pg), "--redis-port", str(rd)]
    cli(env, "sandbox", "up", *ports)
    try:
        empty_wall, empty_dx = diagnose(env, args.repeat)
        started = time.perf_counter()
        entries = grow(home, args.tables, args.statements)
        print(
            f"grew the database: {args.tables} tables, {entries} pg_stat_statements entries "
            f"({time.perf_counter() - started:.0f} s)"
        )
        large_wall, large_dx = diagnose(env, args.repeat)
    finally:
        cli(env, "sandbox", "down", "--purge", ok=(0, 1))
        shutil.rmtree(home, ignore_errors=True)
    print("pflow-ops diagnose rb-02 (wall time)")
    print(line("empty", empty_wall))
    print(line("large", large_wall))
    ratio = statistics.median(large_wall) / statistics.median(empty_wall)
    print(f"ratio  {ratio:.2f} (target <= 1.5)")
    print("pg_diagnose alone (its elapsed_s)")
    print(line("empty", empty_dx))
    print(line("large", large_dx))
    print(f"ratio  {statistics.median(large_dx) / statistics.median(empty_dx):.2f}")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
