"""The runbook catalogue (``catalogue.yml``): the single source of truth for runbooks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from pflow_ops.errors import UsageError
from pflow_ops.paths import project_file


class CatalogueError(UsageError):
    """The catalogue file is missing or malformed."""


class UnknownRunbook(UsageError, LookupError):
    """A runbook id or alert name that the catalogue does not know."""


@dataclass(frozen=True)
class Step:
    name: str
    phase: str
    file: str


@dataclass(frozen=True)
class EscalationLevel:
    level: str
    who: str
    when: str
    # Minutes after the escalation when this level is notified: the re-notification schedule
    # (`pflow-ops incident renotify`) when no pager escalates by itself.
    after_minutes: int = 0


def _escalation(raw: object) -> tuple[EscalationLevel, ...]:
    """The escalation path, checked: each level names who and when, ``after_minutes`` is a
    whole number of minutes (0-1440) that never goes down along the path."""
    if raw is not None and not isinstance(raw, list):
        raise TypeError("escalation must be a list of levels")
    levels = []
    previous = 0
    for entry in raw or ():
        if not isinstance(entry, dict):
            raise TypeError("an escalation level must be a mapping")
        minutes = entry.get("after_minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= 1440:
            raise TypeError(
                f"escalation {entry.get('level', '?')}: after_minutes must be 0-1440 minutes"
            )
        if minutes < previous:
            raise TypeError(
                f"escalation {entry.get('level', '?')}: after_minutes {minutes} comes before "
                f"the previous level's {previous}"
            )
        previous = minutes
        levels.append(EscalationLevel(**entry))
    return tuple(levels)


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    severity: str
    service: str
    playbook: str
    role: str
    alerts: tuple[str, ...]
    implemented: bool = True
    steps: tuple[Step, ...] = field(default_factory=tuple)
    escalation: tuple[EscalationLevel, ...] = field(default_factory=tuple)
    schedule: str = ""  # maintenance jobs: when to run them (cron syntax)
    runbook_url: str = ""  # the written runbook (catalogue runbook_url_base + slug)

    @property
    def slug(self) -> str:
        return self.id.lower()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "service": self.service,
            "playbook": self.playbook,
            "role": self.role,
            "alerts": list(self.alerts),
            "implemented": self.implemented,
            "runbook_url": self.runbook_url,
        }


@dataclass(frozen=True)
class Catalogue:
    runbooks: tuple[Runbook, ...]
    # Scheduled maintenance jobs: same shape as a runbook (playbook, role, steps, escalation),
    # looked up by the service they maintain (`pflow-ops maintain database`).
    maintenance: tuple[Runbook, ...] = ()
    # Other names for catalogue alerts (community rule sets name the same faults differently):
    # alert name -> catalogue alert or runbook id. Routing: pflow_ops.routing.
    aliases: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Runbook:
        """Look a runbook up by id, case-insensitively (``rb-01`` and ``RB-01`` both work)."""
        wanted = name.strip().upper()
        for rb in self.runbooks:
            if rb.id == wanted:
                return rb
        raise UnknownRunbook(
            f"unknown runbook '{name}': choose one of {', '.join(rb.slug for rb in self.runbooks)}"
        )

    def maintenance_for(self, service: str) -> Runbook:
        wanted = service.strip().lower()
        for job in self.maintenance:
            if job.service == wanted:
                return job
        choices = ", ".join(job.service for job in self.maintenance) or "none"
        raise UnknownRunbook(f"no maintenance job for '{service}': choose one of {choices}")

    def for_alert(self, alert: str) -> Runbook:
        for rb in self.runbooks:
            if alert in rb.alerts:
                return rb
        known = sorted(a for rb in self.runbooks for a in rb.alerts)
        raise UnknownRunbook(f"unknown alert '{alert}': known alerts are {', '.join(known)}")


def catalogue_path() -> Path:
    return project_file("catalogue.yml")


def _runbook(raw: dict[str, Any], url_base: str = "") -> Runbook:
    try:
        return Runbook(
            id=str(raw["id"]).upper(),
            title=str(raw["title"]),
            severity=str(raw["severity"]),
            service=str(raw["service"]),
            playbook=str(raw["playbook"]),
            role=str(raw["role"]),
            alerts=tuple(str(a) for a in raw.get("alerts") or ()),
            implemented=bool(raw.get("implemented", True)),
            steps=tuple(Step(**s) for s in raw.get("steps") or ()),
            escalation=_escalation(raw.get("escalation")),
            schedule=str(raw.get("schedule") or ""),
            runbook_url=f"{url_base.rstrip('/')}/{str(raw['id']).lower()}" if url_base else "",
        )
    except (KeyError, TypeError) as exc:
        raise CatalogueError(f"catalogue entry {raw.get('id', '?')} is malformed: {exc}") from exc


def load(path: Path | None = None) -> Catalogue:
    path = path or catalogue_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"cannot read the runbook catalogue {path}: {exc.strerror}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("runbooks"), list):
        raise CatalogueError(f"{path}: expected a mapping with a 'runbooks' list")
    base = str(data.get("runbook_url_base") or "")
    aliases = data.get("alert_aliases") or {}
    if not isinstance(aliases, dict):
        raise CatalogueError(f"{path}: alert_aliases must be a mapping of alert name to alert")
    return Catalogue(
        runbooks=tuple(_runbook(r, base) for r in data["runbooks"]),
        maintenance=tuple(_runbook(r, base) for r in data.get("maintenance") or ()),
        aliases=MappingProxyType({str(k): str(v) for k, v in aliases.items()}),
    )
