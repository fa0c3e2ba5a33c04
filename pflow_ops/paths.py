"""Where things live: the project checkout (playbooks, inventories, collection) and the state
directory ``$PFLOW_OPS_HOME`` (runs, reports, locks, restart budget, sandbox)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "PFLOW_OPS_HOME"
PROJECT_ENV = "PFLOW_OPS_PROJECT"


def state_home() -> Path:
    """The state directory; tests and users isolate a run by setting ``PFLOW_OPS_HOME``."""
    return Path(os.environ.get(HOME_ENV) or "~/.pflow-ops").expanduser().resolve()


def project_root() -> Path:
    """The checkout holding playbooks/, inventories/ and collection/ (overridable for installs)."""
    override = os.environ.get(PROJECT_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parent.parent


def runs_dir() -> Path:
    return state_home() / "runs"


def locks_dir() -> Path:
    return state_home() / "locks"
