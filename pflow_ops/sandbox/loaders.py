"""Detached load processes that keep a fault alive after `sandbox break` returns.

A fault such as "a session idle in transaction" or "a write loop causing evictions" needs a
process that outlives the CLI call. Each one is started in its own session and remembered as
[pid, start time] in ``<sandbox>/loaders/NAME.json``, so `heal` and `down` stop exactly the process
they started, never a later one that reused the pid.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pflow_ops.sandbox import procs
from pflow_ops.sandbox.errors import SandboxError
from pflow_ops.sandbox.layout import Layout


def _dir(layout: Layout) -> Path:
    return layout.root / "loaders"


def spawn(layout: Layout, name: str, argv: Sequence[str]) -> int:
    """Start ``argv`` detached (own session, output into the sandbox's logs); return its pid.

    ``argv`` is run as given; a Python module helper is ``[sys.executable, "-m", "pkg.mod", ...]``
    (see :func:`python_module`). A loader of the same name is stopped first.
    """
    stop(layout, name)
    _dir(layout).mkdir(parents=True, exist_ok=True)
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    with (layout.logs_dir / f"loader-{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=layout.root,
        )
    ident = procs.identity(proc.pid)
    if ident is None:
        raise SandboxError(f"load helper {name} exited at once; see {log.name}")
    (_dir(layout) / f"{name}.json").write_text(json.dumps(ident), encoding="utf-8")
    return proc.pid


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def running(layout: Layout) -> dict[str, int]:
    """Live loaders by name."""
    out: dict[str, int] = {}
    for path in sorted(_dir(layout).glob("*.json")):
        try:
            ident = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(ident, list) and len(ident) == 2 and procs.same_process(ident):
            out[path.stem] = int(ident[0])
    return out


def stop(layout: Layout, name: str | None = None, prefix: str = "") -> list[str]:
    """Stop the loader ``name`` (or every loader whose name starts with ``prefix``)."""
    live = running(layout)
    wanted = {n: p for n, p in live.items() if (n == name if name else n.startswith(prefix))}
    if wanted:
        procs.terminate(procs.descendants(wanted.values()) | set(wanted.values()), grace=3.0)
    for path in _dir(layout).glob("*.json"):
        if path.stem in wanted or path.stem not in live:  # stopped now, or already dead
            path.unlink(missing_ok=True)
    return [f"stopped load helper {n} (pid {p})" for n, p in sorted(wanted.items())]
