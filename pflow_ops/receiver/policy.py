"""What the receiver does with each alert: queue a run, or deduplicate, throttle, ignore, cancel.

Pure logic over plain records (the same dicts the journal stores), so the live path and the
replay at start take the same decisions. Time is passed in (wall clock seconds, as journaled).

- An alert's labels are data. Only a catalogue alertname and a hex fingerprint can become a
  run; anything else is ignored (and journaled by the caller).
- Dedupe: a firing fingerprint already queued, running, or finished within the dedupe window
  is not queued again.
- Throttle: at most one run start per runbook (the receiver serves one env) per throttle
  window. A throttled alert is not dropped: its run is deferred until the window allows it
  (Alertmanager may not repeat a firing alert for hours), and its resolution cancels it.
- A resolved alert cancels queued (not running) work for its fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pflow_ops.receiver.payload import FINGERPRINT

QUEUED = "queued"
RUNNING = "running"


@dataclass(frozen=True)
class Route:
    """Where a catalogue alert leads."""

    runbook: str
    service: str
    implemented: bool = True


@dataclass
class Item:
    rid: str  # the receipt id of the alert that queued it
    alertname: str
    fingerprint: str
    runbook: str
    service: str
    state: str = QUEUED
    attempts: int = 0
    not_before: float = 0.0  # a throttled item waits until then


@dataclass(frozen=True)
class Decision:
    rid: str
    action: str  # queued | deduplicated | throttled | ignored | resolved
    # why; for "ignored" one of unknown_alert, not_automated, bad_fingerprint (a metric label)
    reason: str = ""
    item: Item | None = None
    cancelled: tuple[str, ...] = field(default_factory=tuple)

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"event": "decision", "rid": self.rid, "action": self.action}
        if self.reason:
            rec["reason"] = self.reason
        if self.item is not None:
            rec["runbook"] = self.item.runbook
            rec["service"] = self.item.service
            if self.item.not_before:
                rec["not_before"] = round(self.item.not_before, 3)
        if self.cancelled:
            rec["cancelled"] = list(self.cancelled)
        return rec


class Policy:
    def __init__(
        self, routes: dict[str, Route], throttle_window: float, dedupe_window: float
    ) -> None:
        self.routes = routes
        self.throttle_window = throttle_window
        self.dedupe_window = dedupe_window
        self.items: dict[str, Item] = {}  # pending work, in arrival order
        self.handled: dict[str, float] = {}  # fingerprint -> when its run finished
        self.last_start: dict[str, float] = {}  # runbook -> when its last run started

    # -- decisions -------------------------------------------------------------------------
    def decide(self, rid: str, alert: dict[str, Any], now: float) -> Decision:
        """Decide on one received alert record (``status``, ``alertname``, ``fingerprint``)."""
        name = alert.get("alertname")
        fp = alert.get("fingerprint")
        if alert.get("status") == "resolved":
            cancelled = self.cancel_fingerprint(str(fp))
            return Decision(
                rid, "resolved", "cancelled queued work" if cancelled else "", None, cancelled
            )
        route = self.routes.get(name) if isinstance(name, str) else None
        if route is None:
            return Decision(rid, "ignored", "unknown_alert")
        if not route.implemented:
            return Decision(rid, "ignored", "not_automated")
        if not isinstance(fp, str) or not FINGERPRINT.match(fp):
            return Decision(rid, "ignored", "bad_fingerprint")
        self._forget_old(now)
        if any(it.fingerprint == fp for it in self.items.values()):
            return Decision(rid, "deduplicated", "already queued or running")
        if fp in self.handled:
            return Decision(rid, "deduplicated", "handled recently")
        opens = self._window_opens(route.runbook, now)
        item = Item(rid, str(name), fp, route.runbook, route.service)
        self.items[rid] = item
        if opens <= now:
            return Decision(rid, QUEUED, "", item)
        item.not_before = opens
        why = f"{route.runbook} started or is pending within {self.throttle_window:.0f} s"
        return Decision(rid, "throttled", f"{why}: deferred {opens - now:.0f} s", item)

    def _window_opens(self, runbook: str, now: float) -> float:
        """When a new run of ``runbook`` may start: one throttle window after its latest start,
        counting the runs still queued as starting when they may (now at the earliest)."""
        starts = [
            max(it.not_before, now)
            for it in self.items.values()
            if it.runbook == runbook and it.state == QUEUED
        ]
        if runbook in self.last_start:
            starts.append(self.last_start[runbook])
        return max(starts) + self.throttle_window if starts else now

    def _forget_old(self, now: float) -> None:
        stale = [fp for fp, ts in self.handled.items() if now - ts >= self.dedupe_window]
        for fp in stale:
            del self.handled[fp]

    def cancel_fingerprint(self, fp: str) -> tuple[str, ...]:
        rids = tuple(
            rid for rid, it in self.items.items() if it.fingerprint == fp and it.state == QUEUED
        )
        for rid in rids:
            del self.items[rid]
        return rids

    # -- the run lifecycle -------------------------------------------------------------------
    def next_for(self, service: str, now: float) -> Item | None:
        """The oldest queued item of ``service`` that may start now, unless one of it is
        already running."""
        mine = [it for it in self.items.values() if it.service == service]
        if any(it.state == RUNNING for it in mine):
            return None
        return next((it for it in mine if it.state == QUEUED and it.not_before <= now), None)

    def start(self, rid: str, now: float) -> None:
        item = self.items.get(rid)
        if item is not None:
            item.state = RUNNING
            item.attempts += 1
            self.last_start[item.runbook] = now

    def finish(self, rid: str, now: float) -> None:
        item = self.items.pop(rid, None)
        if item is not None:
            self.handled[item.fingerprint] = now

    def requeue(self, rid: str) -> None:
        item = self.items.get(rid)
        if item is not None:
            item.state = QUEUED

    def queue_depth(self) -> int:
        return sum(1 for it in self.items.values() if it.state == QUEUED)

    def running(self) -> list[Item]:
        return [it for it in self.items.values() if it.state == RUNNING]


@dataclass
class Replay:
    """What a journal replay leaves for the receiver to finish."""

    undecided: list[tuple[str, dict[str, Any]]]  # receipts journaled without a decision
    interrupted: list[str]  # items that were running when the receiver stopped
    records: int = 0


def _queued_item(rec: dict[str, Any], receipt: dict[str, Any] | None) -> Item | None:
    if receipt is None or not isinstance(rec.get("runbook"), str):
        return None
    return Item(
        rid=str(rec["rid"]),
        alertname=str(receipt.get("alertname")),
        fingerprint=str(receipt.get("fingerprint")),
        runbook=str(rec["runbook"]),
        service=str(rec.get("service")),
        not_before=float(rec.get("not_before") or 0.0),
    )


def replay(policy: Policy, records: Iterable[dict[str, Any]]) -> Replay:
    """Rebuild ``policy``'s state from journal records, in order."""
    receipts: dict[str, dict[str, Any]] = {}
    undecided: dict[str, dict[str, Any]] = {}
    count = 0
    for rec in records:
        count += 1
        event, rid, ts = rec.get("event"), str(rec.get("rid")), float(rec.get("ts") or 0)
        if event == "received":
            receipts[rid] = rec
            undecided[rid] = rec
        elif event == "decision":
            undecided.pop(rid, None)
            receipt = receipts.pop(rid, None)
            deferred = rec.get("action") in (QUEUED, "throttled")
            item = _queued_item(rec, receipt) if deferred else None
            if item is not None:
                policy.items[rid] = item
            for cancelled in rec.get("cancelled") or ():
                policy.items.pop(str(cancelled), None)
        elif event == "started":
            policy.start(rid, ts)
        elif event == "finished":
            policy.finish(rid, ts)
        elif event == "requeued":
            policy.requeue(rid)
    interrupted = [it.rid for it in policy.running()]
    return Replay(list(undecided.items()), interrupted, count)
