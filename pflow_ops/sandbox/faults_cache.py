"""Sandbox faults of the cache runbook (placeholder until they are written)."""

from __future__ import annotations

from collections.abc import Callable

from pflow_ops.sandbox.control import Context

FAULTS: dict[str, str] = {}
BREAKERS: dict[str, Callable[[Context], str]] = {}


def heal(ctx: Context) -> list[str]:
    """Undo every fault of this module; return what was done."""
    return []
