"""The alert-data checks, loaded from the collection (``module_utils/event_input.py``), their one
definition: the receiver and ``pflow-ops alert`` check Alertmanager's group key and the alert's
``incident`` annotation with the very functions the playbooks' first play (``alert_input``) and
the EDA filter (``alert_guard``) use, so the four entry points cannot disagree."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from pflow_ops.paths import collection_file


def _load() -> ModuleType:
    path = collection_file("plugins", "module_utils", "event_input.py")
    spec = importlib.util.spec_from_file_location("pflow_ops._collection_event_input", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken checkout
        raise ImportError(f"the collection's event_input module is missing: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_checks = _load()

GROUP_KEY_MAX: int = int(_checks.GROUP_KEY_MAX)
INCIDENT_ANNOTATION: str = str(_checks.INCIDENT_ANNOTATION)


def group_key_problem(value: object, where: str = "groupKey") -> str:
    """Why ``value`` may not travel with a run as Alertmanager's group key; "" when it may."""
    return str(_checks.group_key_problem(value, where))


def incident_key_problem(value: object, where: str = "incident") -> str:
    """Why ``value`` may not name an incident; "" when it may (or is empty)."""
    return str(_checks.incident_key_problem(value, where))
