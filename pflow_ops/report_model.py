"""The run report as typed values: what ``report.json``, ``--output json``, ``report.md`` and
the terminal summary are made from.

The JSON keeps the shape the README documents and the tests read (``to_dict``); keys a role
publishes beyond the ones the launcher reads (a finding's ``value``/``threshold``, an action's
``before``/``after``, anything new) are kept as they came (``extra``), so a role can add to the
report without a launcher change. Nothing here decides an outcome: that is ``report.build``,
with the collection's outcome vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from pflow_ops.runner import Step

JsonDict = dict[str, Any]


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Finding:
    """One check and what it saw: ``check``, ``status`` (ok, info, warning, critical),
    ``detail``; ``value``/``threshold`` and anything else a role adds stay in ``extra``."""

    check: str
    status: str
    detail: str
    host: str | None = None  # set when the run covered several hosts
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("check", "status", "detail")

    @classmethod
    def from_published(cls, raw: Mapping[str, Any], host: str | None = None) -> Self:
        extra = {k: v for k, v in raw.items() if k not in (*cls._KEYS, "host")}
        return cls(
            check=_text(raw.get("check")),
            status=_text(raw.get("status")),
            detail=_text(raw.get("detail")),
            host=host,
            extra=extra,
        )

    @property
    def measured(self) -> bool:
        """Whether the check carries a measured value or a threshold (the report's columns)."""
        return "value" in self.extra or "threshold" in self.extra

    @property
    def value(self) -> str:
        return _text(self.extra.get("value"))

    @property
    def threshold(self) -> str:
        return _text(self.extra.get("threshold"))

    @property
    def bad(self) -> bool:
        return self.status in ("warning", "critical")

    def to_dict(self) -> JsonDict:
        out: JsonDict = {"check": self.check, "status": self.status, "detail": self.detail}
        out.update(self.extra)
        if self.host is not None:
            out["host"] = self.host
        return out


class Verification(Finding):
    """A check run after a change (health gate, soak, the alert resolving): same shape."""


@dataclass(frozen=True)
class Action:
    """One thing the runbook did (or, in check mode, would do): ``action`` on ``target`` with
    its ``result``; ``before``/``after`` values, when a role gives them, stay in ``extra``."""

    action: str
    target: str
    result: str
    host: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("action", "target", "result")

    @classmethod
    def from_published(cls, raw: Mapping[str, Any], host: str | None = None) -> Self:
        extra = {k: v for k, v in raw.items() if k not in (*cls._KEYS, "host")}
        return cls(
            action=_text(raw.get("action")),
            target=_text(raw.get("target")),
            result=_text(raw.get("result")),
            host=host,
            extra=extra,
        )

    @property
    def has_values(self) -> bool:
        return "before" in self.extra or "after" in self.extra

    @property
    def before(self) -> str:
        return _text(self.extra.get("before"))

    @property
    def after(self) -> str:
        return _text(self.extra.get("after"))

    @property
    def change(self) -> str:
        """`` (before -> after)`` for an action that changed a value, else empty."""
        if not self.before and not self.after:
            return ""
        return f" ({self.before} -> {self.after})" if self.after else f" (was {self.before})"

    def to_dict(self) -> JsonDict:
        out: JsonDict = {"action": self.action, "target": self.target, "result": self.result}
        out.update(self.extra)
        if self.host is not None:
            out["host"] = self.host
        return out


NOTHING_TRIED = Action("none", "-", "nothing was changed")


def _items(raw: object) -> list[Mapping[str, Any]]:
    return [i for i in raw if isinstance(i, Mapping)] if isinstance(raw, list) else []


@dataclass(frozen=True)
class HostResult:
    """What a role published for one host (``pflow_results[host]``): its verdict and evidence.

    ``outcome`` is the word as published: the report normalises it with the collection's
    vocabulary (anything unknown is an error)."""

    host: str
    outcome: str
    reason: str
    next_runbook: str = ""
    findings: tuple[Finding, ...] = ()
    actions: tuple[Action, ...] = ()
    verification: tuple[Verification, ...] = ()
    logs: tuple[str, ...] = ()

    @classmethod
    def from_published(cls, host: str, raw: object) -> HostResult:
        data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        return cls(
            host=host,
            outcome=_text(data.get("outcome")),
            reason=_text(data.get("reason")),
            next_runbook=_text(data.get("next_runbook")),
            findings=tuple(Finding.from_published(i) for i in _items(data.get("findings"))),
            actions=tuple(Action.from_published(i) for i in _items(data.get("actions"))),
            verification=tuple(
                Verification.from_published(i) for i in _items(data.get("verification"))
            ),
            logs=tuple(str(line) for line in data.get("logs") or ()),
        )


@dataclass(frozen=True)
class EscalationLevel:
    level: str
    who: str
    when: str

    def to_dict(self) -> JsonDict:
        return {"level": self.level, "who": self.who, "when": self.when}


@dataclass(frozen=True)
class Escalation:
    """Why a human is needed, what was tried, what to do next, and who to call."""

    reason: str
    next_runbooks: tuple[str, ...]
    tried: tuple[Action, ...]
    next_steps: tuple[str, ...]
    path: tuple[EscalationLevel, ...]

    def to_dict(self) -> JsonDict:
        return {
            "reason": self.reason,
            "next_runbooks": list(self.next_runbooks),
            "tried": [a.to_dict() for a in self.tried],
            "next_steps": list(self.next_steps),
            "path": [p.to_dict() for p in self.path],
        }


@dataclass(frozen=True)
class Rollout:
    """RB-01's rolling restart: the plan, the batches that ran, the hosts never reached."""

    rolling: bool
    serial: Any  # as the play had it: an int, a percentage or a list of them
    max_fail_percentage: Any
    batches: tuple[tuple[str, ...], ...]
    not_attempted: tuple[str, ...]

    def to_dict(self) -> JsonDict:
        return {
            "rolling": self.rolling,
            "serial": self.serial,
            "max_fail_percentage": self.max_fail_percentage,
            "batches": [list(b) for b in self.batches],
            "not_attempted": list(self.not_attempted),
        }


@dataclass(frozen=True)
class AlertStatus:
    """The alert that started the run and, when the closed loop ran, what became of it:
    ``state`` (resolved, firing, unknown, not_checked), ``detail``, the rest as published."""

    state: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alertname(self) -> str:
        return _text(self.fields.get("alertname")) or "?"

    @property
    def detail(self) -> str:
        return _text(self.fields.get("detail"))

    def to_dict(self) -> JsonDict:
        return {"state": self.state, **self.fields}


@dataclass(frozen=True)
class RunnerInfo:
    status: str
    rc: int | None
    artifacts: str

    def to_dict(self) -> JsonDict:
        return {"status": self.status, "rc": self.rc, "artifacts": self.artifacts}


@dataclass(frozen=True)
class IncidentStatus:
    """Where the run was documented (issue 16): the incident key and each sink's status per
    event (``documented``, ``resolved``, ``still_firing``). A failed sink is a warning in the
    report, never a different outcome."""

    key: str
    sinks: tuple[Mapping[str, str], ...] = ()
    error: str = ""

    @classmethod
    def from_published(cls, raw: object) -> IncidentStatus | None:
        if not isinstance(raw, Mapping) or not raw.get("key"):
            return None
        events = raw.get("events")
        sinks: list[Mapping[str, str]] = []
        if isinstance(events, Mapping):
            for event, items in events.items():
                for item in _items(items):
                    sinks.append(
                        {
                            "event": str(event),
                            **{k: _text(item.get(k)) for k in ("sink", "kind", "status", "detail")},
                        }
                    )
        return cls(key=str(raw["key"]), sinks=tuple(sinks), error=_text(raw.get("error")))

    @property
    def warnings(self) -> tuple[str, ...]:
        out = [
            f"incident {self.key}: sink {s['sink']} ({s['event']}) failed: {s['detail']}"
            for s in self.sinks
            if s["status"] == "failed"
        ]
        if self.error:
            out.append(f"incident {self.key}: not documented: {self.error}")
        return tuple(out)

    def to_dict(self) -> JsonDict:
        return {"key": self.key, "sinks": [dict(s) for s in self.sinks], "error": self.error}


@dataclass(frozen=True)
class Report:
    """One run, as ``report.json`` records it."""

    run_id: str
    runbook: str
    title: str
    severity: str
    env: str
    check: bool
    mode: str
    outcome: str
    reason: str
    changed: int
    started_at: str
    finished_at: str
    duration_s: float
    budget_override: bool
    findings: tuple[Finding, ...]
    actions: tuple[Action, ...]
    verification: tuple[Verification, ...]
    alert: AlertStatus | None
    rollout: Rollout | None
    escalation: Escalation | None
    timeline: tuple[Step, ...]
    logs: Mapping[str, tuple[str, ...]]
    runner: RunnerInfo
    json_path: str
    md_path: str
    warnings: tuple[str, ...] = ()  # the tasks' warnings (a corrupt budget file, a clock jump)
    notes: tuple[str, ...] = ()  # what the launcher saw before the run (an interrupted run)
    incident: IncidentStatus | None = None  # where the run was documented (issue 16)
    runbook_url: str = ""  # the runbook's published page (docs/runbooks, issue 18)

    def to_dict(self) -> JsonDict:
        return {
            "run_id": self.run_id,
            "runbook": self.runbook,
            "title": self.title,
            "runbook_url": self.runbook_url,
            "severity": self.severity,
            "env": self.env,
            "check": self.check,
            "mode": self.mode,
            "outcome": self.outcome,
            "reason": self.reason,
            "changed": self.changed,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 2),
            "budget_override": self.budget_override,
            "findings": [f.to_dict() for f in self.findings],
            "actions": [a.to_dict() for a in self.actions],
            "verification": [v.to_dict() for v in self.verification],
            "alert": self.alert.to_dict() if self.alert else None,
            "rollout": self.rollout.to_dict() if self.rollout else None,
            "escalation": self.escalation.to_dict() if self.escalation else None,
            "timeline": [s.to_dict() for s in self.timeline],
            "logs": {host: list(lines) for host, lines in self.logs.items()},
            "runner": self.runner.to_dict(),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "incident": self.incident.to_dict() if self.incident else None,
            "report": {"json": self.json_path, "md": self.md_path},
        }


