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
With the incident sinks on (the default; --no-sinks for the timings alone), every run documents
its incident in an email sink (a real SMTP server, aiosmtpd) and an Alerta sink (a real
alerta-server on the sandbox's PostgreSQL, from .venv-alerta), configured in the `local`
inventory of a project copy the receiver runs from; after each fault the incident record is
printed: its key (the alert's fingerprint), each document's sinks, the Alerta alert read back
(status, notes) and the emails of its thread.
With --keep DIR, the review of the bench run (`pflow-ops review --save DIR`: the run reports and
the receiver journal of its state directory) is saved in DIR (review.md, .html, .png, .json)
before the sandbox is purged, and the paths are printed; a failed bench keeps it too.
The sandbox is stopped and purged at the end.
Usage: .venv/bin/python bench/alert_loop.py [--notifications N] [--concurrency N] [--faults F,...]
                                            [--no-sinks] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import measure

from pflow_ops.sandbox import observe
from pflow_ops.sandbox.net import free_ports

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' real sink servers (tests/integration)
PFLOW = str(Path(sys.executable).parent / "pflow-ops")
FAULTS = {
    "backend-crash": ("BackendServiceDown", "RB-01"),
    "backend-errors": ("HighErrorRate", "RB-01"),
    # Node.js: the loop blocked for good answers no scrape, so no lag value can show it; the
    # scrapes time out (the port accepts), which BackendEventLoopBlocked reads.
    "backend-eventloop-block": ("BackendEventLoopBlocked", "RB-01"),
    "db-down": ("DatabaseConnectionFailure", "RB-02"),
    "db-connections": ("DatabaseHighConnections", "RB-02"),
    "redis-down": ("RedisConnectionFailure", "RB-03"),
    "redis-evictions": ("RedisHighEvictions", "RB-03"),
}


def pflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``pflow-ops ARGS`` in the bench's environment, its output captured."""
    return subprocess.run(
        [PFLOW, *args], env=env, capture_output=True, text=True, cwd=ROOT, check=False
    )


def cli(env: dict[str, str], *args: str) -> None:
    """``pflow-ops ARGS``; the bench stops with its error when it fails."""
    proc = pflow(env, *args)
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
        "incident": (report.get("incident") or {}).get("key"),
    }


SMTP_USER = "pflow-bench"


def project_copy(home: Path) -> Path:
    """The checkout, symlinked, with a copy of the `local` inventory the receiver runs with (the
    sinks are appended to its group_vars once their servers are up)."""
    project = home / "project"
    (project / "inventories").mkdir(parents=True)
    for item in ROOT.iterdir():
        if item.name not in ("inventories", ".git"):
            (project / item.name).symlink_to(item)
    for inv in (ROOT / "inventories").iterdir():
        if inv.name != "local":
            (project / "inventories" / inv.name).symlink_to(inv)
    shutil.copytree(ROOT / "inventories" / "local", project / "inventories" / "local")
    return project


@dataclass
class Sinks:
    alerta: Any  # tests.integration.alerta.Alerta
    mailbox: Any  # tests.integration.incident_servers.Mailbox


@contextmanager
def incident_sinks(home: Path, project: Path) -> Iterator[Sinks]:
    """A real SMTP server and a real Alerta server, configured as the `local` environment's
    email and alerta sinks; the Alerta server is stopped and its database dropped afterwards."""
    from tests.integration.alerta import alerta_server
    from tests.integration.incident_servers import smtp_server

    # The test SMTP server's AUTH-without-TLS warnings (loopback only) would drown the table.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"aiosmtpd\.")

    password = secrets.token_urlsafe(16)
    with ExitStack() as stack:
        smtp_port, mailbox = stack.enter_context(smtp_server(SMTP_USER, password))
        alerta = stack.enter_context(alerta_server(home))
        with (project / "inventories" / "local" / "group_vars" / "all.yml").open("a") as f:
            f.write(
                "pflow_incident_sinks:\n"
                f"  - {{kind: email, host: 127.0.0.1, port: {smtp_port}, secure: never,"
                f" username: {SMTP_USER}, password: '{password}', from: pflow-ops@example.test,"
                " to: [oncall@example.test], retries: 1}\n"
                f"  - {{kind: alerta, url: '{alerta.url}', api_key: '{alerta.api_key}',"
                " retries: 1}\n"
            )
        yield Sinks(alerta, mailbox)


def show_incident(env: dict[str, str], sinks: Sinks, key: str | None) -> None:
    """The incident record of one fault: its documents and sinks, the Alerta alert read back
    from Alerta, the emails of its thread."""
    if not key:
        print("    incident: none documented")
        return
    proc = pflow(env, "incident", "show", key, "--output", "json")
    if proc.returncode != 0:
        print(f"    incident {key}: no record ({proc.stderr.strip()})")
        return
    record = json.loads(proc.stdout)
    print(f"    incident {key}: runs {len(record['runs'])}, resolved {record['resolved']}")
    for event in record.get("events", []):
        statuses = ", ".join(f"{s['sink']} {s['status']}" for s in event.get("sinks", []))
        print(f"      {event.get('event')} ({event.get('outcome')}): {statuses}")
    alert_id = (record.get("handles", {}).get("alerta") or {}).get("id")
    if alert_id:
        alert = sinks.alerta.get(f"/alert/{alert_id}")["alert"]
        notes = sinks.alerta.notes(alert_id)
        print(
            f"      alerta: alert {alert_id} {alert['event']} {alert['severity']}"
            f" {alert['status']}, {len(notes)} notes"
        )
    sha = hashlib.sha256(key.encode()).hexdigest()[:32]
    thread = [m for m in sinks.mailbox.messages if m.get("X-Pflow-Incident") == sha]
    if thread:
        print(f"      email: {len(thread)} messages, first: {thread[0]['Subject']}")


def keep_review(env: dict[str, str], keep: Path) -> None:
    """Save the bench run's review in ``keep`` and print where (and its receiver summary)."""
    proc = pflow(env, "review", "--save", str(keep), "--output", "json")
    if proc.returncode != 0:
        print(f"review: pflow-ops review exited {proc.returncode}: {proc.stderr.strip()}")
        return
    receiver = json.loads(proc.stdout)["receiver"]
    print(f"review of this bench run: {receiver['alerts']} alerts, fates {receiver['fates']}")
    for name in ("review.md", "review.html", "review.png", "review.json"):
        print(f"  {keep.resolve() / name}")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:7.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument(
        "--no-sinks", action="store_true", help="the timings alone, no incident sinks"
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        help="save the review of this bench run (md, html, png, json) in DIR",
    )
    args = parser.parse_args()
    # Killed with SIGTERM, still take the sandbox down (the finally below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    home = Path(tempfile.mkdtemp(prefix="pfo-bench-alerts-", dir="/tmp"))
    env = {**os.environ, "PFLOW_OPS_HOME": str(home)}
    if not args.no_sinks:
        # The receiver (under the sandbox's supervisord) inherits it: its runs use the copy.
        env["PFLOW_OPS_PROJECT"] = str(project_copy(home))
    backend, pg, rd = free_ports(3)
    ports = ["--backend-port", str(backend), "--postgres-port", str(pg), "--redis-port", str(rd)]
    cli(env, "sandbox", "up", "--monitoring", *ports)
    sinks_on = ExitStack()
    try:
        sinks: Sinks | None = None
        if not args.no_sinks:
            sinks = sinks_on.enter_context(incident_sinks(home, Path(env["PFLOW_OPS_PROJECT"])))
            print("incident sinks: email (aiosmtpd), alerta (alerta-server)")
        mon = json.loads((home / "sandbox" / "endpoints.json").read_text())["monitoring"]
        prom = mon["prometheus_url"]
        print(f"time factor {mon.get('time_factor')}: rule windows and for: durations divided")
        print(
            f"{'fault':<25}{'alert':<27}{'firing':>8}{'started':>8}{'healthy':>8}{'resolved':>9}"
            "  outcome (alert)"
        )
        for fault in args.faults.split(","):
            r = time_fault(env, home, prom, fault)
            print(
                f"{r['fault']:<25}{r['alert']:<27}{fmt(r['firing'])} {fmt(r['started'])}"
                f" {fmt(r['healthy'])} {fmt(r['resolved'])}  {r['outcome']} ({r['alert_state']})",
                flush=True,
            )
            if sinks is not None:
                show_incident(env, sinks, r["incident"])
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
        if args.keep is not None:  # a failed bench's review too: the journal says what happened
            keep_review(env, args.keep)
        sinks_on.close()  # Alerta first: its database is on the sandbox's PostgreSQL
        subprocess.run([PFLOW, "sandbox", "down", "--purge"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
