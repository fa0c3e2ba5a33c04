"""The coordination store (restart budget, run locks, leadership), loaded from the collection
(``module_utils/coordination.py``), its one definition: the action plugins, the CLI's run lock and
the receiver use the same file and etcd backends.

Which store an environment uses is its inventory's ``pflow_coordination_url`` (default ``file``):
:func:`store_for` reads it with :func:`pflow_ops.inventory.coordination_settings` and refuses
(:class:`CoordinationError`, one line) anything not literally valid.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from pflow_ops.paths import collection_file, state_home

_NAME = "pflow_ops._collection_coordination"


def _load() -> ModuleType:
    path = collection_file("plugins", "module_utils", "coordination.py")
    spec = importlib.util.spec_from_file_location(_NAME, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken checkout
        raise ImportError(f"the collection's coordination module is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # its backends find it by this name
    spec.loader.exec_module(module)
    return module


_engine = _load()

CoordinationError: type[Exception] = _engine.CoordinationError
Unavailable: type[Exception] = _engine.Unavailable
Held: type[Exception] = _engine.Held
FILE: str = _engine.FILE


class Lock(Protocol):
    """A held lock: ``release()`` frees it; ``lost`` once an etcd lease could not be kept."""

    lost: bool

    def release(self) -> None: ...


class Store(Protocol):
    """What the CLI and the receiver ask of a store (both backends)."""

    def name(self) -> str: ...

    def acquire(self, env: str, service: str, record: dict[str, Any], ttl: int) -> Lock: ...

    def leader(self, env: str, name: str, record: dict[str, Any], ttl: int) -> Lock: ...

    def holder(self, env: str, service: str) -> dict[str, Any] | None: ...


def settings(values: dict[str, Any]) -> Any:
    """Validated settings (the engine's ``Settings``) from an environment's variables."""
    return _engine.parse(values)


def settings_for(inventory: Path) -> Any:
    """The settings of the environment whose inventory is ``inventory``."""
    from pflow_ops.inventory import coordination_settings  # imports Ansible: run commands only

    try:
        values = coordination_settings(inventory)
    except Exception as exc:  # an inventory that cannot be read names no store: refused
        raise CoordinationError(f"coordination settings of {inventory}: {exc}") from None
    return settings(values)


def open_store(config: Any, home: Path | None = None) -> Store:
    """The store for validated ``config``; the file backend lives under ``home``."""
    store: Store = _engine.open_store(config, str(home or state_home()))
    return store


def for_env(env: str, locks: Path | None = None) -> tuple[Store, int]:
    """The store of environment ``env`` (from its inventory) and its lock TTL; the file store
    keeps its locks in ``locks`` (default ``$PFLOW_OPS_HOME/locks``). Raises
    :class:`CoordinationError` (or UsageError for an unknown environment)."""
    from pflow_ops import environments  # reads the inventory: Ansible, run commands only

    config = settings_for(environments.get(env).inventory)
    if config.is_file:
        return file_store(state_home(), locks), int(config.lock_ttl)
    return open_store(config), int(config.lock_ttl)


def file_store(home: Path, locks: Path | None = None) -> Store:
    """The file backend under ``home`` (its locks in ``locks``, default ``home/locks``)."""
    module = _engine.sibling("coordination_file")
    store: Store = module.FileStore(
        str(home / "budget" / "restarts.json"), str(locks or home / "locks")
    )
    return store


def check_hold(hold_path: Path, what: str, wait: float | None = None) -> None:
    """Held while processes of an earlier run of this machine still hold ``hold_path`` (waited
    for up to ``wait`` seconds, default HOLD_WAIT_S: a killed run's processes are being stopped)."""
    _engine.sibling("coordination_file").check_hold(str(hold_path), what, wait)


def holder_line(record: dict[str, Any]) -> str:
    return str(_engine.holder_line(record))
