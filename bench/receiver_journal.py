#!/usr/bin/env python3
"""Receiver journal: replay time of a 144 MB journal, and of the live journal under compaction.

Drives the receiver itself (``pflow_ops.receiver.core.Receiver`` with its Journal, Policy and
compaction) with an alert storm: per notification ``receive`` (the received records and the
decisions), then, whenever a service's queue lets one start, ``pick``/``claim``/``complete`` a run
with a launcher that does nothing (every append fsync'd, as in production).

- before: compaction off, the storm goes on until the journal reaches --mb (144 MB, the size
  that took 11 s to replay in the issue); timed: ``Journal.read`` + ``policy.replay`` in a fresh
  policy, as the receiver does at start.
- after: the same storm (same seed) with the default ``--journal-max-bytes``; printed: the live
  journal's size at the end, the archives, the compactions, and the replay time of the live
  journal; the replayed state is compared with the live policy's snapshot.

Prints JSON. Usage: .venv/bin/python bench/receiver_journal.py [--mb 144] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtest import alert, notification  # noqa: E402

from pflow_ops import catalogue, routing  # noqa: E402
from pflow_ops.receiver import payload  # noqa: E402
from pflow_ops.receiver.core import Receiver  # noqa: E402
from pflow_ops.receiver.journal import Journal  # noqa: E402
from pflow_ops.receiver.options import JOURNAL_MAX_BYTES  # noqa: E402
from pflow_ops.receiver.policy import Policy, replay  # noqa: E402
from pflow_ops.receiver.worker import RunResult  # noqa: E402

NAMES = ("BackendServiceDown", "HighErrorRate", "DatabaseSlowQueries", "RedisHighEvictions")
ALERTS_PER_NOTIFICATION = 20
FINGERPRINTS = 500  # distinct alerts in the storm: most notifications repeat known ones
WINDOW = 600.0
NEVER = 10**15  # a journal limit no storm reaches: compaction off


class NoLauncher:
    """Runs are not the subject here: the receiver's claim and complete are."""

    def run(self, argv: list[str], timeout: float) -> RunResult:
        raise AssertionError("the bench completes runs itself")

    def abort(self) -> None:
        """Nothing to stop."""


def _policy() -> Policy:
    return Policy(routing.table(catalogue.load()), throttle_window=WINDOW, dedupe_window=WINDOW)


def _receiver(directory: Path, max_bytes: int) -> Receiver:
    journal = Journal(directory)
    journal.open()
    return Receiver(
        "bench",
        _policy(),
        journal,
        NoLauncher(),
        log=lambda *a, **k: None,
        journal_max_bytes=max_bytes,
    )


def _body(rng: random.Random) -> bytes:
    alerts = []
    for _ in range(ALERTS_PER_NOTIFICATION):
        n = rng.randrange(FINGERPRINTS)
        name = NAMES[n % len(NAMES)]
        labels = {
            "instance": f"backend-{n % 40}.prod.example.net:8080",
            "job": "pivotal-flow-backend",
            "severity": "critical",
            "env": "prod",
            "team": "platform",
        }
        raw = alert(name, f"{n:016x}", labels=labels)
        raw["annotations"]["description"] = (
            f"{name} on {labels['instance']} for 5 minutes: see the runbook and the dashboard "
            "https://grafana.example.net/d/pflow/overview?var-instance=" + labels["instance"]
        )
        alerts.append(raw)
    return json.dumps(notification(*alerts)).encode()


def _notification(app: Receiver, rng: random.Random) -> None:
    app.receive(payload.parse(_body(rng)))
    for service in ("backend", "database", "cache"):
        item = app.policy.next_for(service, time.time())
        if item is None:
            continue
        picked = app.pick(item)
        if picked is None or app.claim(item, *picked) is None:
            continue
        app.complete(item, RunResult(0, "healthy", 0.0, run_id="bench"))


def _timed_replay(directory: Path) -> tuple[float, Policy, int]:
    journal = Journal(directory)
    policy = _policy()
    started = time.perf_counter()
    state = replay(policy, journal.read())
    return time.perf_counter() - started, policy, state.records


def before(directory: Path, target: int, seed: int) -> dict[str, Any]:
    app, rng = _receiver(directory, NEVER), random.Random(seed)
    notifications = 0
    while app.journal.size_bytes() < target:
        _notification(app, rng)
        notifications += 1
    size = app.journal.size_bytes()
    app.journal.close()
    replay_s, _, records = _timed_replay(directory)
    return {
        "notifications": notifications,
        "journal_bytes": size,
        "records": records,
        "replay_s": round(replay_s, 3),
    }


def after(directory: Path, notifications: int, max_bytes: int, seed: int) -> dict[str, Any]:
    app, rng = _receiver(directory, max_bytes), random.Random(seed)
    for _ in range(notifications):
        _notification(app, rng)
    size = app.journal.size_bytes()
    archives = app.journal.archive_paths()
    live = app.policy.snapshot_records()
    app.journal.close()
    replay_s, replayed, records = _timed_replay(directory)
    return {
        "max_bytes": max_bytes,
        "live_journal_bytes": size,
        "records": records,
        "replay_s": round(replay_s, 3),
        "compactions": int(app.metrics.value("journal_compactions_total")),
        "archives_kept": len(archives),
        "archive_bytes": [p.stat().st_size for p in archives],
        "replayed_state_matches": replayed.snapshot_records() == live,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=float, default=144.0, help="journal size before (MB)")
    parser.add_argument("--max-bytes", type=int, default=JOURNAL_MAX_BYTES)
    parser.add_argument("--dir", type=Path, help="where to write (default: a temporary dir)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pflow-journal-", dir=args.dir))
    os.environ["PFLOW_OPS_HOME"] = str(base / "home")  # the pause switch is read from here
    try:
        first = before(base / "before", int(args.mb * 1_000_000), args.seed)
        second = after(base / "after", first["notifications"], args.max_bytes, args.seed)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({"before": first, "after": second}, indent=2))
    return 0 if second["replayed_state_matches"] else 1


if __name__ == "__main__":
    sys.exit(main())