@dataclass(frozen=True)
class Refusal:
    """A run a guard stopped before it started (confirmation, lock): the JSON that
    ``--output json`` still prints, so a caller (the receiver) reads an outcome."""

    run_id: str
    runbook: str
    env: str
    check: bool
    outcome: str
    reason: str

    def to_dict(self) -> JsonDict:
        return {
            "run_id": self.run_id,
            "runbook": self.runbook,
            "env": self.env,
            "check": self.check,
            "outcome": self.outcome,
            "reason": self.reason,
            "changed": 0,
            "findings": [],
            "actions": [],
            "report": None,
        }


@dataclass(frozen=True)
class HistoryRow:
    """One run, as ``pflow-ops history`` lists it (from its report.json, or from its run record
    while it runs, once it was interrupted, or when a guard refused it)."""

    fields: Mapping[str, Any]

    KEYS = (
        "run_id",
        "runbook",
        "env",
        "check",
        "outcome",
        "changed",
        "started_at",
        "duration_s",
        "reason",
        "state",
    )

    @classmethod
    def from_report(cls, data: Mapping[str, Any], state: str = "finished") -> HistoryRow:
        return cls({**{k: data.get(k) for k in cls.KEYS}, "state": state})

    @classmethod
    def from_record(cls, run_id: str, record: Mapping[str, Any], state: str) -> HistoryRow:
        """A run without a report: running, or refused by a guard."""
        fields = {k: record.get(k) for k in cls.KEYS}
        fields.update(run_id=run_id, state=state, outcome=record.get("outcome") or state)
        return cls(fields)

    def line(self) -> str:
        f = self.fields
        check = " (check)" if f["check"] else ""
        state = "" if f["state"] == "finished" else f"  [{f['state']}]"
        return (
            f"{f['run_id']}  {f['runbook']}  {f['env']}{check}  {f['outcome']}{state}  "
            f"changed={f['changed']}  {f['duration_s']} s"
        )

    def to_dict(self) -> JsonDict:
        return dict(self.fields)
