"""What a run command asks for, as one typed, frozen value.

``cli.py`` turns the parsed arguments into a :class:`RunRequest`, checking every value a user
types (``-e`` pairs, ``--fingerprint``) on the way; ``run.py`` takes the request and never
sees argparse. Cheap to import: no Ansible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from pflow_ops import event_input
from pflow_ops.errors import UsageError

Command = Literal["recover", "diagnose", "alert", "maintain"]
Mode = Literal["recover", "diagnose", "maintain"]
Output = Literal["text", "json"]
Scalar = str | int | float | bool

COMMANDS: tuple[Command, ...] = ("recover", "diagnose", "alert", "maintain")
# Commands that change the service: one at a time per env and service (the run lock).
CHANGING: frozenset[Command] = frozenset({"recover", "maintain", "alert"})

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Alertmanager fingerprints are 16 hex digits; anything else in --fingerprint is refused, so an
# alert's data never reaches a playbook unchecked.
_FINGERPRINT = re.compile(r"^[0-9a-f]{1,32}$")
# The receiver's receipt id (``core.new_rid``: nanoseconds in hex, a dash, 3 random bytes): it
# ties a run to the alert that queued it, so a restarted receiver finds the run that did it.
RECEIPT = re.compile(r"^[0-9a-f]{1,32}-[0-9a-f]{6}$")


def parse_extra_vars(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs, the values as typed (text).

    The text is typed later, by the roles' argument specs (:mod:`pflow_ops.validate`), so a
    ``str`` variable keeps exactly what was typed (``0123`` stays ``0123``). Values are data,
    never templates: Jinja markers are refused so nothing a user (or, later, an alert label)
    passes can be evaluated by Ansible.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"bad -e '{pair}': expected KEY=VALUE with KEY a variable name")
        if any(marker in raw for marker in ("{{", "{%", "{#")):
            raise UsageError(f"bad -e {key}: template markers are not allowed in values")
        out[key] = raw
    return out


def check_fingerprint(fingerprint: str | None) -> str | None:
    if fingerprint is not None and not _FINGERPRINT.match(fingerprint):
        raise UsageError(f"bad --fingerprint '{fingerprint}': expected up to 32 hex digits")
    return fingerprint


# The incident key (issue 16): the same pattern the collection's incident module checks.
INCIDENT_KEY = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")


def check_incident_key(key: str | None) -> str | None:
    if key is not None and not INCIDENT_KEY.match(key):
        raise UsageError(
            f"bad --incident '{key[:80]}': expected 1-128 characters of A-Z a-z 0-9 . _ : / -"
        )
    return key


def check_group_key(group_key: str | None) -> str | None:
    """``--group-key``: Alertmanager's groupKey as the webhook sent it (braces, quotes, ``=`` and
    ``:`` are its normal text); bounded, printable, never a template."""
    if group_key is None:
        return None
    problem = event_input.group_key_problem(group_key, "--group-key")
    if problem:
        raise UsageError(f"bad {problem}")
    return group_key


def check_alert_incident(key: str | None) -> str | None:
    """``--alert-incident``: the alert's ``incident`` annotation, an incident key."""
    if key is None:
        return None
    problem = event_input.incident_key_problem(key, "--alert-incident")
    if problem:
        raise UsageError(f"bad {problem}")
    return key


def check_receipt(receipt: str | None) -> str | None:
    if receipt is not None and not RECEIPT.match(receipt):
        raise UsageError(f"bad --receipt '{receipt[:80]}': expected the receiver's receipt id")
    return receipt


@dataclass(frozen=True)
class AlertTrigger:
    """The alert that started a run (``pflow-ops alert``): its catalogue name, its fingerprint,
    Alertmanager's group key and its ``incident`` annotation (both checked, maybe empty)."""

    alertname: str
    fingerprint: str = ""
    group_key: str = ""
    incident: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"alertname": self.alertname, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class RunRequest:
    """One ``recover``, ``diagnose``, ``alert`` or ``maintain`` command, checked and typed.

    ``target`` is what the command names: a runbook id (recover, diagnose), an alert name
    (alert) or a service (maintain).
    """

    command: Command
    target: str
    env: str = "local"
    check: bool = False
    yes: bool = False
    limit: str | None = None
    # Out of repr: -e values may be secrets, and the request is logged with -vv. The CLI gives
    # the text as typed; run.py replaces it with the values typed by the roles' specs.
    extra_vars: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    override_reason: str | None = None  # --override-budget REASON
    fingerprint: str | None = None  # --fingerprint HEX (alert)
    runbook: str | None = None  # --runbook ID (alert): route by this id, not by the name
    receipt: str | None = None  # --receipt RID (alert, launched by the receiver)
    incident: str | None = None  # --incident KEY: the incident this run documents
    group_key: str | None = None  # --group-key TEXT (alert): Alertmanager's groupKey
    alert_incident: str | None = None  # --alert-incident KEY (alert): its incident annotation
    output: Output = "text"

    def __post_init__(self) -> None:
        # Frozen all the way down: the vars the playbook gets cannot change after the checks.
        object.__setattr__(self, "extra_vars", MappingProxyType(dict(self.extra_vars)))
        if self.command == "diagnose":
            object.__setattr__(self, "check", True)  # diagnose never changes anything
        if self.override_reason is not None and not self.override_reason.strip():
            # An override is a human's reason on record; an empty one is no override at all.
            raise UsageError(
                "--override-budget needs a reason (who decided, the incident): it is recorded "
                "in the budget entry and the report"
            )

    @property
    def mode(self) -> Mode:
        """What the roles are told (``pflow_mode``): an alert run is a recovery."""
        if self.command == "diagnose":
            return "diagnose"
        if self.command == "maintain":
            return "maintain"
        return "recover"

    @property
    def changes_service(self) -> bool:
        """Whether the command may change the service (and so takes the run lock)."""
        return self.command in CHANGING

    @property
    def alert(self) -> AlertTrigger | None:
        if self.command != "alert":
            return None
        return AlertTrigger(
            self.target, self.fingerprint or "", self.group_key or "", self.alert_incident or ""
        )

    @property
    def json_output(self) -> bool:
        return self.output == "json"
