#!/usr/bin/env python3
"""An alert storm for one runbook (issue #14): N distinct fingerprints in one notification.

Part 1, the receiver as it runs (this checkout's code): an in-process Receiver with its real
journal in a temporary directory, a fake launcher (each run takes --run-seconds of real time, as
the tests' fake `pflow-ops alert`), its worker thread for the service; one notification of N
firing alerts of one runbook is received, then after --settle seconds it prints the runs started,
the queue depth, the latest deferral (seconds ahead of now) and the alerts the run covers.

Part 2, the policy before and after, on a virtual clock: the same storm decided by this
checkout's policy and by the policy of commit bf3e2a5 (before issue #14, read with `git show`
into a temporary module), then 24 h of a worker that starts whatever is due, each run taking
--run-seconds, the alerts staying firing. Prints queue depth and latest deferral right after the
storm, and the runs started in those 24 h.
Usage: .venv/bin/python bench/receiver_storm.py [--alerts N] [--window S] [--run-seconds S]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from loadtest import alert, notification

from pflow_ops import catalogue, routing
from pflow_ops.receiver import payload
from pflow_ops.receiver.core import Receiver
from pflow_ops.receiver.journal import Journal
from pflow_ops.receiver.policy import Policy
from pflow_ops.receiver.worker import RunResult

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "bf3e2a5"
ALERTNAME, RUNBOOK, SERVICE = "HighErrorRate", "RB-01", "backend"


class FakeLauncher:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def run(self, argv: list[str], timeout: float) -> RunResult:
        self.calls += 1
        time.sleep(self.seconds)
        return RunResult(0, "recovered", self.seconds, run_id=f"fake-{self.calls}", changed=1)

    def abort(self) -> None:
        """Nothing to stop: the fake runs end on their own."""


def storm(count: int) -> dict[str, Any]:
    return notification(*(alert(ALERTNAME, f"{i:016x}") for i in range(count)))


def live(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pfo-storm-") as tmp:
        os.environ["PFLOW_OPS_HOME"] = tmp  # the run locks the worker probes
        journal = Journal(Path(tmp) / "receiver")
        journal.open()
        table = routing.table(catalogue.load())
        launcher = FakeLauncher(args.run_seconds)
        app = Receiver(
            "local",
            Policy(table, args.window, args.window),
            journal,
            launcher,
            log=lambda *a, **k: None,
            pause_dir=Path(tmp) / "receiver",
        )
        worker = threading.Thread(target=app.work, args=(SERVICE,), daemon=True)
        worker.start()
        body = json.dumps(storm(args.alerts)).encode()
        t0 = time.monotonic()
        answer = app.receive(payload.parse(body))
        took = time.monotonic() - t0
        time.sleep(args.settle)
        now = time.time()
        with app.cond:
            depth, running = app.policy.queue_depth(), len(app.policy.running())
            ahead = [it.not_before - now for it in app.policy.items.values()]
        app.stop()
        worker.join(args.run_seconds + 10)
        started = [e for e in journal.read() if e["event"] == "started"]
        journal.close()
    decisions: dict[str, int] = {}
    for a in answer:
        decisions[a["decision"]] = decisions.get(a["decision"], 0) + 1
    print(
        f"live receiver ({args.alerts} alerts of {RUNBOOK} in one notification, window "
        f"{args.window:.0f} s, decided in {took * 1000:.0f} ms): decisions {decisions}"
    )
    print(f"  after {args.settle:.0f} s: runs started {launcher.calls}, queue depth {depth}, "
          f"running {running}, latest deferral {max([0.0, *ahead]):.0f} s, "
          f"alerts covered by the run {len(started[0]['alerts']) if started else 0}")  # fmt: skip


def old_policy_module() -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:pflow_ops/receiver/policy.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="pfo-old-policy-")) / "old_policy.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_policy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def simulate(policy: Any, count: int, run_seconds: float) -> dict[str, float]:
    """The storm at t=0, then 24 h of one worker on a virtual clock."""
    t0 = 1_000_000.0
    for i, rec in enumerate(storm(count)["alerts"]):
        policy.decide(f"r{i}", {**rec, "alertname": ALERTNAME}, t0)
    depth = policy.queue_depth()
    latest = max([0.0, *(it.not_before - t0 for it in policy.items.values())])
    now, runs, last = t0, 0, 0.0
    while now < t0 + 86400:
        item = policy.next_for(SERVICE, now)
        if item is None:
            due = [it.not_before for it in policy.items.values() if it.not_before > now]
            if not due:
                break
            now = min(due)
            continue
        policy.start(item.rid, now)
        runs, last = runs + 1, now - t0
        now += run_seconds
        policy.finish(item.rid, now)
    return {"depth": depth, "latest": latest, "runs": runs, "last": last}


def compare(args: argparse.Namespace) -> None:
    old = old_policy_module()
    cat = catalogue.load()
    routes = {a: old.Route(rb.id, rb.service) for rb in cat.runbooks for a in rb.alerts}
    before = simulate(old.Policy(routes, args.window, args.window), args.alerts, args.run_seconds)
    table = routing.table(cat)
    after = simulate(Policy(table, args.window, args.window), args.alerts, args.run_seconds)
    print(f"policy on a virtual clock ({args.alerts} alerts, window {args.window:.0f} s, "
          f"runs of {args.run_seconds:.0f} s, alerts firing for 24 h):")  # fmt: skip
    print(f"  {'':8}{'queue depth':>12}{'latest deferral':>17}{'runs in 24 h':>14}"
          f"{'last run start':>16}")  # fmt: skip
    for name, r in (("before", before), ("after", after)):
        print(f"  {name:8}{r['depth']:>12.0f}{r['latest'] / 3600:>15.1f} h{r['runs']:>14.0f}"
              f"{r['last'] / 3600:>14.1f} h")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--window", type=float, default=600.0, help="throttle and dedupe window")
    parser.add_argument("--run-seconds", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()
    live(args)
    compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
