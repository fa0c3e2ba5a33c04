"""What the receiver does with each alert: start a run, attach it to one, or deduplicate, ignore.

Pure logic over plain records (the dicts the journal stores). Every change of state is a record
applied by :meth:`Policy.apply`, live and at replay alike, so a replayed journal rebuilds exactly
the state the live receiver had. Time is passed in (wall clock seconds, as journaled).

- Routing is :func:`pflow_ops.routing.route` (runbook label, catalogue, aliases). An alert that
  does not route, whose fingerprint is not hex, whose notification's group key may not travel
  with a run (``bad_group_key``) or whose ``incident`` annotation is not an incident key
  (``bad_incident``) is ignored with a reason (a metric label): the incident it would document
  cannot be named, and documenting it elsewhere would be wrong.
- No stacking. Per runbook there is at most one run queued or running, plus at most ONE pending
  follow-up. A firing alert for runbook R:
  * joins R's queued item if there is one ("attached");
  * else, if R started within the throttle window (running now, or finished since), starts the
    follow-up, deferred to R's last start + one window ("throttled"): a symptom of the same
    outage must not start a second run right after the first recovered it, and the check
    against Alertmanager before the start drops it if the alert has resolved by then;
  * else queues a run at once ("queued").
  Nothing is ever deferred beyond one window from now.
- Dedupe: a fingerprint attached to a queued or running item, or whose run finished within the
  dedupe window, is not attached again ("deduplicated").
- A resolved alert detaches its fingerprint from the queued items; an item with no alert left
  is cancelled (a running one is not: the run covers the alerts it started with).
- Before a start the receiver asks Alertmanager (``alertmanager.py``): a silenced, inhibited or
  no longer active alert is skipped (detached); a not-active one also counts as handled, so a
  flood of a stale or forged notification is checked once per dedupe window.
- The run launches for the item's first still-attached alert; every attached alert is in the
  journal (the run's audit: which alerts it covered).
- Paused (``pflow-ops receiver pause``): alerts are still decided and resolutions still
  cancel, but no item is handed out to start.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from pflow_ops import event_input, routing
from pflow_ops.receiver import alertmanager

QUEUED = "queued"
RUNNING = "running"
SNAPSHOT_VERSION = 1
BAD_GROUP_KEY = "bad_group_key"
BAD_INCIDENT = "bad_incident"


@dataclass
class Attached:
    """One alert a run covers."""

    rid: str  # the receipt of the alert
    alertname: str
    fingerprint: str
    group_key: str = ""  # its notification's groupKey (checked text)
    incident: str = ""  # its `incident` annotation (an incident key)


@dataclass
class Item:
    """One run of a runbook: queued (perhaps deferred), then running."""

    rid: str  # the receipt id of the alert that opened it
    runbook: str
    service: str
    alerts: list[Attached] = field(default_factory=list)  # in arrival order
    state: str = QUEUED
    attempts: int = 0
    not_before: float = 0.0  # a follow-up waits until then
    launched: str = ""  # the fingerprint the run was started for

    @property
    def first(self) -> Attached | None:
        """The alert the run is for: the one it launched with, else the first still attached."""
        for alert in self.alerts:
            if alert.fingerprint == self.launched:
                return alert
        return self.alerts[0] if self.alerts else None

    def covers(self, fingerprint: str) -> bool:
        return any(a.fingerprint == fingerprint for a in self.alerts)


@dataclass(frozen=True)
class Decision:
    rid: str
    action: str  # queued | throttled | attached | deduplicated | ignored | resolved
    reason: str = ""  # "ignored": routing.REASONS, bad_fingerprint, BAD_GROUP_KEY, BAD_INCIDENT
    item: Item | None = None
    cancelled: tuple[str, ...] = ()
    alertname: str = ""
    fingerprint: str = ""
    via: str = ""  # how it was routed: label | catalogue | alias
    group_key: str = ""
    incident: str = ""

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"event": "decision", "rid": self.rid, "action": self.action}
        if self.reason:
            rec["reason"] = self.reason
        if self.action in (QUEUED, "throttled", "attached", "resolved"):
            # Validated values only (an identifier, hex): the replay needs no receipt.
            rec["alertname"], rec["fingerprint"] = self.alertname, self.fingerprint
            for key, value in (("group_key", self.group_key), ("incident", self.incident)):
                if value:  # checked text (event_input), what the run is launched with
                    rec[key] = value
        if self.via:
            rec["via"] = self.via
        if self.item is not None:
            rec["item"] = self.item.rid
            rec["runbook"] = self.item.runbook
            rec["service"] = self.item.service
            if self.item.not_before:
                rec["not_before"] = self.item.not_before
        if self.cancelled:
            rec["cancelled"] = list(self.cancelled)
        return rec


def _t(now: float) -> float:
    """Times as journaled (ms): the live state and the replayed one hold the same numbers."""
    return round(now, 3)


class Policy:
    def __init__(self, table: routing.Table, throttle_window: float, dedupe_window: float) -> None:
        self.table = table
        self.throttle_window = throttle_window
        self.dedupe_window = dedupe_window
        self.items: dict[str, Item] = {}  # pending work, in arrival order
        self.handled: dict[str, float] = {}  # fingerprint -> when its run finished
        self.last_start: dict[str, float] = {}  # runbook -> when its last run started
        self.paused: dict[str, Any] | None = None  # who, reason, since (None: not paused)

    # -- decisions -------------------------------------------------------------------------
    def decide(self, rid: str, alert: dict[str, Any], now: float) -> Decision:
        """Decide on one received alert record and apply the decision."""
        decision = self.judge(rid, alert, now)
        self.apply({**decision.record(), "ts": _t(now)})
        if decision.action in (QUEUED, "throttled"):  # the item as stored, not its prototype
            return dataclasses.replace(decision, item=self.items[rid])
        return decision

    def judge(self, rid: str, alert: dict[str, Any], now: float) -> Decision:
        """The decision for one alert (``status``, ``alertname``, ``fingerprint``, ``labels``),
        without changing anything."""
        fp = alert.get("fingerprint")
        fp = fp if isinstance(fp, str) and routing.FINGERPRINT.match(fp) else None
        if alert.get("status") == "resolved":
            cancelled = self._cancelled_by(fp) if fp else ()
            why = "cancelled queued work" if cancelled else ""
            return Decision(rid, "resolved", why, None, cancelled, "", fp or "")
        labels = alert.get("labels")
        routed = routing.route(
            self.table, alert.get("alertname"), labels if isinstance(labels, dict) else None
        )
        if not routed.ok:
            return Decision(rid, "ignored", routed.reason, alertname=routed.alertname)
        if fp is None:
            return Decision(rid, "ignored", "bad_fingerprint", alertname=routed.alertname)
        group_key, incident, reason = incident_fields(alert)
        if reason:
            return Decision(rid, "ignored", reason, alertname=routed.alertname)
        base = Decision(
            rid,
            "",
            alertname=routed.alertname,
            fingerprint=fp,
            via=routed.via,
            group_key=group_key,
            incident=incident,
        )
        return self._place(base, routed, now)

    def _place(self, base: Decision, routed: routing.Routed, now: float) -> Decision:
        fp, target = base.fingerprint, routed.target
        assert target is not None  # routed.ok
        if any(it.covers(fp) for it in self.items.values()):
            return _with(base, "deduplicated", "already attached to a queued or running run")
        handled = self.handled.get(fp)
        if handled is not None and now - handled < self.dedupe_window:
            return _with(base, "deduplicated", "handled recently")
        queued = self._queued(target.runbook)
        if queued is not None:
            return _with(base, "attached", f"joins {queued.rid}", queued)
        opens = self.last_start.get(target.runbook, float("-inf")) + self.throttle_window
        item = Item(base.rid, target.runbook, target.service)
        if opens <= now:
            return _with(base, QUEUED, "", item)
        item.not_before = _t(opens)
        why = f"{target.runbook} started within {self.throttle_window:.0f} s: follow-up"
        return _with(base, "throttled", f"{why} in {opens - now:.0f} s", item)

    def _queued(self, runbook: str) -> Item | None:
        return next(
            (it for it in self.items.values() if it.runbook == runbook and it.state == QUEUED),
            None,
        )

    def _cancelled_by(self, fp: str) -> tuple[str, ...]:
        """The queued items that lose their last alert when ``fp`` resolves."""
        return tuple(
            it.rid
            for it in self.items.values()
            if it.state == QUEUED and it.covers(fp) and all(a.fingerprint == fp for a in it.alerts)
        )

    # -- the run lifecycle: each step is a record, applied -----------------------------------
    def next_for(self, service: str, now: float) -> Item | None:
        """The oldest queued item of ``service`` that may start now; None while paused or while
        one of the service's runs is running."""
        if self.paused is not None:
            return None
        mine = [it for it in self.items.values() if it.service == service]
        if any(it.state == RUNNING for it in mine):
            return None
        return next((it for it in mine if it.state == QUEUED and it.not_before <= now), None)

    def start(self, rid: str, now: float, fingerprint: str = "") -> dict[str, Any]:
        """Start ``rid`` for ``fingerprint`` (default: its first attached alert)."""
        item = self.items.get(rid)
        alert = item.first if item is not None and not fingerprint else None
        rec: dict[str, Any] = {"event": "started", "rid": rid, "ts": _t(now)}
        rec["fingerprint"] = fingerprint or (alert.fingerprint if alert else "")
        if item is not None:
            rec["attempt"] = item.attempts + 1
            rec["alerts"] = [asdict(a) for a in item.alerts]
        self.apply(rec)
        return rec

    def finish(self, rid: str, now: float) -> dict[str, Any]:
        return self._do({"event": "finished", "rid": rid, "ts": _t(now)})

    def requeue(self, rid: str, now: float = 0.0) -> dict[str, Any]:
        return self._do({"event": "requeued", "rid": rid, "ts": _t(now)})

    def skip(self, rid: str, fingerprint: str, reason: str, now: float) -> dict[str, Any]:
        """Detach an alert Alertmanager says is silenced, inhibited or no longer active."""
        rec = {"event": "skipped", "rid": rid, "fingerprint": fingerprint, "reason": reason}
        return self._do({**rec, "ts": _t(now)})

    def cancel(self, rid: str, reason: str, now: float) -> dict[str, Any]:
        return self._do({"event": "cancelled", "rid": rid, "reason": reason, "ts": _t(now)})

    def pause(self, by: str, reason: str, since: float, now: float) -> dict[str, Any]:
        rec = {"event": "paused", "by": by, "reason": reason, "since": since}
        return self._do({**rec, "ts": _t(now)})

    def resume(self, now: float) -> dict[str, Any]:
        return self._do({"event": "resumed", "ts": _t(now)})

    def _do(self, rec: dict[str, Any]) -> dict[str, Any]:
        self.apply(rec)
        return rec

    def queue_depth(self) -> int:
        return sum(1 for it in self.items.values() if it.state == QUEUED)

    def running(self) -> list[Item]:
        return [it for it in self.items.values() if it.state == RUNNING]

    # -- the one mutator ---------------------------------------------------------------------
    def apply(self, rec: dict[str, Any], receipt: dict[str, Any] | None = None) -> None:
        """Apply one journal record. ``receipt`` is the alert's "received" record, for the
        decisions of journals written before decisions carried the alert themselves."""
        event, rid, ts = rec.get("event"), str(rec.get("rid")), float(rec.get("ts") or 0)
        if event == "decision":
            self._apply_decision(rec, receipt or {})
        elif event == "started":
            self._apply_start(rid, str(rec.get("fingerprint") or ""), ts)
        elif event == "finished":
            item = self.items.pop(rid, None)
            for alert in item.alerts if item is not None else ():
                self.handled[alert.fingerprint] = ts
            self._forget_old(ts)
        elif event == "requeued" and rid in self.items:
            self.items[rid].state = QUEUED
        elif event == "skipped":
            self._apply_skip(rid, str(rec.get("fingerprint")), str(rec.get("reason")), ts)
        elif event == "cancelled":
            self.items.pop(rid, None)
        elif event == "paused":
            self.paused = {k: rec.get(k) for k in ("by", "reason", "since")}
        elif event == "resumed":
            self.paused = None
        elif event == "snapshot":
            self._restore(rec)

    def _apply_decision(self, rec: dict[str, Any], receipt: dict[str, Any]) -> None:
        action, rid = rec.get("action"), str(rec.get("rid"))
        fp = str(rec.get("fingerprint") or receipt.get("fingerprint") or "")
        name = str(rec.get("alertname") or receipt.get("alertname") or "")
        attached = Attached(
            rid, name, fp, str(rec.get("group_key") or ""), str(rec.get("incident") or "")
        )
        if action in (QUEUED, "throttled") and isinstance(rec.get("runbook"), str):
            self.items[rid] = Item(
                rid,
                str(rec["runbook"]),
                str(rec.get("service")),
                [attached],
                not_before=float(rec.get("not_before") or 0.0),
            )
        elif action == "attached" and str(rec.get("item")) in self.items:
            self.items[str(rec["item"])].alerts.append(attached)
        elif action == "resolved":
            for item in list(self.items.values()):
                if item.state == QUEUED and fp:
                    self._detach(item, fp)
        for cancelled in rec.get("cancelled") or ():
            self.items.pop(str(cancelled), None)

    def _apply_start(self, rid: str, fingerprint: str, ts: float) -> None:
        item = self.items.get(rid)
        if item is None:
            return
        item.state = RUNNING
        item.attempts += 1
        item.launched = fingerprint
        self.last_start[item.runbook] = ts

    def _apply_skip(self, rid: str, fingerprint: str, reason: str, ts: float) -> None:
        if rid in self.items:
            self._detach(self.items[rid], fingerprint)
        if reason == alertmanager.NOT_ACTIVE:
            # Resolved, expired or never there: a flood of the same stale notification is then
            # deduplicated for the dedupe window, as after a run. A silenced or inhibited alert
            # is not remembered: when its silence ends, its next notification must run.
            self.handled[fingerprint] = ts

    def _detach(self, item: Item, fingerprint: str) -> None:
        item.alerts = [a for a in item.alerts if a.fingerprint != fingerprint]

    def _forget_old(self, now: float) -> None:
        stale = [fp for fp, ts in self.handled.items() if now - ts >= self.dedupe_window]
        for fp in stale:
            del self.handled[fp]

    # -- snapshot (journal compaction) -------------------------------------------------------
    def snapshot_records(self) -> list[dict[str, Any]]:
        """The state as records: a compacted journal is these plus the records after them."""
        return [
            {
                "event": "snapshot",
                "version": SNAPSHOT_VERSION,
                "items": [asdict(it) for it in self.items.values()],
                "handled": dict(self.handled),
                "last_start": dict(self.last_start),
                "paused": copy.deepcopy(self.paused),
            }
        ]

    def _restore(self, rec: dict[str, Any]) -> None:
        self.items = {}
        for raw in rec.get("items") or ():
            alerts = [Attached(**a) for a in raw.get("alerts") or ()]
            self.items[str(raw["rid"])] = Item(**{**raw, "alerts": alerts})
        self.handled = {str(k): float(v) for k, v in (rec.get("handled") or {}).items()}
        self.last_start = {str(k): float(v) for k, v in (rec.get("last_start") or {}).items()}
        paused = rec.get("paused")
        self.paused = dict(paused) if isinstance(paused, dict) else None

    def state(self) -> dict[str, Any]:
        """Everything the policy holds, comparable (tests: replay equals the live state)."""
        snap = self.snapshot_records()[0]
        return {k: v for k, v in snap.items() if k not in ("event", "version")}


