"""Environments are the directories under ``inventories/``; each one's ``group_vars/all``
says whether it is protected (``pflow_protected: true`` asks for confirmation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pflow_ops.errors import UsageError
from pflow_ops.paths import project_root


class UnknownEnvironment(UsageError, LookupError):
    """An --env value with no inventory directory."""


@dataclass(frozen=True)
class Environment:
    name: str
    inventory: Path
    protected: bool


def inventories_dir() -> Path:
    return project_root() / "inventories"


def names() -> list[str]:
    root = inventories_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "hosts.yml").is_file())


def _group_var_files(env_dir: Path) -> list[Path]:
    single = env_dir / "group_vars" / "all.yml"
    folder = env_dir / "group_vars" / "all"
    files = [single] if single.is_file() else []
    if folder.is_dir():
        files += sorted(folder.glob("*.yml"))
    return files


def _protected(env_dir: Path) -> bool:
    for path in _group_var_files(env_dir):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            # An encrypted vault file or a broken one: Ansible will report it; protection is
            # decided by the plain files.
            continue
        if isinstance(data, dict) and data.get("pflow_protected") is True:
            return True
    return False


def get(name: str) -> Environment:
    valid = names()
    if name not in valid:
        raise UnknownEnvironment(
            f"unknown environment '{name}': choose one of {', '.join(valid) or '(none found)'}"
        )
    env_dir = inventories_dir() / name
    return Environment(name=name, inventory=env_dir / "hosts.yml", protected=_protected(env_dir))
