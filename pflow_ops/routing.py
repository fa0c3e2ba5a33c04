"""Which runbook an alert goes to: one pure function, used by ``pflow-ops alert``, the receiver
and the EDA rulebook generator, so the three can never disagree.

An alert is routed, in this order:

1. by its ``runbook`` label, when it carries one: the value must be a catalogue runbook id
   (``RB-02`` or ``rb-02``); any other value is refused (``unknown_runbook``), never guessed;
2. by its name, when the catalogue lists it under a runbook's ``alerts``;
3. by an alias: the catalogue's ``alert_aliases`` (names other rule sets give the same faults)
   and the environment's ``pflow_alert_aliases`` (inventory group_vars), each mapping an alert
   name to a catalogue alert or a runbook id. The environment's aliases win on a clash.

Anything else is not routed, with a reason that is also a metric label: ``bad_alertname`` (not a
Prometheus identifier: nothing else can reach an argv or a playbook), ``unknown_alert``,
``unknown_runbook``, ``not_automated``. Alert data is only ever compared, never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pflow_ops.catalogue import Catalogue

# Prometheus alert names are metric-name-like identifiers; bounded so no value can be oversized.
ALERTNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Alertmanager fingerprints are 16 hex digits; `pflow-ops alert --fingerprint` takes up to 32.
FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")
RUNBOOK_ID = re.compile(r"^RB-[0-9]{2,3}$")
RUNBOOK_LABEL = "runbook"

# Why an alert was not routed (fixed strings: metric label values, never alert data).
BAD_ALERTNAME = "bad_alertname"
UNKNOWN_ALERT = "unknown_alert"
UNKNOWN_RUNBOOK = "unknown_runbook"
NOT_AUTOMATED = "not_automated"
REASONS = (BAD_ALERTNAME, UNKNOWN_ALERT, UNKNOWN_RUNBOOK, NOT_AUTOMATED)

# How it was routed.
VIA_LABEL = "label"
VIA_CATALOGUE = "catalogue"
VIA_ALIAS = "alias"


@dataclass(frozen=True)
class Target:
    """A runbook an alert can go to."""

    runbook: str  # catalogue id, e.g. RB-01
    service: str
    implemented: bool = True


@dataclass(frozen=True)
class Routed:
    """The answer for one alert: a target, or the reason there is none."""

    alertname: str
    target: Target | None = None
    via: str = ""  # label | catalogue | alias ("" when not routed)
    reason: str = ""  # one of REASONS when not routed
    detail: str = ""  # one human line (the alias used, the label's value)

    @property
    def ok(self) -> bool:
        """Whether the alert starts (or joins) a run of ``target``."""
        return self.target is not None and not self.reason

    @property
    def runbook(self) -> str:
        return self.target.runbook if self.target else ""


@dataclass(frozen=True)
class Table:
    """Everything routing needs, built once from the catalogue and the environment."""

    targets: Mapping[str, Target]  # runbook id -> target
    by_alert: Mapping[str, str]  # catalogue alert name -> runbook id
    aliases: Mapping[str, str]  # alias alert name -> runbook id (already resolved)
    alias_of: Mapping[str, str]  # alias alert name -> what it was declared as (for the detail)

    def alerts_for(self, runbook: str) -> tuple[str, ...]:
        """Every name that routes to ``runbook`` by name: catalogue alerts, then aliases."""
        own = [a for a, rb in self.by_alert.items() if rb == runbook]
        extra = [a for a, rb in self.aliases.items() if rb == runbook and a not in self.by_alert]
        return (*own, *sorted(extra))


class AliasError(ValueError):
    """An alias that points nowhere or is not an identifier: the configuration is wrong."""


def _resolve_alias(
    name: str,
    points_to: str,
    by_alert: Mapping[str, str],
    targets: Mapping[str, Target],
    where: str,
) -> str:
    if not ALERTNAME.match(name):
        raise AliasError(f"{where}: alias {name!r} is not an alert name (a Prometheus identifier)")
    if points_to in by_alert:
        return by_alert[points_to]
    if points_to.upper() in targets:
        return points_to.upper()
    raise AliasError(
        f"{where}: alias {name} -> {points_to!r} names neither a catalogue alert nor a runbook id"
    )


def table(
    cat: Catalogue,
    env_aliases: Mapping[str, str] | None = None,
    *,
    implemented: Mapping[str, bool] | None = None,
) -> Table:
    """The routing table for ``cat`` and one environment's ``pflow_alert_aliases``.

    ``implemented`` overrides a runbook's ``implemented`` flag (the receiver also checks that
    the playbook file exists). Raises AliasError for an alias that points nowhere."""
    implemented = implemented or {}
    targets = {
        rb.id: Target(rb.id, rb.service, implemented.get(rb.id, rb.implemented))
        for rb in cat.runbooks
    }
    by_alert = {alert: rb.id for rb in cat.runbooks for alert in rb.alerts}
    aliases: dict[str, str] = {}
    alias_of: dict[str, str] = {}
    layers = (("catalogue alert_aliases", cat.aliases), ("pflow_alert_aliases", env_aliases or {}))
    for where, layer in layers:
        if not isinstance(layer, Mapping):
            raise AliasError(f"{where} must be a mapping of alert name to alert or runbook id")
        for name, points_to in layer.items():
            name, points_to = str(name), str(points_to)
            if name in by_alert:
                raise AliasError(f"{where}: {name} is already a catalogue alert; it cannot alias")
            aliases[name] = _resolve_alias(name, points_to, by_alert, targets, where)
            alias_of[name] = points_to
    return Table(targets, by_alert, aliases, alias_of)


def route(tbl: Table, alertname: object, labels: Mapping[str, object] | None = None) -> Routed:
    """Where the alert ``alertname`` with ``labels`` goes (pure: no I/O, no evaluation)."""
    name = alertname if isinstance(alertname, str) else ""
    if not ALERTNAME.match(name):
        return Routed(name[:128], reason=BAD_ALERTNAME, detail="not a Prometheus identifier")
    label = (labels or {}).get(RUNBOOK_LABEL)
    if label is not None:
        wanted = str(label).strip().upper()
        target = tbl.targets.get(wanted) if RUNBOOK_ID.match(wanted) else None
        if target is None:
            return Routed(
                name,
                reason=UNKNOWN_RUNBOOK,
                detail=f"label {RUNBOOK_LABEL}={str(label)[:40]!r} is not a catalogue runbook id",
            )
        return _checked(Routed(name, target, VIA_LABEL, detail=f"label {RUNBOOK_LABEL}={wanted}"))
    if name in tbl.by_alert:
        return _checked(Routed(name, tbl.targets[tbl.by_alert[name]], VIA_CATALOGUE))
    if name in tbl.aliases:
        detail = f"alias of {tbl.alias_of.get(name, tbl.aliases[name])}"
        return _checked(Routed(name, tbl.targets[tbl.aliases[name]], VIA_ALIAS, detail=detail))
    return Routed(name, reason=UNKNOWN_ALERT, detail="not in the catalogue, its aliases or labels")


def _checked(routed: Routed) -> Routed:
    if routed.target is not None and not routed.target.implemented:
        return Routed(
            routed.alertname,
            routed.target,
            routed.via,
            NOT_AUTOMATED,
            f"{routed.target.runbook} is catalogued but not automated",
        )
    return routed
