"""The outcome vocabulary, loaded from the collection (``module_utils/outcome.py``), its one
definition: the roles, the AWX gate, the report, the exit code and the receiver share it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from pflow_ops.paths import collection_file


def _load() -> ModuleType:
    path = collection_file("plugins", "module_utils", "outcome.py")
    spec = importlib.util.spec_from_file_location("pflow_ops._collection_outcome", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken checkout
        raise ImportError(f"the collection's outcome module is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_engine = _load()

HEALTHY: str = _engine.HEALTHY
RECOVERED: str = _engine.RECOVERED
ESCALATE: str = _engine.ESCALATE
REFUSED: str = _engine.REFUSED
ERROR: str = _engine.ERROR
ORDER: tuple[str, ...] = tuple(_engine.ORDER)
OK: frozenset[str] = frozenset(_engine.OK)
USAGE_EXIT_CODE: int = int(_engine.USAGE_EXIT_CODE)


def normalize(outcome: object) -> str:
    return str(_engine.normalize(outcome))


def combine(outcomes: Iterable[str]) -> str:
    return str(_engine.combine(list(outcomes)))


def is_ok(outcome: str) -> bool:
    return bool(_engine.is_ok(outcome))


def exit_code(outcome: str) -> int:
    return int(_engine.exit_code(outcome))


def from_exit_code(rc: int) -> str:
    return str(_engine.from_exit_code(rc))


def combine_results(results: Mapping[str, Any]) -> dict[str, Any]:
    return dict(_engine.combine_results(dict(results)))
