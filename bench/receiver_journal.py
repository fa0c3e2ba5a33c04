#!/usr/bin/env python3
"""Receiver journal: replay time of a 144 MB journal, and of the live journal under compaction.

Drives the receiver's own pieces (Journal, Policy, maybe_compact) with an alert storm, the way
``pflow_ops.receiver.core`` does: per notification the received records, the decisions, and a
run started and finished whenever a service's queue lets one start; every append fsync'd.

- before: no compaction, the storm goes on until the journal reaches --mb (144 MB, the size
  that took 11 s to replay in the issue); timed: ``Journal.read`` + ``policy.replay`` in a fresh
  policy, as the receiver does at start.
- after: the same storm (same seed) with ``maybe_compact`` after every append batch and the
  default ``--journal-max-bytes``; printed: the live journal's size at the end, the archives,
  the compactions and the slowest one (webhooks wait for it), and the replay time of the live
  journal; the replayed state is compared with the live policy's (pending items, handled
  fingerprints).

The snapshot is the policy's ``snapshot_records()`` when it has one; until then, a snapshot
written in the events today's replay understands (received + decision for each pending item,
received + decision + started + finished for each fingerprint handled within the window).
Prints JSON. Usage: .venv/bin/python bench/receiver_journal.py [--mb 144] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pflow_ops.receiver.compaction import maybe_compact  # noqa: E402
from pflow_ops.receiver.core import new_rid  # noqa: E402
from pflow_ops.receiver.journal import Journal  # noqa: E402
from pflow_ops.receiver.loadtest import alert  # noqa: E402
from pflow_ops.receiver.options import JOURNAL_MAX_BYTES  # noqa: E402
from pflow_ops.receiver.payload import Alert  # noqa: E402
from pflow_ops.receiver.policy import RUNNING, Policy, Route, replay  # noqa: E402

ROUTES = {
    "BackendServiceDown": Route("RB-01", "backend"),
    "HighErrorRate": Route("RB-01", "backend"),
    "DatabaseSlowQueries": Route("RB-02", "database"),
    "RedisHighEvictions": Route("RB-03", "cache"),
}
ALERTS_PER_NOTIFICATION = 20
FINGERPRINTS = 500  # distinct alerts in the storm: most notifications repeat known ones
WINDOW = 600.0

Hook = Callable[[], None]


def _policy() -> Policy:
    return Policy(ROUTES, throttle_window=WINDOW, dedupe_window=WINDOW)


def _alerts(rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for _ in range(ALERTS_PER_NOTIFICATION):
        n = rng.randrange(FINGERPRINTS)
        name = list(ROUTES)[n % len(ROUTES)]
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
        out.append(raw)
    return out


def _record(raw: dict[str, Any]) -> dict[str, Any]:
    a = Alert(
        status=raw["status"],
        labels=raw["labels"],
        annotations=raw["annotations"],
        starts_at=raw["startsAt"],
        ends_at=raw["endsAt"],
        generator_url=raw["generatorURL"],
        fingerprint=raw["fingerprint"],
    )
    return a.to_record()


def _notification(journal: Journal, policy: Policy, rng: random.Random, hook: Hook) -> None:
    """What ``Receiver.receive`` and the workers journal for one notification."""
    receipts = [(new_rid(), _record(raw)) for raw in _alerts(rng)]
    journal.append(*({"event": "received", "rid": rid, **rec} for rid, rec in receipts))
    hook()
    now = time.time()
    decisions = [policy.decide(rid, rec, now) for rid, rec in receipts]
    journal.append(*(d.record() for d in decisions))
    hook()
    for service in sorted({r.service for r in ROUTES.values()}):
        item = policy.next_for(service, now)
        if item is None:
            continue
        policy.start(item.rid, now)
        argv = ["pflow-ops", "alert", item.alertname, "--fingerprint", item.fingerprint]
        journal.append({"event": "started", "rid": item.rid, "attempt": 1, "argv": argv})
        hook()
        policy.finish(item.rid, time.time())
        journal.append(
            {"event": "finished", "rid": item.rid, "outcome": "healthy", "rc": 0, "run_id": "x"}
        )
        hook()


def _todays_events_snapshot(policy: Policy) -> list[dict[str, Any]]:
    """The policy's state in the events today's ``replay`` understands (see the docstring)."""
    out: list[dict[str, Any]] = []
    for it in policy.items.values():
        out.append(
            {
                "event": "received",
                "rid": it.rid,
                "status": "firing",
                "alertname": it.alertname,
                "fingerprint": it.fingerprint,
            }
        )
        decision: dict[str, Any] = {"event": "decision", "rid": it.rid, "action": "queued"}
        decision |= {"runbook": it.runbook, "service": it.service, "not_before": it.not_before}
        out.append(decision)
        if it.state == RUNNING:
            out.append({"event": "started", "rid": it.rid, "ts": policy.last_start[it.runbook]})
    for fp, ts in policy.handled.items():
        rid = f"handled-{fp}"
        out.append({"event": "received", "rid": rid, "fingerprint": fp, "alertname": ""})
        out.append({"event": "decision", "rid": rid, "action": "queued", "runbook": ""})
        out.append({"event": "started", "rid": rid, "ts": ts})
        out.append({"event": "finished", "rid": rid, "ts": ts})
    return out


def _snapshot(policy: Policy) -> Callable[[], list[dict[str, Any]]]:
    own: Callable[[], list[dict[str, Any]]] | None = getattr(policy, "snapshot_records", None)
    return own or (lambda: _todays_events_snapshot(policy))


def _timed_replay(directory: Path) -> tuple[float, Policy, int]:
    journal = Journal(directory)
    policy = _policy()
    started = time.perf_counter()
    state = replay(policy, journal.read())
    return time.perf_counter() - started, policy, state.records


def _state(policy: Policy) -> tuple[set[str], set[str]]:
    return {it.fingerprint for it in policy.items.values()}, set(policy.handled)


def before(directory: Path, target: int, seed: int) -> dict[str, Any]:
    journal = Journal(directory)
    journal.open()
    policy, rng = _policy(), random.Random(seed)
    notifications = 0
    while journal.size_bytes() < target:
        _notification(journal, policy, rng, lambda: None)
        notifications += 1
    size = journal.size_bytes()
    journal.close()
    replay_s, _, records = _timed_replay(directory)
    return {
        "notifications": notifications,
        "journal_bytes": size,
        "records": records,
        "replay_s": round(replay_s, 3),
    }


def after(directory: Path, notifications: int, max_bytes: int, seed: int) -> dict[str, Any]:
    journal = Journal(directory)
    journal.open()
    policy, rng = _policy(), random.Random(seed)
    snapshot = _snapshot(policy)
    compactions: list[float] = []

    def hook() -> None:
        started = time.perf_counter()
        if maybe_compact(journal, snapshot, max_bytes):
            compactions.append(time.perf_counter() - started)

    for _ in range(notifications):
        _notification(journal, policy, rng, hook)
    size = journal.size_bytes()
    archives = journal.archive_paths()
    journal.close()
    replay_s, replayed, records = _timed_replay(directory)
    return {
        "max_bytes": max_bytes,
        "live_journal_bytes": size,
        "records": records,
        "replay_s": round(replay_s, 3),
        "compactions": len(compactions),
        "slowest_compaction_s": round(max(compactions, default=0.0), 3),
        "archives_kept": len(archives),
        "archive_bytes": [p.stat().st_size for p in archives],
        "replayed_state_matches": _state(replayed) == _state(policy),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=144.0, help="journal size before (MB)")
    parser.add_argument("--max-bytes", type=int, default=JOURNAL_MAX_BYTES)
    parser.add_argument("--dir", type=Path, help="where to write (default: a temporary dir)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pflow-journal-", dir=args.dir))
    try:
        first = before(base / "before", int(args.mb * 1_000_000), args.seed)
        second = after(base / "after", first["notifications"], args.max_bytes, args.seed)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({"before": first, "after": second}, indent=2))
    return 0 if second["replayed_state_matches"] else 1


if __name__ == "__main__":
    sys.exit(main())