def _with(base: Decision, action: str, reason: str, item: Item | None = None) -> Decision:
    return dataclasses.replace(base, action=action, reason=reason, item=item, cancelled=())


def incident_fields(alert: dict[str, Any]) -> tuple[str, str, str]:
    """(group key, incident annotation, reason): the notification's ``groupKey`` and the
    alert's ``incident`` annotation when both may travel with its run (checked by the
    collection's event_input, as the playbook's first play checks them), else the reason to
    ignore the alert (``bad_group_key``, ``bad_incident``)."""
    group_key = alert.get("groupKey")
    group_key = "" if group_key is None else group_key
    if event_input.group_key_problem(group_key):
        return "", "", BAD_GROUP_KEY
    annotations = alert.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    incident = annotations.get(event_input.INCIDENT_ANNOTATION, "")
    if event_input.incident_key_problem(incident):
        return "", "", BAD_INCIDENT
    return str(group_key), str(incident), ""


@dataclass
class Replay:
    """What a journal replay leaves for the receiver to finish."""

    undecided: list[tuple[str, dict[str, Any]]]  # receipts journaled without a decision
    interrupted: list[str]  # items that were running when the receiver stopped
    records: int = 0


def replay(policy: Policy, records: Iterable[dict[str, Any]]) -> Replay:
    """Rebuild ``policy``'s state from journal records (or a snapshot and the records after)."""
    receipts: dict[str, dict[str, Any]] = {}
    count = 0
    for rec in records:
        count += 1
        event, rid = rec.get("event"), str(rec.get("rid"))
        if event == "received":
            receipts[rid] = rec
            continue
        policy.apply(rec, receipts.pop(rid, None) if event == "decision" else None)
    interrupted = [it.rid for it in policy.running()]
    return Replay(list(receipts.items()), interrupted, count)
