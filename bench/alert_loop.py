#!/usr/bin/env python3
"""Alert-driven recovery, timed (issue #6): fault, alert firing, run start, healthy, resolved.

Starts its own sandbox with the monitoring stack (`sandbox up --monitoring`: real Prometheus with
the shipped rules on the sandbox's compressed timescale, real Alertmanager, the exporters and the
receiver `pflow-ops serve`), then for each fault prints seconds from `sandbox break FAULT` to:
  firing    the alert is firing in Prometheus (rule `for:` included)
  started   the receiver started the mapped runbook (its run directory appeared)
  healthy   the runbook verified the service (the closed-loop wait began)
  resolved  Prometheus and Alertmanager no longer report the alert (the closed-loop wait ended)
and the run's outcome. Then the receiver's response times under --notifications firing
notifications of one alert on loopback (one run starts, the rest are deduplicated).
The sandbox is stopped and purged at the end.
Usage: .venv/bin/python bench/alert_loop.py [--notifications N] [--concurrency N] [--faults F,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pflow_ops.receiver.loadtest import measure
from pflow_ops.sandbox import observe
from pflow_ops.sandbox.net import free_ports

ROOT = Path(__file__).resolve().parents[1]
PFLOW = str(Path(sys.executable).parent / "pflow-ops")
FAULTS = {
    "backend-crash": ("BackendServiceDown", "RB-01"),
    "backend-errors": ("HighErrorRate", "RB-01"),
    "db-down": ("DatabaseConnectionFailure", "RB-02"),
    "db-connections": ("DatabaseHighConnections", "RB-02"),
    "redis-down": ("RedisConnectionFailure", "RB-03"),
    "redis-evictions": ("RedisHighEvictions", "RB-03"),
}


def cli(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([PFLOW, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"pflow-ops {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")


def quiet(env: dict[str, str], home: Path, prom: str) -> None:
    cli(env, "sandbox", "heal")
    shutil.rmtree(home / "budget", ignore_errors=True)
    observe.wait_quiet(prom, timeout=180)


def the_run(home: Path, runbook: str, alertname: str, since: float) -> observe.Run | None:
    for run in observe.runs(home / "runs", runbook, since):
        rep = run.report
        if rep is None or (rep.get("alert") or {}).get("alertname") == alertname:
            return run
    return None


def time_fault(env: dict[str, str], home: Path, prom: str, fault: str) -> dict[str, Any]:
    alertname, runbook = FAULTS[fault]
    quiet(env, home, prom)
    t0 = time.time()
    cli(env, "sandbox", "break", fault)
    observe.wait_until(lambda: observe.alert_state(prom, alertname) == "firing", 180, 0.1)
    fired = time.time() - t0
    observe.wait_until(lambda: the_run(home, runbook, alertname, t0) is not None, 300, 0.1)
    run = the_run(home, runbook, alertname, t0)
    assert run is not None
    observe.wait_until(lambda: run.report is not None, 600, 0.5)
    report = run.report or {}
    loop = observe.step_times(report)
    return {
        "fault": fault,
        "alert": alertname,
        "firing": fired,
        "started": run.created - t0,
        "healthy": loop[0] - t0 if loop else None,
        "resolved": loop[1] - t0 if loop else None,
        "outcome": report.get("outcome"),
        "alert_state": (report.get("alert") or {}).get("state"),
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:7.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--faults", default=",".join(FAULTS))
    args = parser.parse_args()
    # Killed with SIGTERM, still take the sandbox down (the finally below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    home = Path(tempfile.mkdtemp(prefix="pfo-bench-alerts-", dir="/tmp"))
    env = {**os.environ, "PFLOW_OPS_HOME": str(home)}
    backend, pg, rd = free_ports(3)
    ports = ["--backend-port", str(backend), "--postgres-port", str(pg), "--redis-port", str(rd)]
    cli(env, "sandbox", "up", "--monitoring", *ports)
    try:
        mon = json.loads((home / "sandbox" / "endpoints.json").read_text())["monitoring"]
        prom = mon["prometheus_url"]
        print(f"time factor {mon.get('time_factor')}: rule windows and for: durations divided")
        print(
            f"{'fault':<16}{'alert':<27}{'firing':>8}{'started':>8}{'healthy':>8}{'resolved':>9}"
            "  outcome (alert)"
        )
        for fault in args.faults.split(","):
            r = time_fault(env, home, prom, fault)
            print(
                f"{r['fault']:<16}{r['alert']:<27}{fmt(r['firing'])} {fmt(r['started'])}"
                f" {fmt(r['healthy'])} {fmt(r['resolved'])}  {r['outcome']} ({r['alert_state']})",
                flush=True,
            )
        quiet(env, home, prom)
        token = Path(mon["receiver_token_file"]).read_text().strip()
        result = measure(
            mon["receiver_url"].rstrip("/") + "/webhook",
            token,
            count=args.notifications,
            concurrency=args.concurrency,
        )
        print(
            f"receiver: {args.notifications} notifications, concurrency {args.concurrency}: "
            f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms, "
            f"wall {result.wall_s:.2f} s, statuses {dict(result.statuses)}"
        )
    finally:
        subprocess.run([PFLOW, "sandbox", "down", "--purge"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
