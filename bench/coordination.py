#!/usr/bin/env python3
"""Coordination overhead: what the store adds to one recover, on ``file`` and on ``etcd``, and
20 concurrent recovers across two controllers sharing one etcd.

Starts a throwaway etcd (Debian's etcd-server, tests/integration/etcd_server.py) on free loopback
ports. A recover touches the store three times: the CLI takes the run lock (its own store
connection), the restart_budget task consumes one restart (the action plugin opens its own), and
the CLI releases the lock. The round trip measured here is exactly that, in-process, with a fresh
store object per step as in a real run, and each iteration on its own budget key (a real key
holds a handful of entries). Process start-up, Ansible and the playbook are the same on both
backends and are left out: the difference between the two medians is what etcd adds to a
recover (target: < 50 ms). Over a network the figure grows by the round trips (three to five
per recover: lock txn + lease grant, budget read txn + lease grant + write txn, release).

The concurrency run starts 20 processes at once, ten per controller (two PFLOW_OPS_HOMEs on one
etcd; on ``file``, ten per process group on one home), each consuming the same key with the
default policy (3 per 30 min): exactly 3 must be allowed and 3 entries stored.

Prints JSON. Usage: .venv/bin/python bench/coordination.py [--iterations 200] [--concurrent 20]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pflow_ops import coordination  # noqa: E402
from pflow_ops.lock import RunLock  # noqa: E402
from tests.integration import etcd_server  # noqa: E402
from tests.plugins import load_plugin  # noqa: E402

MAX = 3


def _store(url: str, home: Path) -> Any:
    return coordination.open_store(coordination.settings({"pflow_coordination_url": url}), home)


def round_trips(url: str, home: Path, iterations: int) -> dict[str, float]:
    """Milliseconds per recover's lock + budget + release, fresh store per step."""
    rb = load_plugin("restart_budget", kind="action")
    took: list[float] = []
    for i in range(iterations):
        start = time.perf_counter()
        lock = RunLock(
            "bench", "backend", f"run-{i}", directory=home / "locks", store=_store(url, home)
        )
        lock.acquire()
        res = rb.evaluate(
            _store(url, home), f"bench/host-{i}/backend", max_restarts=MAX, consume=True
        )
        lock.release()
        took.append((time.perf_counter() - start) * 1000)
        assert res["allowed"], res
    took.sort()
    return {
        "median_ms": round(statistics.median(took), 2),
        "p95_ms": round(took[int(len(took) * 0.95) - 1], 2),
        "min_ms": round(took[0], 2),
    }


def _consume(url: str, home: str, start: Any, out: Any) -> None:
    rb = load_plugin("restart_budget", kind="action")
    store = _store(url, Path(home))
    start.wait()
    t0 = time.perf_counter()
    res = rb.evaluate(store, "bench/shared-host/backend", max_restarts=MAX, consume=True)
    out.put((res["allowed"], (time.perf_counter() - t0) * 1000))


def concurrent(url: str, homes: tuple[Path, Path], count: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_consume, args=(url, str(homes[n % 2]), start, out))
        for n in range(count)
    ]
    for proc in procs:
        proc.start()
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=300) for _ in procs]
    wall = (time.perf_counter() - t0) * 1000
    for proc in procs:
        proc.join(60)
    rb = load_plugin("restart_budget", kind="action")
    stored = rb.evaluate(_store(url, homes[0]), "bench/shared-host/backend", max_restarts=MAX)
    allowed = sum(1 for ok, _ms in results if ok)
    return {
        "recovers": count,
        "controllers": len({str(h) for h in homes}),
        "allowed": allowed,
        "stored_entries": stored["used"],
        "exactly_max": allowed == MAX == stored["used"],
        "wall_ms": round(wall, 1),
        "slowest_consume_ms": round(max(ms for _ok, ms in results), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    if not etcd_server.available():
        print(f"etcd-server is not installed ({etcd_server.ETCD})", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="pflow-bench-coord-") as tmp,
        etcd_server.running() as etcd,
    ):
        root = Path(tmp)
        figures: dict[str, Any] = {"etcd_version": "", "round_trip": {}, "concurrent": {}}
        figures["etcd_version"] = etcd_server.version(etcd)
        for name, url in (("file", "file"), ("etcd", etcd.url)):
            home = root / f"rt-{name}"
            round_trips(url, home, 10)  # warm-up: imports, first connections
            figures["round_trip"][name] = round_trips(url, home, args.iterations)
        rt = figures["round_trip"]
        added = rt["etcd"]["median_ms"] - rt["file"]["median_ms"]
        figures["round_trip"]["etcd_adds_ms"] = round(added, 2)
        figures["round_trip"]["target_met"] = added < 50
        os.environ.pop("PFLOW_OPS_HOME", None)
        one = root / "file-one"
        figures["concurrent"]["file"] = concurrent("file", (one, one), args.concurrent)
        figures["concurrent"]["etcd"] = concurrent(
            etcd.url, (root / "ctl-a", root / "ctl-b"), args.concurrent
        )
    print(json.dumps(figures, indent=2))
    return 0 if figures["concurrent"]["etcd"]["exactly_max"] else 1


if __name__ == "__main__":
    sys.exit(main())
