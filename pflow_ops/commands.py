"""Subcommands registered by entry points (group ``pflow_ops.commands``), so a part with its own
dependencies (the sandbox: ``pip install 'pflow-ops[sandbox]'``) adds its command without the
core CLI importing it. An entry point names a :class:`Command`; loading it must stay cheap
(argparse only): the work is imported by ``run``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata

GROUP = "pflow_ops.commands"


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def commands(entry_points: Iterable[metadata.EntryPoint]) -> dict[str, Command]:
    """The commands of ``entry_points`` by name; the first of a name wins (a distribution seen
    twice on sys.path, as an editable install can be, registers it twice)."""
    found: dict[str, Command] = {}
    for ep in entry_points:
        if ep.name not in found:
            command = ep.load()
            if isinstance(command, Command):
                found[ep.name] = command
    return found


@functools.cache
def discover() -> dict[str, Command]:
    return commands(metadata.entry_points(group=GROUP))


def missing_modules(names: Iterable[str]) -> list[str]:
    """The top-level modules of ``names`` that are not installed (found without importing)."""
    return [name for name in names if importlib.util.find_spec(name) is None]
