"""The receiver's core: journal first, then decide, then run; one worker per service.

Every received alert is journaled (fsync'd) before it is decided on, and each decision is
journaled before the HTTP answer; runs are journaled when they start and finish. Replaying the
journal at start therefore restores the queue: queued items run, an item that was running when
the receiver died runs again (runbooks are idempotent; the run lock keeps it single).
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
from typing import Any

from pflow_ops import outcome
from pflow_ops.receiver import worker
from pflow_ops.receiver.journal import Journal
from pflow_ops.receiver.metrics import Metrics
from pflow_ops.receiver.payload import Notification
from pflow_ops.receiver.policy import QUEUED, Decision, Item, Policy, replay

_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+-]{0,120}$")
_METRIC_BY_ACTION = {
    "deduplicated": "alerts_deduplicated_total",
    "throttled": "alerts_throttled_total",
}

LogFn = Callable[..., None]


def log_line(event: str, **fields: Any) -> None:
    """One line per decision on stderr. Values from alerts are JSON-quoted, so a label cannot
    forge a log line (newlines, control characters) or pass for another field."""
    parts = [datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "pflow-ops serve:", event]
    for key, value in fields.items():
        text = str(value)
        if not (isinstance(value, int | float) or _PLAIN.match(text)):
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
        self.cond = threading.Condition()
        self.stopping = threading.Event()

    # -- start: rebuild the queue from the journal -----------------------------------------
    def recover(self) -> None:
        with self.cond:
            state = replay(self.policy, self.journal.read())
            if self.journal.skipped:
                self.log("journal_skipped", lines=self.journal.skipped)
            for rid in state.interrupted:
                self.policy.requeue(rid)
                self.journal.append(
                    {"event": "requeued", "rid": rid, "reason": "the receiver stopped mid-run"}
                )
                self.log("requeued", rid=rid)
            now = time.time()
            decisions = [self.policy.decide(rid, rec, now) for rid, rec in state.undecided]
            self.journal.append(*(d.record() for d in decisions))
            for decision, (_, rec) in zip(decisions, state.undecided, strict=True):
                self._account(decision, rec)
            self.log(
                "replayed",
                records=state.records,
                queued=self.policy.queue_depth(),
                redecided=len(decisions),
            )

    # -- receive: journal, decide, journal -----------------------------------------------
    def receive(self, note: Notification) -> list[dict[str, str]]:
        receipts = [(new_rid(), alert.to_record()) for alert in note.alerts]
        with self.cond:
            self.journal.append(
                *(
                    {"event": "received", "rid": rid, "groupKey": note.group_key, **rec}
                    for rid, rec in receipts
                )
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
            self.cond.notify_all()
        return [
            {"fingerprint": rec["fingerprint"], "decision": d.action}
            for d, (_, rec) in zip(decisions, receipts, strict=True)
        ]

    def _account(self, d: Decision, rec: dict[str, Any]) -> None:
        if d.action in _METRIC_BY_ACTION:
            self.metrics.inc(_METRIC_BY_ACTION[d.action])
        elif d.action == "ignored":
            self.metrics.inc("alerts_ignored_total", reason=d.reason)
        elif d.cancelled:
            self.metrics.inc("alerts_cancelled_total", len(d.cancelled))
        fields: dict[str, Any] = {"rid": d.rid, "alertname": rec.get("alertname", "")}
        if d.item is not None:
            fields["runbook"] = d.item.runbook
        if d.reason:
            fields["reason"] = d.reason
        if d.cancelled:
            fields["cancelled"] = ",".join(d.cancelled)
        self.log(d.action, **fields)

    # -- run: one worker thread per service ----------------------------------------------
    def next_item(self, service: str) -> Item | None:
        """Block until ``service`` has queued work (None once the receiver is stopping)."""
        with self.cond:
            while not self.stopping.is_set():
                item = self.policy.next_for(service, time.time())
                if item is not None:
                    return item
                self.cond.wait(timeout=1.0)
        return None

    def claim(self, item: Item) -> list[str] | None:
        """Mark ``item`` started and return its argv; None if it was cancelled meanwhile."""
        with self.cond:
            if self.stopping.is_set() or self.policy.items.get(item.rid) is not item:
                return None
            if item.state != QUEUED:
                return None
            argv = worker.build_argv(
                self.prefix, item.alertname, self.env, item.fingerprint, self.dry_run, item.rid
            )
            self.policy.start(item.rid, time.time())
            self.journal.append(
                {"event": "started", "rid": item.rid, "attempt": item.attempts, "argv": argv}
            )
            self.log(
                "started",
                rid=item.rid,
                runbook=item.runbook,
                alertname=item.alertname,
                fingerprint=item.fingerprint,
                check=self.dry_run,
                attempt=item.attempts,
            )
            return argv

    def complete(self, item: Item, result: worker.RunResult) -> None:
        if result.aborted:
            # Killed by our own shutdown: left "started" in the journal, so it runs again.
            self.log("aborted", rid=item.rid, runbook=item.runbook)
            return
        with self.cond:
            self.policy.finish(item.rid, time.time())
            self.journal.append(
                {
                    "event": "finished",
                    "rid": item.rid,
                    "outcome": result.outcome,
                    "rc": result.rc,
                    "run_id": result.run_id,
                    "changed": result.changed,
                    "duration_s": round(result.duration_s, 3),
                    "detail": result.detail,
                }
            )
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
        argv = self.claim(item)
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
