"""``-e`` values and ``--limit`` checked before anything runs.

Every ``-e KEY=VALUE`` must name a variable of the runbook's roles (their
``meta/argument_specs.yml``, the one description of each variable), a ``pflow_*`` variable
the playbooks and roles read, or one of Ansible's own ``ansible_*`` variables. Its text is
typed by the spec: ``str`` stays the text as typed (a password ``0123`` is not the number 83),
``list`` takes ``[a, b]`` or ``a,b``, ``dict`` takes ``{k: v}``. URLs the runbook fetches must
be http(s), and the ranges the roles' preflight asserts are checked here too (:data:`RANGES`),
so a bad value is exit 2 before launch rather than exit 1 after a partial run. Variables
pflow-ops sets from the command itself (the run id, the mode, the alert) cannot be given with
``-e``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pflow_ops import catalogue, inventory
from pflow_ops.environments import Environment
from pflow_ops.errors import UsageError
from pflow_ops.paths import collection_root, playbook_file
from pflow_ops.request import RunRequest

COLLECTION_PREFIX = "pivotal.flow_ops."
# Ansible's own connection and behaviour variables (ansible_python_interpreter, ansible_user):
# no role spec describes them; they pass as YAML scalars, as before.
ANSIBLE_PREFIX = "ansible_"
# Set by pflow-ops from the command (run id, mode, the alert): never from -e.
LAUNCHER_SET = frozenset(
    {
        "pflow_run_id",
        "pflow_mode",
        "pflow_alert_name",
        "pflow_alert_fingerprint",
        "pflow_incident_key",
    }
)
# The environment part of the restart budget's key and of the run lock's: from the inventory of
# --env only. A -e would count restarts against another key and lock another environment's
# service. The restart_budget and run_lock plugins refuse them too, for AWX and ansible-playbook.
ENV_KEYS = frozenset({"pflow_env", "backend_env", "database_env", "cache_env"})
# The ranges the roles' preflight asserts (collection/roles/*/tasks/preflight.yml), in one place
# for the launcher: (low, high, low inclusive). tests/unit/test_validate.py keeps them equal to
# the asserts. The restart budget's own variables are the budget plugin's to refuse.
RANGES: dict[str, tuple[float, float, bool]] = {
    "backend_error_rate_max": (0, 1, True),
    "backend_latency_p95_max_ms": (0, 60000, False),
    "backend_soak_seconds": (0, 3600, True),
    "cache_memory_usage_crit": (0, 1, True),
    "cache_eviction_rate_max": (0, 1000000, True),
    "cache_hit_rate_min": (0, 1, True),
    "cache_maxmemory_ceiling_pct": (1, 90, True),
    "database_long_query_s": (0, 86400, False),
    "database_runaway_query_s": (0, 86400, False),
    "database_idle_in_transaction_max_s": (0, 86400, False),
    "database_connections_critical_pct": (1, 100, True),
    "database_cache_hit_min": (0, 1, True),
}
_BOOL = {"true": True, "yes": True, "on": True, "1": True}
_BOOL |= {"false": False, "no": False, "off": False, "0": False}
_PFLOW_REF = re.compile(r"\b(pflow_[a-z0-9_]+)\s*\|\s*default\b")
_ROLE_REF = re.compile(r"\bpivotal\.flow_ops\.([a-z_]+)\b")


def _collection() -> Path:
    return collection_root()


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def plays(playbook: Path) -> list[dict[str, Any]]:
    """The plays of a playbook, ``import_playbook`` (a collection FQCN or a path) followed."""
    out: list[dict[str, Any]] = []
    for play in _yaml(playbook) or []:
        if not isinstance(play, dict):
            continue
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if not imported:
            out.append(play)
        elif str(imported).startswith(COLLECTION_PREFIX):
            name = str(imported).removeprefix(COLLECTION_PREFIX)
            out += plays(_collection() / "playbooks" / f"{name}.yml")
        else:
            out += plays(playbook.parent / str(imported))
    return out


def playbook_roles(playbook: Path) -> tuple[str, ...]:
    """The roles a playbook runs, and the roles those include (service_manager), in order."""
    found: dict[str, None] = {}
    for play in plays(playbook):
        for entry in play.get("roles") or []:
            name = entry.get("role") if isinstance(entry, dict) else entry
            found.setdefault(str(name).removeprefix(COLLECTION_PREFIX), None)
    for role in list(found):
        for tasks in sorted((_collection() / "roles" / role / "tasks").rglob("*.yml")):
            for name in _ROLE_REF.findall(tasks.read_text(encoding="utf-8")):
                if (_collection() / "roles" / name / "meta").is_dir():  # a role, not a module
                    found.setdefault(name, None)
    return tuple(found)


@functools.cache
def role_options(role: str) -> dict[str, dict[str, Any]]:
    """Every option of every entry point of ``role``'s argument specs."""
    data = _yaml(_collection() / "roles" / role / "meta" / "argument_specs.yml") or {}
    options: dict[str, dict[str, Any]] = {}
    for spec in (data.get("argument_specs") or {}).values():
        options.update(spec.get("options") or {})
    return options


