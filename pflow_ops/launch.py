"""The ``pflow-ops`` console script: the project (``--project DIR``) is settled before anything
reads it, then :func:`pflow_ops.cli.main` runs.

The CLI's modules load the collection's shared definitions (the outcome vocabulary, the alert
checks) when they are imported, and those are found from the project: so ``--project`` goes into
``$PFLOW_OPS_PROJECT`` here, first, and a collection that cannot be found is one line and exit 2
instead of a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pflow_ops.paths import PROJECT_ENV, CollectionNotFound

USAGE_EXIT = 2  # = errors.USAGE, which cannot be imported before the collection is found


def project_from_argv(argv: Sequence[str]) -> str | None:
    """The value of the last ``--project DIR`` / ``--project=DIR`` before ``--``; None without."""
    found: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--project="):
            found = arg.split("=", 1)[1]
        elif arg == "--project" and i + 1 < len(argv):
            found = argv[i + 1]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    project = project_from_argv(args)
    if project:
        os.environ[PROJECT_ENV] = os.path.abspath(os.path.expanduser(project))
    try:
        from pflow_ops.cli import main as cli_main
    except CollectionNotFound as exc:
        print(f"pflow-ops: error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    return cli_main(args)
