"""The receiver's core: journal first, then decide, then run; one worker per service.

Every received alert is journaled (fsync'd) before it is decided on, and each decision is
journaled before the HTTP answer; runs are journaled when they start and finish, and so are the
alerts skipped before a start (silenced, inhibited, no longer active in Alertmanager) and the
pause switch. Replaying the journal at start therefore restores the queue, its attachments and
follow-ups, and the pause: queued items run, an item that was running when the receiver died
runs again (runbooks are idempotent; the run lock keeps it single).

Topology: one active receiver per environment. A second receiver on the same state directory
is refused (the journal lock, exit 3). With HA Alertmanager, the peers dedupe notifications
through their gossip (notification log), but each peer may still notify: point every peer at
the one receiver, which dedupes by fingerprint, so two notifications of one alert start one
run. A second receiver on another machine is not coordinated with this one (each would run)
until a shared coordination store (the fleet-coordination issue) lands: do not run one.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pflow_ops import outcome
from pflow_ops.receiver import alertmanager, control, worker
from pflow_ops.receiver.compaction import maybe_compact
from pflow_ops.receiver.journal import Journal
from pflow_ops.receiver.metrics import Metrics
from pflow_ops.receiver.options import JOURNAL_MAX_BYTES
from pflow_ops.receiver.payload import Notification
from pflow_ops.receiver.policy import QUEUED, Attached, Decision, Item, Policy, replay

_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+-]{0,120}$")
_QUOTED = frozenset({"alertname"})  # alert data, always JSON-quoted
_METRIC_BY_ACTION = {
    "deduplicated": "alerts_deduplicated_total",
    "throttled": "alerts_throttled_total",
}
PAUSE_POLL = 1.0  # seconds between two reads of the pause file (and before every start)

LogFn = Callable[..., None]
CheckFn = Callable[[str, str, str], alertmanager.Verdict]


def log_line(event: str, level: str = "", **fields: Any) -> None:
    """One line per decision on stderr. Values from alerts are JSON-quoted, so a label cannot
    forge a log line (newlines, control characters) or pass for another field."""
    parts = [datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "pflow-ops serve:"]
    parts += [level, event] if level else [event]
    for key, value in fields.items():
        text = str(value)
        if key in _QUOTED or not (isinstance(value, int | float) or _PLAIN.match(text)):
            text = json.dumps(text[:200])
        parts.append(f"{key}={text}")
    print(" ".join(parts), file=sys.stderr, flush=True)


def new_rid() -> str:
    return f"{time.time_ns():x}-{secrets.token_hex(3)}"


class Receiver:
    def __init__(
        self,
        env: str,
        policy: Policy,
        journal: Journal,
        launcher: worker.Launcher,
        *,
        metrics: Metrics | None = None,
        prefix: tuple[str, ...] | list[str] = worker.ALERT_COMMAND,
        dry_run: bool = False,
        run_timeout: float = 1800.0,
        log: LogFn = log_line,
        alertmanager_url: str = "",
        journal_max_bytes: int = JOURNAL_MAX_BYTES,
        check: CheckFn = alertmanager.check,
        pause_dir: Path | None = None,
    ) -> None:
        self.env = env
        self.policy = policy
        self.journal = journal
        self.launcher = launcher
        self.metrics = metrics or Metrics()
        self.prefix = tuple(prefix)
        self.dry_run = dry_run
        self.run_timeout = run_timeout
        self.log = log
        self.alertmanager_url = alertmanager_url
        self.journal_max_bytes = journal_max_bytes
        self.check = check
        self.pause_dir = pause_dir or journal.directory
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self._pause_read_at = float("-inf")
        self._pause_error = ""

    # -- start: rebuild the queue from the journal -----------------------------------------
    def recover(self) -> None:
        with self.cond:
            state = replay(self.policy, self.journal.read())
            if self.journal.skipped:
                self.log("journal_skipped", lines=self.journal.skipped)
            self.sync_pause(force=True)
            now = time.time()
            for rid in state.interrupted:
                rec = self.policy.requeue(rid, now)
                self.journal.append({**rec, "reason": "the receiver stopped mid-run"})
                self.log("requeued", rid=rid)
            decisions = [self.policy.decide(rid, rec, now) for rid, rec in state.undecided]
            self.journal.append(*(d.record() for d in decisions))
            for decision, (_, rec) in zip(decisions, state.undecided, strict=True):
                self._account(decision, rec)
            self.log(
                "replayed",
                records=state.records,
                queued=self.policy.queue_depth(),
                redecided=len(decisions),
                paused=self.policy.paused is not None,
            )
            self._compact()

    def _compact(self) -> None:
        """Under ``self.cond``, where every received alert has its decision journaled: the
        policy's snapshot then stands for the whole journal."""
        maybe_compact(
            self.journal,
            self.policy.snapshot_records,
            self.journal_max_bytes,
            metrics=self.metrics,
            log=self.log,
        )

    # -- receive: journal, decide, journal -----------------------------------------------
    def receive(self, note: Notification) -> list[dict[str, str]]:
        # The group key travels with each alert (its run documents the group's incident).
        receipts = [
            (new_rid(), {**alert.to_record(), "groupKey": note.group_key}) for alert in note.alerts
        ]
        with self.cond:
            if note.truncated_alerts:
                # Alerts Alertmanager never sent (its max_alerts): on record, counted, said.
                self.journal.append(
                    {
                        "event": "truncated",
                        "groupKey": note.group_key,
                        "truncatedAlerts": note.truncated_alerts,
                        "received": len(receipts),
                    }
                )
                self.metrics.inc("truncated_alerts_total", note.truncated_alerts)
                self.log(
                    "truncated_alerts",
                    level="WARNING",
                    count=note.truncated_alerts,
                    received=len(receipts),
                    group_key=note.group_key,
                )
            self.journal.append(
                *({"event": "received", "rid": rid, **rec} for rid, rec in receipts)
            )
            for rid, rec in receipts:
                self.metrics.inc("alerts_received_total", status=rec["status"])
                self.log(
                    "received",
                    rid=rid,
                    status=rec["status"],
                    alertname=rec["alertname"],
                    fingerprint=rec["fingerprint"],
                )
            now = time.time()
            decisions = [self.policy.decide(rid, rec, now) for rid, rec in receipts]
            self.journal.append(*(d.record() for d in decisions))
            for decision, (_, rec) in zip(decisions, receipts, strict=True):
                self._account(decision, rec)
            self._compact()
            self.cond.notify_all()
        return [_answer(d, rec) for d, (_, rec) in zip(decisions, receipts, strict=True)]

    def _account(self, d: Decision, rec: dict[str, Any]) -> None:
        fields: dict[str, Any] = {"rid": d.rid, "alertname": rec.get("alertname", "")}
        if d.action in _METRIC_BY_ACTION:
            self.metrics.inc(_METRIC_BY_ACTION[d.action])
        elif d.action == "attached" and d.item is not None:
            self.metrics.inc("alerts_attached_total", runbook=d.item.runbook)
            fields["item"] = d.item.rid
        elif d.action == "ignored":
            # Visible, not a silent 200: a warning line and alerts_ignored_total{reason}.
            self.metrics.inc("alerts_ignored_total", reason=d.reason)
            self.log("ignored", level="WARNING", **fields, reason=d.reason)
            return
        elif d.cancelled:
            self.metrics.inc("alerts_cancelled_total", len(d.cancelled))
        if d.item is not None:
            fields["runbook"] = d.item.runbook
        if d.via:
            fields["via"] = d.via
        if d.reason:
            fields["reason"] = d.reason
        if d.cancelled:
            fields["cancelled"] = ",".join(d.cancelled)
        self.log(d.action, **fields)

    # -- the pause switch ------------------------------------------------------------------
    def sync_pause(self, force: bool = False) -> None:
        """Follow the pause file (at most every PAUSE_POLL seconds unless ``force``); journal
        each change. Call with ``self.cond`` held."""
        clock = time.monotonic()
        if not force and clock - self._pause_read_at < PAUSE_POLL:
            return
        self._pause_read_at = clock
        state = control.read_pause(self.pause_dir)
        if state.error != self._pause_error:
            self._pause_error = state.error
            if state.error:
                self.log("pause_file_unreadable", level="WARNING", detail=state.error)
        reason = state.reason or state.error
        want = {"by": state.by, "reason": reason, "since": state.since}
        if state.paused and self.policy.paused != want:
            self.journal.append(self.policy.pause(state.by, reason, state.since, time.time()))
            self.log("paused", by=state.by or "?", reason=reason or "-")
        elif not state.paused and self.policy.paused is not None:
            self.journal.append(self.policy.resume(time.time()))
            self.log("resumed", queued=self.policy.queue_depth())
            self.cond.notify_all()
        self.metrics.set_gauge("paused", 1 if self.policy.paused is not None else 0)

    # -- run: one worker thread per service ----------------------------------------------
    def next_item(self, service: str) -> Item | None:
        """Block until ``service`` has queued work (None once the receiver is stopping)."""
        with self.cond:
            while not self.stopping.is_set():
                self.sync_pause()
                item = self.policy.next_for(service, time.time())
                if item is not None:
                    return item
                self.cond.wait(timeout=PAUSE_POLL)
        return None

    def _startable(self, item: Item) -> bool:
        return (
            not self.stopping.is_set()
            and self.policy.paused is None
            and self.policy.items.get(item.rid) is item
            and item.state == QUEUED
        )

    def pick(self, item: Item) -> tuple[Attached, alertmanager.Verdict] | None:
        """The first attached alert Alertmanager does not veto; the others are skipped
        (journaled). None when the item was cancelled, paused or emptied meanwhile."""
        while True:
            with self.cond:
                if not self._startable(item):
                    return None
                alert = item.first
                if alert is None:
                    self._cancel(item, "every attached alert was skipped or resolved")
                    return None
            verdict = self._ask(alert)  # no lock held: a slow Alertmanager blocks nobody
            if verdict.action != alertmanager.SKIP:
                return alert, verdict
            with self.cond:
                if self._startable(item) and item.covers(alert.fingerprint):
                    rec = self.policy.skip(item.rid, alert.fingerprint, verdict.reason, time.time())
                    self.journal.append(
                        {**rec, "alertname": alert.alertname, "detail": verdict.detail}
                    )
                    self.metrics.inc("alerts_skipped_total", reason=verdict.reason)
                    self.log(
                        "skipped",
                        rid=item.rid,
                        alertname=alert.alertname,
                        fingerprint=alert.fingerprint,
                        reason=verdict.reason,
                        detail=verdict.detail,
                    )

    def _ask(self, alert: Attached) -> alertmanager.Verdict:
        if not self.alertmanager_url:
            return alertmanager.Verdict(alertmanager.UNCHECKED, detail="no Alertmanager URL")
        verdict = self.check(self.alertmanager_url, alert.alertname, alert.fingerprint)
        if verdict.action == alertmanager.UNCHECKED:
            self.metrics.inc("alertmanager_check_errors_total")
            self.log("alertmanager_unchecked", level="WARNING", detail=verdict.detail)
        return verdict

    def _cancel(self, item: Item, reason: str) -> None:
        self.journal.append(self.policy.cancel(item.rid, reason, time.time()))
        self.metrics.inc("alerts_cancelled_total")
        self.log("cancelled", rid=item.rid, runbook=item.runbook, reason=reason)

    def claim(self, item: Item, alert: Attached, verdict: alertmanager.Verdict) -> list[str] | None:
        """Mark ``item`` started for ``alert`` and return its argv; None if it was cancelled,
        paused or the alert detached meanwhile."""
        with self.cond:
            self.sync_pause(force=True)
            if not self._startable(item) or not item.covers(alert.fingerprint):
                return None
            argv = worker.build_argv(
                self.prefix,
                alert.alertname,
                self.env,
                alert.fingerprint,
                self.dry_run,
                item.rid,
                group_key=alert.group_key,
                incident=alert.incident,
            )
            # The routing decision travels with the run (an alias or a runbook label).
            argv += ["--runbook", item.runbook]
            rec = self.policy.start(item.rid, time.time(), alert.fingerprint)
            self.journal.append(
                {**rec, "argv": argv, "check": verdict.check, "check_detail": verdict.detail}
            )
            self._compact()
            self.log(
                "started",
                rid=item.rid,
                runbook=item.runbook,
                alertname=alert.alertname,
                fingerprint=alert.fingerprint,
                covers=len(item.alerts),
                check=self.dry_run,
                alertmanager=verdict.check,
                attempt=item.attempts,
            )
            return argv

    def complete(self, item: Item, result: worker.RunResult) -> None:
        if result.aborted:
            # Killed by our own shutdown: left "started" in the journal, so it runs again.
            self.log("aborted", rid=item.rid, runbook=item.runbook)
            return
        with self.cond:
            rec = self.policy.finish(item.rid, time.time())
            self.journal.append(
                {
                    **rec,
                    "outcome": result.outcome,
                    "rc": result.rc,
                    "run_id": result.run_id,
                    "changed": result.changed,
                    "duration_s": round(result.duration_s, 3),
                    "detail": result.detail,
                }
            )
            self._compact()
            self.metrics.observe_run(item.runbook, result.outcome, result.duration_s)
            self.log(
                "finished",
                rid=item.rid,
                runbook=item.runbook,
                outcome=result.outcome,
                rc=result.rc,
                run_id=result.run_id or "-",
                duration_s=round(result.duration_s, 1),
                detail=result.detail or "-",
            )
            self.cond.notify_all()

    def work(self, service: str) -> None:
        """A worker thread's loop: runs for ``service`` one after another."""
        while not self.stopping.is_set():
            try:
                if not self._work_one(service):
                    return
            except Exception as exc:
                # A full disk or a bug must not silently kill the worker: say so, retry later.
                self.log("worker_error", service=service, error=f"{type(exc).__name__}: {exc}")
                self.stopping.wait(5.0)

    def _work_one(self, service: str) -> bool:
        item = self.next_item(service)
        if item is None:
            return False
        free = worker.wait_for_lock(self.env, service, self.stopping, self.run_timeout)
        if self.stopping.is_set():
            return False
        if not free:
            # Launch anyway: the child reports "refused" and the run is accounted for.
            self.log("lock_wait_expired", rid=item.rid, service=service)
        if item.attempts:  # requeued after a crash: the killed receiver's child may have done it
            orphan = worker.orphan_result(item.rid, self.stopping, self.run_timeout)
            if self.stopping.is_set():
                return False
            if orphan is not None:
                self.complete(item, orphan)
                return True
        picked = self.pick(item)
        argv = self.claim(item, *picked) if picked is not None else None
        if argv is None:
            return True
        try:
            result = self.launcher.run(argv, self.run_timeout)
        except Exception as exc:
            result = worker.RunResult(
                outcome.exit_code(outcome.ERROR),
                outcome.ERROR,
                0.0,
                detail=f"launcher failed: {exc}",
            )
        self.complete(item, result)
        return True

    def stop(self) -> None:
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()

    def services(self) -> set[str]:
        with self.cond:
            return {it.service for it in self.policy.items.values()}

    def depth(self) -> tuple[int, int]:
        with self.cond:
            return self.policy.queue_depth(), len(self.policy.running())


def _answer(d: Decision, rec: dict[str, Any]) -> dict[str, str]:
    """The HTTP answer for one alert: its decision, and why when it was ignored."""
    answer = {"fingerprint": str(rec["fingerprint"]), "decision": d.action}
    if d.action == "ignored":
        answer["reason"] = d.reason
    elif d.action == "attached" and d.item is not None:
        answer["run"] = d.item.rid
    return answer