def _launcher_set(options: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """LAUNCHER_SET and the role options that default to one of them (backend_env, ...)."""
    out = set(LAUNCHER_SET)
    for key, opt in options.items():
        refs = set(_PFLOW_REF.findall(str(opt.get("default", ""))))
        if refs & LAUNCHER_SET:
            out.add(key)
    return out


@functools.cache
def pflow_vars() -> dict[str, dict[str, Any]]:
    """``pflow_*`` variables the playbooks and roles read (``pflow_X | default``), each with
    the spec of the role option it feeds when there is exactly one kind (else no type)."""
    texts = [p.read_text(encoding="utf-8") for p in (_collection() / "playbooks").glob("*.yml")]
    roles = _collection() / "roles"
    texts += [p.read_text(encoding="utf-8") for p in roles.glob("*/defaults/main.yml")]
    found: dict[str, dict[str, Any]] = {name: {} for t in texts for name in _PFLOW_REF.findall(t)}
    for role in sorted(p.parent.parent.name for p in roles.glob("*/meta/argument_specs.yml")):
        for opt in role_options(role).values():
            default = str(opt.get("default", "")).strip()
            match = re.fullmatch(r"\{\{\s*(pflow_[a-z0-9_]+)\s*\|\s*default\(.*\)\s*\}\}", default)
            if match and "type" in opt:
                found[match.group(1)] = {"type": opt["type"], "elements": opt.get("elements")}
    return found


def _typed(key: str, text: str, opt: Mapping[str, Any]) -> Any:
    kind = opt.get("type", "raw")
    if kind == "str":
        value: Any = text
    elif kind == "int":
        value = _int(key, text)
    elif kind == "float":
        value = _float(key, text)
    elif kind == "bool":
        if text.strip().lower() not in _BOOL:
            raise UsageError(f"bad -e {key}={text!r}: expects true or false")
        value = _BOOL[text.strip().lower()]
    elif kind == "list":
        value = _list(key, text, opt.get("elements"))
    elif kind == "dict":
        value = _flow(key, text, dict, "a mapping like {name: value}")
    else:
        value = _scalar(text)
    if opt.get("choices") and value not in opt["choices"]:
        choices = ", ".join(str(c) for c in opt["choices"])
        raise UsageError(f"bad -e {key}={text!r}: choose one of {choices}")
    return value


def _int(key: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(f"bad -e {key}={text!r}: expects an integer") from None


def _float(key: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"bad -e {key}={text!r}: expects a number")
    return value


def _flow(key: str, text: str, kind: type, shape: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, kind):
        raise UsageError(f"bad -e {key}={text!r}: expects {shape}")
    return value


def _list(key: str, text: str, elements: object) -> list[Any]:
    if text.strip().startswith(("[", "{")):
        items = _flow(key, text, list, "a list like [a, b] or a,b")
    else:  # Ansible's own rule for a list option given as text: comma-separated
        items = [part.strip() for part in text.split(",")] if text.strip() else []
    if elements is None:
        return list(items)
    for item in items:
        if isinstance(item, dict | list):
            raise UsageError(f"bad -e {key}={text!r}: expects a list of {elements}")
    return [_typed(key, str(item), {"type": elements}) for item in items]


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def _check_url(key: str, value: Any, text: str) -> None:
    if not key.endswith("_url") or not isinstance(value, str) or not value:
        return
    allowed = ("http", "https", "unix") if key.endswith("_server_url") else ("http", "https")
    parts = urlsplit(value)
    where = parts.path if parts.scheme == "unix" else parts.netloc
    if parts.scheme not in allowed or not where:
        raise UsageError(f"bad -e {key}={text!r}: expects an {' or '.join(allowed)} URL")


def _check_range(key: str, value: Any, text: str) -> None:
    if key not in RANGES or isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high, low_inclusive = RANGES[key]
    if value > high or value < low or (value == low and not low_inclusive):
        lower = f"at least {low:g}" if low_inclusive else f"above {low:g}"
        raise UsageError(f"bad -e {key}={text!r}: out of range ({lower} and at most {high:g})")


def _unknown(key: str, known: set[str], rb: catalogue.Runbook, roles: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}?" if close else "see the roles' meta/argument_specs.yml"
    return f"unknown -e {key} for {rb.id} (roles {', '.join(roles)}): {hint}"


def extra_vars(request: RunRequest, rb: catalogue.Runbook) -> dict[str, Any]:
    """The request's -e text, checked and typed for ``rb``'s roles; UsageError on the first
    bad one."""
    roles = playbook_roles(playbook_file(rb.playbook))
    options: dict[str, dict[str, Any]] = {}
    for role in roles:
        options.update(role_options(role))
    pflow = {k: v for k, v in pflow_vars().items() if k not in LAUNCHER_SET}
    reserved = _launcher_set(options)
    known = (set(options) | set(pflow)) - reserved
    out: dict[str, Any] = {}
    for key, raw in request.extra_vars.items():
        if key in ENV_KEYS:
            raise UsageError(
                f"-e {key} cannot be set per run: the environment comes from --env and its "
                "inventory (the restart budget and the run lock are keyed by it): drop the -e"
            )
        if key in reserved:
            raise UsageError(
                f"-e {key} is set by pflow-ops from the command (recover, diagnose, maintain, "
                "alert ALERTNAME --fingerprint HEX): drop the -e"
            )
        if key not in known and not key.startswith(ANSIBLE_PREFIX):
            raise UsageError(_unknown(key, known, rb, roles))
        text = str(raw)
        value = _typed(key, text, options.get(key) or pflow.get(key) or {})
        _check_url(key, value, text)
        _check_range(key, value, text)
        out[key] = value
    return out


GUARD_MODULE = "pivotal.flow_ops.alert_input"


def _is_input_guard(play: dict[str, Any]) -> bool:
    """The first play of every playbook (``hosts: all:localhost``, only ``alert_input``): it
    acts on no host, so it says nothing about which hosts a --limit must select."""
    tasks = play.get("tasks") or []
    return bool(tasks) and all(isinstance(t, dict) and GUARD_MODULE in t for t in tasks)


def groups_of(playbook: Path) -> tuple[str, ...]:
    """The inventory groups a playbook's plays act on, named literally (templated ones and the
    input guard play are skipped)."""
    found: dict[str, None] = {}
    for play in plays(playbook):
        if _is_input_guard(play):
            continue
        hosts = play.get("hosts")
        if isinstance(hosts, str) and "{" not in hosts:
            for name in re.split(r"[:,]", hosts):
                if name.strip():
                    found.setdefault(name.strip(), None)
    return tuple(found)


def check_limit(request: RunRequest, rb: catalogue.Runbook, env: Environment) -> None:
    """A --limit that selects no host of the runbook's groups is a usage error, before launch."""
    if not request.limit:
        return
    reading = inventory.read(env.inventory)
    if reading.error:
        return  # unreadable: the guard already treats the env as protected; Ansible says why
    groups = groups_of(playbook_file(rb.playbook))
    if inventory.matching(env.inventory, groups, request.limit):
        return
    hosts = sorted({h for g in groups for h in reading.groups.get(g, ())})
    raise UsageError(
        f"--limit {request.limit!r} matches no host of {', '.join(groups)} in env '{env.name}': "
        f"its hosts are {', '.join(hosts) or '(none)'}"
    )


def checked(request: RunRequest, rb: catalogue.Runbook, env: Environment) -> RunRequest:
    """The request with its -e typed, once every input check passed (UsageError otherwise)."""
    typed = extra_vars(request, rb)
    check_limit(request, rb, env)
    return dataclasses.replace(request, extra_vars=typed)
