"""Environments are the directories under ``inventories/``; an environment is protected
(a run asks for confirmation) when any host of its inventory has ``pflow_protected: true``, as
Ansible reads it (:mod:`pflow_ops.inventory`), or when its inventory cannot be read at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pflow_ops.errors import UsageError
from pflow_ops.inventory import read
from pflow_ops.paths import project_root


class UnknownEnvironment(UsageError, LookupError):
    """An --env value with no inventory directory."""


@dataclass(frozen=True)
class Environment:
    name: str
    inventory: Path
    protected: bool
    why: str = ""  # what made it protected: the hosts that say so, or why it could not be read


def inventories_dir() -> Path:
    return project_root() / "inventories"


def names() -> list[str]:
    root = inventories_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "hosts.yml").is_file())


def get(name: str) -> Environment:
    valid = names()
    if name not in valid:
        raise UnknownEnvironment(
            f"unknown environment '{name}': choose one of {', '.join(valid) or '(none found)'}"
        )
    inventory = inventories_dir() / name / "hosts.yml"
    reading = read(inventory)
    if reading.error:
        why = f"its inventory cannot be read ({reading.error}): treated as protected"
        return Environment(name=name, inventory=inventory, protected=True, why=why)
    why = reading.protected_by[0] if reading.protected_by else ""
    if len(reading.protected_by) > 1:
        why += f" and {len(reading.protected_by) - 1} more host(s)"
    return Environment(name, inventory, protected=bool(reading.protected_by), why=why)
