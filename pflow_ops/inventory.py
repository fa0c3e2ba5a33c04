"""An environment's inventory, read the way Ansible reads it for the run.

The protected-environment guard and the ``--limit`` check must see what the playbook will see:
``pflow_protected`` set in ``hosts.yml`` vars, ``group_vars/all.yml``, ``group_vars/all.yaml``,
a ``group_vars/all/`` directory or a vault-encrypted file all count. So the inventory is read with
Ansible's own ``InventoryManager`` and ``VariableManager``, in-process (``ansible-inventory`` as a
subprocess costs a second more), from the same source the run uses, with the vault password file
the run gets (``ANSIBLE_VAULT_PASSWORD_FILE`` or ansible.cfg). Imported only by run commands:
``--help`` and ``list`` never import Ansible. Values are read, never templated.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTECTED_VAR = "pflow_protected"
_FALSE = frozenset({"false", "no", "off", "0", "n", "f"})
_TRUE = frozenset({"true", "yes", "on", "1", "y", "t"})


@dataclass(frozen=True)
class Reading:
    """What the guards need from one inventory: hosts per group, and who says protected."""

    source: Path
    groups: dict[str, tuple[str, ...]]
    protected_by: tuple[str, ...]  # "why on host" for every host that is (or may be) protected
    env_names: tuple[str, ...]  # the pflow_env values the hosts carry
    error: str = ""  # why the inventory could not be read ("" when it was)


def protected_value(value: object) -> tuple[bool, str]:
    """(protected, why) for one host's ``pflow_protected``: only a clear false is unprotected.

    Anything that is not a literal boolean (a template, a vault string, a typo) is protected:
    the guard fails closed rather than guess."""
    if value is None or value is False:
        return False, ""
    if value is True:
        return True, f"{PROTECTED_VAR}: true"
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if text in _FALSE:
        return False, ""
    if text in _TRUE:
        return True, f"{PROTECTED_VAR}: {value}"
    return True, f"{PROTECTED_VAR} is not true or false ({type(value).__name__}): treated as true"


def _ansible(module: str) -> Any:
    """An Ansible module (untyped: Ansible ships no type information)."""
    return importlib.import_module(f"ansible.{module}")


def _vault_files() -> list[str]:
    C = _ansible("constants")
    path = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or C.DEFAULT_VAULT_PASSWORD_FILE
    return [str(path)] if path else []


def _manager(source: Path) -> tuple[Any, Any]:
    """Ansible's inventory and variable managers for ``source``, vault secrets loaded."""
    C = _ansible("constants")
    vault_context = _ansible("parsing.vault").VaultSecretsContext
    loader = _ansible("parsing.dataloader").DataLoader()
    secrets = _ansible("cli").CLI.setup_vault_secrets(
        loader,
        vault_ids=list(C.DEFAULT_VAULT_IDENTITY_LIST),
        vault_password_files=_vault_files(),
        ask_vault_pass=False,
        auto_prompt=False,
        # Ansible's process-wide context (inline !vault values) may be set up only once.
        initialize_context=vault_context.current(optional=True) is None,
    )
    loader.set_vault_secrets(secrets)
    inv = _ansible("inventory.manager").InventoryManager(loader, sources=[str(source)], parse=False)
    if not inv.parse_source(str(source)):
        raise ValueError(f"no inventory plugin could parse {source}")
    inv.reconcile_inventory()
    return inv, _ansible("vars.manager").VariableManager(loader=loader, inventory=inv)


def _read(source: Path) -> Reading:
    inv, variables = _manager(source)
    protected: list[str] = []
    envs: set[str] = set()
    for host in inv.get_hosts("all"):
        hostvars = variables.get_vars(host=host, include_hostvars=False)
        is_protected, why = protected_value(hostvars.get(PROTECTED_VAR))
        if is_protected:
            protected.append(f"{why} on {host.name}")
        if hostvars.get("pflow_env") is not None:
            envs.add(str(hostvars["pflow_env"]))
    groups = {name: tuple(h.name for h in group.get_hosts()) for name, group in inv.groups.items()}
    return Reading(source, groups, tuple(protected), tuple(sorted(envs)))


@functools.cache
def read(source: Path) -> Reading:
    """The inventory at ``source`` (cached for the process); never raises: an inventory that
    cannot be read comes back with ``error`` set and every guard treats it as protected."""
    try:
        return _read(source)
    except Exception as exc:  # any failure to read fails the guard closed
        why = " ".join(str(exc).split())[:300] or exc.__class__.__name__
        return Reading(source, {}, (), (), error=why)


