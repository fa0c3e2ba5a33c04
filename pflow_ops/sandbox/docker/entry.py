"""Entry point of the sandbox's backend container: the reference backend, plus one fault hook.

When the file named by ``$PFLOW_SANDBOX_OOM_FLAG`` exists at start, it is removed and the process
allocates memory until the container's memory limit gets it OOM-killed, so the next start (the
runbook's restart) is a normal one. That is how ``sandbox break backend-oom`` produces a genuine
``OOMKilled`` container.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pflow_ops.sandbox import backend

OOM_FLAG_ENV = "PFLOW_SANDBOX_OOM_FLAG"


def _exhaust_memory() -> None:
    hoard: list[bytearray] = []
    while True:
        hoard.append(bytearray(16 * 1024 * 1024))


def main(argv: list[str] | None = None) -> int:
    flag = os.environ.get(OOM_FLAG_ENV, "")
    if flag and Path(flag).exists():
        Path(flag).unlink()
        print("allocating until the memory limit is hit (sandbox fault backend-oom)", flush=True)
        _exhaust_memory()
    return backend.main(argv)


if __name__ == "__main__":
    sys.exit(main())
