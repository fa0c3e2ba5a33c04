"""The review's second source: the receiver's journal (``$PFLOW_OPS_HOME/receiver/ENV/``).

The run reports say what the runs did; only the journal says which alerts started none, and why:
deduplicated, ignored (an unknown alert, a bad fingerprint...), a resolution notice, skipped on
Alertmanager's word (silenced, inhibited, no longer active), cancelled before its run, or refused
by a guard once started. Each received alert gets one fate, followed through the journal's
records (:mod:`pflow_ops.receiver.policy` writes them):

- ``started``: its run was launched for it; ``covered``: it joined a run launched for another
  alert; ``refused``: its run ended refused (a lock, the restart budget);
- ``deduplicated``, ``ignored``, ``resolved``: the receiver's decision, with its reason;
- ``skipped``, ``cancelled``: its queued run never started, with the reason;
- ``pending``, ``running``: still queued (or throttled) or running when the journal ends.

``not_started`` lists every fate but ``started``, ``covered`` and ``running`` (their run did
start): the alerts the receiver did not act on, and those whose run was refused.

Read only, never the receiver's lock: the live file and its compaction archives (gzip), oldest
first. A torn or corrupt line, or a cut-short archive, is counted and skipped, never fatal.
:func:`summarize` is pure: records in, the review's ``receiver`` section out.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOP = 20
SETTLED_BY_DECISION = ("deduplicated", "ignored", "resolved")
UNSETTLED = ("pending", "running")


@dataclass
class Source:
    """One journal file read: where, how many records, how many lines were unreadable."""

    env: str
    path: Path
    records: int = 0
    corrupt: int = 0


def parse_lines(lines: Iterable[bytes], source: Source) -> Iterator[dict[str, Any]]:
    """The intact records of ``lines`` (as the receiver's replay takes them); a line without
    its newline, not JSON, or not a record is counted in ``source.corrupt``."""
    for raw in lines:
        try:
            record = json.loads(raw) if raw.endswith(b"\n") else None
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            source.records += 1
            yield record
        else:
            source.corrupt += 1


def _lines(path: Path, source: Source) -> Iterator[bytes]:
    """The file's lines; a gzip archive cut short (or not gzip) counts one corrupt line."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as gz:
                yield from gz
        else:
            with path.open("rb") as fh:
                yield from fh
    except (OSError, EOFError, zlib.error):
        source.corrupt += 1


def load(receiver_dir: Path) -> tuple[list[Source], list[dict[str, Any]]]:
    """Every environment's journal under ``receiver_dir``, archives before the live file."""
    sources: list[Source] = []
    records: list[dict[str, Any]] = []
    envs = sorted(p for p in receiver_dir.glob("*") if p.is_dir()) if receiver_dir.is_dir() else []
    for env_dir in envs:
        for path in [*sorted(env_dir.glob("journal-*.jsonl.gz")), env_dir / "journal.jsonl"]:
            if path.is_file():
                source = Source(env_dir.name, path)
                records += parse_lines(_lines(path, source), source)
                sources.append(source)
    return sources, records


@dataclass
class _Alert:
    rid: str
    alertname: str = ""
    status: str = ""
    fingerprint: str = ""
    ts: float = 0.0
    runbook: str = ""
    fate: str = "pending"
    reason: str = ""


@dataclass
class _Run:
    rid: str
    runbook: str
    alertname: str
    ts: float
    launched: str = ""
    outcome: str = "running"


@dataclass
class _State:
    alerts: dict[str, _Alert] = field(default_factory=dict)
    items: dict[str, list[str]] = field(default_factory=dict)  # item rid -> its alerts' rids
    runs: dict[str, _Run] = field(default_factory=dict)
    truncated: list[tuple[float, int]] = field(default_factory=list)

    def alert(self, rid: str, rec: dict[str, Any]) -> _Alert:
        if rid not in self.alerts:
            self.alerts[rid] = _Alert(rid, _text(rec.get("alertname")), ts=_ts(rec))
        return self.alerts[rid]

    def settle(self, item: str, fate: str, reason: str, fingerprint: str | None = None) -> None:
        """Give the item's still unsettled alerts (of ``fingerprint``, when given) a fate."""
        for rid in self.items.get(item, ()):
            a = self.alerts[rid]
            if a.fate in UNSETTLED and fingerprint in (None, a.fingerprint):
                a.fate, a.reason = fate, reason


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _ts(rec: dict[str, Any]) -> float:
    try:
        return float(rec.get("ts") or 0)
    except (TypeError, ValueError):
        return 0.0


def _decision(state: _State, rec: dict[str, Any]) -> None:
    rid, action = _text(rec.get("rid")), _text(rec.get("action"))
    a = state.alert(rid, rec)
    a.alertname = a.alertname or _text(rec.get("alertname"))
    a.fingerprint = a.fingerprint or _text(rec.get("fingerprint"))
    a.runbook = _text(rec.get("runbook"))
    if action in SETTLED_BY_DECISION:
        a.fate = action
        notice = "a resolution notice" if action == "resolved" else ""
        a.reason = _text(rec.get("reason")) or notice
    elif action in ("queued", "throttled"):
        state.items[rid] = [rid]
        a.reason = _text(rec.get("reason")) or "queued"
    elif action == "attached" and _text(rec.get("item")) in state.items:
        state.items[_text(rec.get("item"))].append(rid)
        a.reason = "attached to a queued run"
    for item in rec.get("cancelled") or ():
        state.settle(_text(item), "cancelled", "its alert resolved before the run")


def _run_event(state: _State, rec: dict[str, Any]) -> None:
    event, rid = rec["event"], _text(rec.get("rid"))
    if event == "started" and rid in state.items:
        opener = state.alerts[rid]
        run = _Run(rid, opener.runbook, opener.alertname, _ts(rec), _text(rec.get("fingerprint")))
        for other in state.items[rid]:
            if state.alerts[other].fingerprint == run.launched:
                run.alertname = state.alerts[other].alertname
        state.runs[rid] = run
        state.settle(rid, "running", "")
    elif event == "finished" and rid in state.runs:
        run = state.runs[rid]
        run.outcome = _text(rec.get("outcome")) or "unknown"
        refused = run.outcome == "refused"
        detail = _text(rec.get("detail"))
        state.settle(rid, "refused" if refused else "started", detail, run.launched)
        state.settle(rid, "refused" if refused else "covered", detail)
    elif event == "skipped":
        state.settle(rid, "skipped", _text(rec.get("reason")), _text(rec.get("fingerprint")))
    elif event == "cancelled":
        state.settle(rid, "cancelled", _text(rec.get("reason")))
    elif event == "requeued":
        state.settle(rid, "pending", "requeued")


def follow(records: Iterable[dict[str, Any]]) -> _State:
    """Every alert's fate, following the records in journal order."""
    state = _State()
    for rec in records:
        event, rid = rec.get("event"), _text(rec.get("rid"))
        if event == "received":
            a = state.alert(rid, rec)
            a.status, a.fingerprint = _text(rec.get("status")), _text(rec.get("fingerprint"))
        elif event == "decision":
            _decision(state, rec)
        elif event == "truncated":
            state.truncated.append((_ts(rec), int(rec.get("truncatedAlerts") or 0)))
        else:
            _run_event(state, rec)
    for a in state.alerts.values():  # started but never finished: unsettled, with that said
        if a.fate == "running" and not a.reason:
            a.reason = "its run had not finished when the journal ends"
    return state


def _counted(counter: Counter[tuple[str, ...]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = sorted(counter.items(), key=lambda i: (-i[1], i[0]))[:TOP]
    return [{**dict(zip(keys, k, strict=True)), "count": n} for k, n in rows]


def summarize(
    sources: list[Source], records: Iterable[dict[str, Any]], start: float, end: float
) -> dict[str, Any]:
    """The review's ``receiver`` section: the alerts received in [start, end] (epoch seconds),
    by fate; the runs the receiver started in it, by runbook, alert and outcome; and the
    alerts that started none, by fate, reason and alert."""
    state = follow(records)
    alerts = [a for a in state.alerts.values() if start <= a.ts <= end]
    runs = [r for r in state.runs.values() if start <= r.ts <= end]
    fates = Counter(a.fate for a in alerts)
    acted = ("started", "covered", "running")
    return {
        "journals": [
            {"env": s.env, "path": str(s.path), "records": s.records, "corrupt_lines": s.corrupt}
            for s in sources
        ],
        "alerts": len(alerts),
        "firing": sum(1 for a in alerts if a.status == "firing"),
        "resolved_notices": sum(1 for a in alerts if a.status == "resolved"),
        "truncated_alerts": sum(n for ts, n in state.truncated if start <= ts <= end),
        "fates": dict(sorted(fates.items())),
        "runs": _counted(
            Counter((r.runbook, r.alertname, r.outcome) for r in runs),
            ("runbook", "alertname", "outcome"),
        ),
        "not_started": _counted(
            Counter((a.fate, a.reason, a.alertname) for a in alerts if a.fate not in acted),
            ("fate", "reason", "alertname"),
        ),
    }