ALIASES_VAR = "pflow_alert_aliases"


@functools.cache
def alert_aliases(source: Path) -> dict[str, str]:
    """The environment's ``pflow_alert_aliases`` (alert name -> catalogue alert or runbook id),
    as Ansible reads them for the hosts of ``source`` (group_vars included). Hosts that disagree
    on an alias are a configuration error (ValueError): routing must not depend on host order.
    Values are read, never templated: a template is not an alert name and routing refuses it."""
    inv, variables = _manager(source)
    merged: dict[str, str] = {}
    for host in inv.get_hosts("all"):
        value = variables.get_vars(host=host, include_hostvars=False).get(ALIASES_VAR)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValueError(f"{ALIASES_VAR} on {host.name} must be a mapping, not {value!r}")
        for name, points_to in value.items():
            name, points_to = str(name), str(points_to)
            if merged.setdefault(name, points_to) != points_to:
                raise ValueError(
                    f"{ALIASES_VAR}: hosts disagree on {name} ({merged[name]} vs {points_to})"
                )
    return merged


def matching(source: Path, groups: tuple[str, ...], limit: str) -> tuple[str, ...]:
    """The hosts of ``groups`` that the Ansible pattern ``limit`` selects, in inventory order."""
    C = _ansible("constants")
    inv, _ = _manager(source)
    inv.subset(limit)
    seen: dict[str, None] = {}
    # A pattern that matches nothing is the answer here, not a warning on stderr (Ansible runs
    # in another process: this setting of this process is its own).
    mismatch, C.HOST_PATTERN_MISMATCH = C.HOST_PATTERN_MISMATCH, "ignore"
    try:
        for group in groups:
            for host in inv.get_hosts(group):
                seen.setdefault(host.name, None)
    finally:
        C.HOST_PATTERN_MISMATCH = mismatch
    return tuple(seen)


COORDINATION_PREFIX = "pflow_coordination_"


def _compared(value: Any) -> Any:
    """What two hosts' values are compared by: a vault value decrypted (its object differs per
    host), anything else as it is. The values themselves are handed on raw."""
    vault = ("EncryptedString", "AnsibleVaultEncryptedUnicode")
    return str(value) if type(value).__name__ in vault else value


@functools.cache
def coordination_settings(source: Path) -> dict[str, Any]:
    """The environment's ``pflow_coordination_*`` variables (URL, TLS files, credentials, lock
    TTL), as Ansible reads them for the hosts of ``source`` (group_vars and vault included),
    raw: :mod:`pflow_ops.coordination` validates them and refuses a template. Every host must
    agree (one environment, one store): hosts that disagree, or name a store for some hosts
    and none for others, are a configuration error (ValueError), never a guess."""
    inv, variables = _manager(source)
    seen: dict[str, dict[str, Any]] = {}
    for host in inv.get_hosts("all"):
        hostvars = variables.get_vars(host=host, include_hostvars=False)
        seen[host.name] = {k: v for k, v in hostvars.items() if k.startswith(COORDINATION_PREFIX)}
    distinct = {repr(sorted((k, _compared(v)) for k, v in s.items())) for s in seen.values()}
    if len(distinct) > 1:
        urls = sorted({str(v.get(COORDINATION_PREFIX + "url", "file")) for v in seen.values()})
        raise ValueError(
            f"hosts of {source} disagree on their {COORDINATION_PREFIX}* settings "
            f"({', '.join(urls)}): set them once for the environment (group_vars/all)"
        )
    return next(iter(seen.values()), {})


SINKS_VAR = "pflow_incident_sinks"


@functools.cache
def incident_sink_kinds(source: Path) -> tuple[dict[str, str], ...]:
    """The ``kind`` and ``name`` of every incident sink the hosts of ``source`` configure (the
    union over hosts), read raw: secrets and other keys are not looked at. A value that is not a
    list of mappings (a template, a vault string) is skipped: the caller then knows less, and
    the playbook, which reads the sinks itself, decides."""
    inv, variables = _manager(source)
    seen: dict[tuple[str, str], None] = {}
    for host in inv.get_hosts("all"):
        value = variables.get_vars(host=host, include_hostvars=False).get(SINKS_VAR)
        for sink in value if isinstance(value, list) else []:
            if isinstance(sink, dict) and isinstance(sink.get("kind"), str):
                seen.setdefault((sink["kind"], str(sink.get("name") or sink["kind"])), None)
    return tuple({"kind": kind, "name": name} for kind, name in seen)
